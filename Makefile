# ALL-USE account platform. `make help` lists the targets.
VENV ?= .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed
PROMTOOL := $(VENV)/bin/promtool

.PHONY: help install run test lint typecheck bench soak chaos docs vectors acl k8s-production deploy-check clean chromium mutate

help: ## list the targets
	@grep -E '^[a-z-]+:.*##' $(MAKEFILE_LIST) | awk -F':.*## ' '{printf "  make %-10s %s\n", $$1, $$2}'

$(STAMP): pyproject.toml shared/client/pyproject.toml
	python3 -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet -e '.[dev,embedded]' -e 'shared/client[all]'
	touch $(STAMP)

install: $(STAMP) ## create .venv and install the project with its dev tools and the client library (alluse_client)

# promtool checks the alert rules in the tests. Taken from the Debian package `prometheus`
# (downloaded, unpacked into .venv; nothing installed system-wide, no server started). Where
# apt cannot download, the tests check the rules' structure themselves and say so.
$(PROMTOOL): | $(STAMP)
	-@command -v apt-get >/dev/null && tmp=$$(mktemp -d) && cd $$tmp && \
	  apt-get download -qq prometheus >/dev/null 2>&1 && dpkg-deb -x prometheus_*.deb x && \
	  cp x/usr/bin/promtool $(abspath $(PROMTOOL)); rm -rf $$tmp

run: $(STAMP) ## start Redis/PostgreSQL (embedded unless REDIS_URL/DATABASE_URL are set), the three services and a live demo
	$(PY) -m services.run

# The web console's browser tests drive Debian's Chromium (never a downloaded browser build).
# Where it is missing it is installed, if this user may install packages (root, or sudo without
# a password prompt); otherwise make stops at once and says what to run.
chromium:
	@command -v chromium >/dev/null 2>&1 || { \
	  if [ "$$(id -u)" = 0 ]; then as=""; \
	  elif command -v sudo >/dev/null 2>&1 && sudo -n true 2>/dev/null; then as="sudo"; \
	  else echo "make test needs Debian's chromium for the console's browser tests." \
	    "Install it (sudo apt-get install chromium), then run make test again." >&2; exit 1; fi; \
	  command -v apt-get >/dev/null 2>&1 || { echo "make test needs chromium on the PATH" \
	    "for the console's browser tests; install it with this system's package manager." >&2; \
	    exit 1; }; \
	  echo "Installing Debian's chromium for the console's browser tests (apt-get)"; \
	  $$as apt-get update -qq && \
	  DEBIAN_FRONTEND=noninteractive $$as apt-get install -y -qq chromium >/dev/null; }

test: chromium $(STAMP) $(PROMTOOL) ## the whole suite (unit, contract, integration, e2e) on real Redis and PostgreSQL
	$(PY) -m pytest

lint: $(STAMP) ## ruff and mypy --strict
	$(VENV)/bin/ruff check .
	$(VENV)/bin/ruff format --check .
	$(VENV)/bin/mypy services shared tests  # shared/ holds the client library too (shared/client: src, examples)

mutate: $(STAMP) ## mutation testing (mutmut) of the account domain and the trust checks against the unit tests; see docs/testing.md
	$(VENV)/bin/mutmut run --max-children $${MUTATE_CHILDREN:-2}
	$(VENV)/bin/mutmut export-cicd-stats
	@$(PY) -c "import json; s = json.load(open('mutants/mutmut-cicd-stats.json')); \
	  k, n, reached = s['killed'], s['total'] - s['skipped'], s['killed'] + s['survived']; \
	  print(f'mutation score: {k}/{n} killed ({100 * k / max(n, 1):.1f}%);' \
	        f' of the mutants a unit test reaches, {100 * k / max(reached, 1):.1f}%')"

bench: $(STAMP) ## throughput and latency through the streams, beside a bare redis-py + asyncpg loop
	$(PY) -m services.bench

soak: $(STAMP) ## steady mixed load on scratch servers, sampled every 10 s: table, chart var/soak/soak.png, pass if memory and streams plateau (SOAK_MINUTES, SOAK_RATE)
	$(PY) -m services.bench.soak

chaos: $(STAMP) ## mixed commands while services, Redis and PostgreSQL are killed; checks nothing lost or doubled (CHAOS_COMMANDS, CHAOS_SEED)
	$(PY) -m services.bench.chaos

docs: $(STAMP) ## regenerate the AsyncAPI 3.0 document, its HTML page (deploy/docs/) and the JSON Schemas of every public type
	$(PY) -m shared.contracts.docs

vectors: $(STAMP) ## regenerate the signature test vectors (tests/vectors/signatures.json, docs/signatures.md); deterministic
	$(PY) -m tests.vectors.generate

acl: $(STAMP) ## write var/redis.acl, the Redis ACL file (passwords from ALLUSE_REDIS_PASSWORD_<USER>)
	@mkdir -p var
	$(PY) -m services.security admin redis-acl --out var/redis.acl

# The production overlay carries a placeholder digest (all zeros): rendering refuses to go on
# without the digest of the image that was built and tested.
k8s-production: ## render the production overlay for `kubectl apply -f -`, image pinned (ALLUSE_IMAGE=<registry>/alluse/platform@sha256:<digest>, required)
	@echo '$(ALLUSE_IMAGE)' | grep -Eq '^[^@ ]+@sha256:[0-9a-f]{64}$$' && \
	  ! echo '$(ALLUSE_IMAGE)' | grep -Eq '@sha256:0{64}$$' || { \
	  echo 'set ALLUSE_IMAGE=<registry>/alluse/platform@sha256:<64 hex digits>: the digest of the image you tested' >&2; exit 2; }
	@kubectl kustomize deploy/k8s/overlays/production | \
	  sed 's#registry.example.com/alluse/platform@sha256:0\{64\}#$(ALLUSE_IMAGE)#'

# Not part of `make test`: it builds images and runs the real docker-compose.yml under podman.
deploy-check: $(STAMP) ## the compose deployment end to end under podman (docs/operators/deploy.md "Checking a deployment"; 4-12 min)
	deploy/check/compose-check.sh

clean: ## remove the virtualenv, embedded server data and mutation-testing copies
	rm -rf $(VENV) var mutants

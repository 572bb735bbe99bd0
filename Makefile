# ALL-USE account platform. `make help` lists the targets.
VENV ?= .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed
PROMTOOL := $(VENV)/bin/promtool

.PHONY: help install run test lint typecheck bench soak chaos docs acl clean

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

test: $(STAMP) $(PROMTOOL) ## the whole suite (unit, contract, integration, e2e) on real Redis and PostgreSQL
	$(PY) -m pytest

lint: $(STAMP) ## ruff and mypy --strict
	$(VENV)/bin/ruff check .
	$(VENV)/bin/ruff format --check .
	$(VENV)/bin/mypy services shared  # shared/ holds the client library too (shared/client: src, examples)

bench: $(STAMP) ## throughput and latency through the streams, beside a bare redis-py + asyncpg loop
	$(PY) -m services.bench

soak: $(STAMP) ## steady mixed load on scratch servers, sampled every 10 s: table, chart var/soak/soak.png, pass if memory and streams plateau (SOAK_MINUTES, SOAK_RATE)
	$(PY) -m services.bench.soak

chaos: $(STAMP) ## mixed commands while services, Redis and PostgreSQL are killed; checks nothing lost or doubled (CHAOS_COMMANDS, CHAOS_SEED)
	$(PY) -m services.bench.chaos

docs: $(STAMP) ## regenerate the AsyncAPI 3.0 document, its HTML page (deploy/docs/) and the lifecycle JSON Schemas
	$(PY) -m shared.contracts.docs

acl: $(STAMP) ## write var/redis.acl, the Redis ACL file (passwords from ALLUSE_REDIS_PASSWORD_<USER>)
	@mkdir -p var
	$(PY) -m services.security admin redis-acl --out var/redis.acl

clean: ## remove the virtualenv and embedded server data
	rm -rf $(VENV) var

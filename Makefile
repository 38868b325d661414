# sealbill — two commands on a fresh machine: `make demo` and `make test`.
SHELL := /bin/bash
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed

.PHONY: demo test test-deep lint bench clean postgres-binaries chromium postfix

$(PY):
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip

$(STAMP): pyproject.toml | $(PY)
	$(PY) -m pip install --quiet -e '.[test]'
	touch $(STAMP)

# PostgreSQL 15 binaries for the throwaway test cluster (tests start and stop it themselves).
postgres-binaries:
	@ls /usr/lib/postgresql/*/bin/initdb >/dev/null 2>&1 || command -v initdb >/dev/null || \
	  { apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq postgresql >/dev/null; }

# Debian's Chromium for the browser tests (Playwright drives it; no browser is downloaded).
chromium:
	@test -x /usr/bin/chromium || \
	  { apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium >/dev/null; }

# Debian's Postfix for the relay tests (tests/support/postfix.py starts a throwaway instance
# with its own configuration and queue on loopback; the machine's own Postfix is not started),
# and Cyrus SASL (saslpasswd2, the sasldb plugin) for its AUTH listener.
postfix:
	@test -x /usr/sbin/postfix -a -x /usr/sbin/saslpasswd2 || \
	  { echo "postfix postfix/main_mailer_type select No configuration" | debconf-set-selections; \
	    apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq \
	      postfix sasl2-bin libsasl2-modules >/dev/null; }

demo: $(STAMP)
	$(PY) -m sealbill demo --workdir var/demo $(if $(SMTP),--smtp $(SMTP))

lint: $(STAMP)
	$(VENV)/bin/ruff check src tests bench
	$(VENV)/bin/mypy

# Two xdist workers: the suite's integration tests wait on PostgreSQL, SMTP and Chromium. A test
# file stays on one worker (--dist loadfile): its module-scoped fixtures are built once, in order.
test: $(STAMP) postgres-binaries chromium postfix lint
	$(PY) -m pytest -q -p no:cacheprovider -n 2 --dist loadfile --doctest-modules src/sealbill/domain tests

# The deep runs: the billing oracle's 10,000 generated cases (SEALBILL_ORACLE_EXAMPLES to change)
# and the 2,000-account cycle on three killed-and-replaced workers (tests/integration/scale).
test-deep: $(STAMP) postgres-binaries
	$(PY) -m pytest -q -p no:cacheprovider -m deep tests/oracle tests/integration/scale

bench: $(STAMP)
	$(PY) -m pip install --quiet -e '.[test,bench]'
	$(PY) bench/bench_billing.py
	$(PY) bench/bench_render.py
	$(PY) bench/bench_delivery.py

clean:
	rm -rf var .pytest_cache .mypy_cache .ruff_cache

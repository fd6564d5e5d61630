# Two commands: `make run` and `make test`. Both bootstrap .venv on a fresh machine.
# .venv's interpreter: the distribution's Python when it is 3.11 or newer, else python3 from PATH.
# Debian builds its Python with PGO and LTO; a plain source build (pyenv's default) costs the hub
# about a fifth more CPU per publish. `make PYTHON=/path/to/python3` picks another.
PYTHON ?= $(shell /usr/bin/python3 -c 'import sys; sys.exit(sys.version_info < (3, 11))' \
	2>/dev/null && echo /usr/bin/python3 || echo python3)
VENV := .venv
BIN := $(VENV)/bin
# What is installed: ssehub with every extra and the dev tools (make test), or with what running
# the hub needs (make run).
STAMP := $(VENV)/.installed
RUN_STAMP := $(VENV)/.installed-run
HOST ?= 127.0.0.1
PORT ?= 8000

.PHONY: run test lint typecheck pytest system-deps clean

SOURCES := pyproject.toml setup.py $(wildcard src/ssehub/*.[ch] src/ssehub/*/*.c)

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip

# The C accelerators are compiled by the install: a change to one reinstalls. The extras are
# pyproject.toml's: `all` is server + redis + jwt, `dev` is `all` plus the tools and the peers.
$(RUN_STAMP): $(SOURCES) | $(BIN)/python
	$(BIN)/python -m pip install --quiet -e '.[all]'
	touch $(RUN_STAMP)

$(STAMP): $(SOURCES) | $(BIN)/python
	$(BIN)/python -m pip install --quiet -e '.[dev]'
	touch $(STAMP)

# Debian packages the tests drive for real: Chromium for the browser tests (never a downloaded
# browser), nginx for the reverse-proxy tests, redis-server for the Redis backend's tests (each
# starts its own on a free port), PHP with Symfony's Mercure component for the Mercure interop
# tests (a Symfony app's own publisher). Installed only when missing.
system-deps:
	@missing=""; \
	command -v chromium >/dev/null 2>&1 || missing="$$missing chromium"; \
	test -x /usr/sbin/nginx || missing="$$missing nginx"; \
	command -v redis-server >/dev/null 2>&1 || test -x /usr/bin/redis-server || missing="$$missing redis-server"; \
	command -v php >/dev/null 2>&1 || missing="$$missing php-cli"; \
	test -f /usr/share/php/Symfony/Component/Mercure/Hub.php || missing="$$missing php-symfony-mercure"; \
	if [ -n "$$missing" ]; then \
	  echo "installing Debian packages:$$missing"; \
	  (apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq $$missing >/dev/null) \
	  || echo "warning: could not install$$missing; the tests that need them will be skipped"; \
	fi

run: $(RUN_STAMP)
	$(BIN)/ssehub serve --host $(HOST) --port $(PORT) --demo

lint: $(STAMP)
	$(BIN)/ruff check src tests benchmarks examples
	$(BIN)/ruff format --check src tests benchmarks examples

typecheck: $(STAMP)
	$(BIN)/mypy

pytest: $(STAMP) system-deps
	$(BIN)/pytest

test: lint typecheck pytest

clean:
	rm -rf $(VENV) .mypy_cache .pytest_cache .ruff_cache

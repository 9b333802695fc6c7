# Everything a fresh machine needs, from the package registries only.
#   make test   the whole suite (starts its own private servers; needs root for /etc/pam.d)
#   make demo   AWS's Lambda guide, rebuilt on the plugin, against the local emulator
PYTHON ?= python3
VENV   ?= .venv
PY     := $(VENV)/bin/python
STAMP  := $(VENV)/.installed
# The oldest supported pair, Python 3.10 + SQLAlchemy 2.0, when this machine has a 3.10
# (pyenv's); otherwise $(PYTHON) with SQLAlchemy 2.0.
COMPAT_PYTHON ?= $(firstword $(wildcard /root/.pyenv/versions/3.10.*/bin/python3) $(PYTHON))
COMPAT_VENV   ?= .venv-compat
# The newest Python this machine has (pyenv's 3.12+; Lambda's SnapStart runtimes), if any.
NEWEST_PYTHON ?= $(lastword $(PYTHON) $(sort $(wildcard /root/.pyenv/versions/3.1[2-9].*/bin/python3)))
NEWEST_VENV   ?= .venv-newest

.PHONY: all system venv test lint unit docs package compat newest demo bench clean

all: test

# Server and build binaries, installed with apt-get only when missing.
system:
	@missing=""; \
	ls /usr/lib/postgresql/*/bin/initdb >/dev/null 2>&1 || missing="$$missing postgresql"; \
	command -v psql >/dev/null 2>&1 || missing="$$missing postgresql-client"; \
	command -v mariadbd >/dev/null 2>&1 || missing="$$missing mariadb-server"; \
	command -v mariadb >/dev/null 2>&1 || missing="$$missing mariadb-client"; \
	command -v pgbouncer >/dev/null 2>&1 || missing="$$missing pgbouncer"; \
	[ -x /usr/bin/python3 ] || missing="$$missing python3"; \
	$(PYTHON) -c 'import venv, ensurepip' 2>/dev/null || missing="$$missing python3-venv"; \
	command -v pkg-config >/dev/null 2>&1 || missing="$$missing pkg-config"; \
	pkg-config --exists libmariadb 2>/dev/null || pkg-config --exists mysqlclient 2>/dev/null || missing="$$missing libmariadb-dev"; \
	command -v gcc >/dev/null 2>&1 || missing="$$missing gcc"; \
	[ -f /usr/include/security/pam_modules.h ] || missing="$$missing libpam0g-dev"; \
	if [ -n "$$missing" ]; then \
	  echo "apt-get install:$$missing"; \
	  apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends $$missing; \
	fi

$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip
	$(PY) -m pip install -q -e '.[dev]'
	touch $(STAMP)

venv: system $(STAMP)

lint: venv
	$(VENV)/bin/ruff check sqlalchemy_rds_iam tests examples bench tools
	$(VENV)/bin/mypy
	$(VENV)/bin/lint-imports pyproject.toml --no-cache

unit: venv
	$(PY) -m pytest tests/unit

test: venv lint
	$(PY) -m pytest
	$(MAKE) docs
	$(MAKE) package
	$(MAKE) compat
	$(MAKE) newest

# The documentation site, into site/; --strict: a broken link or reference fails the build
# (not with --quiet, which hides the warnings that --strict counts).
docs: venv
	NO_MKDOCS_2_WARNING=1 $(VENV)/bin/mkdocs build --strict

# The package as pip users get it: sdist, wheel from it, installed into a fresh venv and checked.
package: venv
	$(PY) tools/check_package.py

$(COMPAT_VENV)/.installed: pyproject.toml
	$(COMPAT_PYTHON) -m venv $(COMPAT_VENV)
	$(COMPAT_VENV)/bin/python -m pip install -q --upgrade pip
	$(COMPAT_VENV)/bin/python -m pip install -q -e '.[dev]' 'SQLAlchemy>=2.0,<2.1'
	touch $@

# The whole suite again on the oldest supported Python and SQLAlchemy.
compat: system $(COMPAT_VENV)/.installed
	@$(COMPAT_VENV)/bin/python -c 'import sys, sqlalchemy; print("compat: Python", sys.version.split()[0], "SQLAlchemy", sqlalchemy.__version__)'
	$(COMPAT_VENV)/bin/python -m pytest -q -p no:cacheprovider

$(NEWEST_VENV)/.installed: pyproject.toml
	$(NEWEST_PYTHON) -m venv $(NEWEST_VENV)
	$(NEWEST_VENV)/bin/python -m pip install -q --upgrade pip
	$(NEWEST_VENV)/bin/python -m pip install -q -e '.[dev]'
	touch $@

# The whole suite again on the newest Python (Lambda's newest runtimes, SnapStart's 3.12+).
newest: system $(NEWEST_VENV)/.installed
	@$(NEWEST_VENV)/bin/python -c 'import sys, sqlalchemy; print("newest: Python", sys.version.split()[0], "SQLAlchemy", sqlalchemy.__version__)'
	$(NEWEST_VENV)/bin/python -m pytest -q -p no:cacheprovider

demo: venv
	$(PY) examples/lambda/run_local.py --demo

# Listener overhead, import time and the cold start against a stored-password app and AWS's
# guide; then the whole field; all against the emulator (venvs under .venv-bench/).
bench: venv
	@status=0; $(PY) bench/run.py || status=$$?; $(PY) bench/login.py || status=$$?; \
	$(PY) bench/field.py || status=$$?; exit $$status

clean:
	-$(VENV)/bin/sqlalchemy-rds-iam emulator stop
	rm -rf $(VENV) $(COMPAT_VENV) $(NEWEST_VENV) .venv-bench build dist site *.egg-info .pytest_cache .mypy_cache .ruff_cache

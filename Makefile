# tongdai: `make run` starts the product with demo data; `make test` runs the whole suite.
# SQLite by default; PostgreSQL when DATABASE_URL is set (e.g. postgres://postgres@127.0.0.1:5432/tongdai).

SHELL := /bin/bash
VENV ?= .venv
PY := $(VENV)/bin/python
PIP := $(VENV)/bin/pip
DEMO_CUSTOMERS ?= 3000
HOST ?= 127.0.0.1
PORT ?= 8000
# make test runs the suite in this many processes (pytest-xdist; "auto": one a core, 0: in this process).
TEST_WORKERS ?= auto
export DEBUG ?= 1

# The first Python >= 3.12 on PATH, else one installed through pyenv.
PYTHON_FOR_VENV := $(shell \
	for c in python3.14 python3.13 python3.12 python3 python; do \
	  p=$$(command -v $$c 2>/dev/null) || continue; \
	  $$p -c 'import sys; sys.exit(0 if sys.version_info >= (3, 12) else 1)' 2>/dev/null && { echo $$p; exit 0; }; \
	done; \
	root=$$(pyenv root 2>/dev/null || echo $$HOME/.pyenv); \
	for p in $$(ls -d $$root/versions/3.1[2-9]*/bin/python3 2>/dev/null | sort -rV); do \
	  $$p -c 'import sys; sys.exit(0 if sys.version_info >= (3, 12) else 1)' 2>/dev/null && { echo $$p; exit 0; }; \
	done)

.PHONY: run test install install-test lint migrate demo bench bench-smoke messages clean check-python

check-python:
	@if [ -z "$(PYTHON_FOR_VENV)" ]; then \
	  echo "tongdai needs Python 3.12 or newer (Django 6). None was found on PATH or through pyenv."; \
	  echo "Install one (e.g. 'pyenv install 3.13') or put it on PATH, then run make again."; \
	  exit 1; fi

$(VENV)/.installed: pyproject.toml | check-python
	@[ -x $(PY) ] || $(PYTHON_FOR_VENV) -m venv $(VENV)
	@$(PY) -c 'import sys; sys.exit(0 if sys.version_info >= (3, 12) else 1)' || \
	  { echo "$(VENV) uses Python < 3.12; remove it (rm -rf $(VENV)) and run make again."; exit 1; }
	$(PIP) install --quiet --disable-pip-version-check --upgrade pip
	$(PIP) install --quiet --disable-pip-version-check -e .
	@touch $@

$(VENV)/.installed-test: $(VENV)/.installed pyproject.toml
	$(PIP) install --quiet --disable-pip-version-check -e '.[test]'
	@touch $@

install: $(VENV)/.installed
install-test: $(VENV)/.installed-test

messages: install
	$(VENV)/bin/pybabel -q compile -d locale -D django
	$(VENV)/bin/pybabel -q compile -d locale -D djangojs

migrate: install messages
	$(PY) manage.py migrate --no-input -v 1

demo: migrate
	$(PY) manage.py load_organisation
	$(PY) manage.py load_catalogue
	$(PY) manage.py load_tariffs
	$(PY) manage.py seed_demo --customers $(DEMO_CUSTOMERS) --units PE,PC08
	$(PY) manage.py create_demo_users
	$(PY) manage.py seed_demo_tickets
	$(PY) manage.py seed_demo_billing

run: demo
	$(PY) manage.py setup_schedules
	@echo "Starting the task cluster, the outbox worker and the web server on http://$(HOST):$(PORT)/admin/ (Ctrl-C stops all three)"
	@trap 'kill 0' EXIT INT TERM; \
	  $(PY) manage.py qcluster & \
	  $(PY) manage.py outbox_worker & \
	  $(PY) manage.py runserver $(HOST):$(PORT) --noreload

test: install-test messages
	$(PY) -m pytest -n $(TEST_WORKERS) $(PYTEST_ARGS)

lint: install-test
	$(VENV)/bin/ruff check .
	$(VENV)/bin/mypy
	$(PY) manage.py makemigrations --check --dry-run

bench: install
	$(PY) -m bench $(BENCH_ARGS)

bench-smoke: install-test
	$(PY) -m bench.smoke

clean:
	rm -rf $(VENV) staticfiles .pytest_cache

# The two commands: `make demo` and `make test`. Both need only Python 3.11 and make.

PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
PY := $(BIN)/python
# example: django-environ, which the example shop's settings read (make demo);
# dist: build and twine for .ci/package.sh.
EXTRAS := test,lint,docs,postgres,redis,example,dist
# Touched after a successful install: pip runs again only when setup.py changes.
STAMP := $(VENV)/.installed-stamp
# make bench also installs the extra "bench" (gunicorn); make install does not.
BENCH_STAMP := $(VENV)/.bench-installed-stamp
MANAGE := $(PY) example_project/manage.py
HOST ?= 127.0.0.1
PORT ?= 8000
PYTEST_ARGS ?=
# Test processes (pytest-xdist): the suite waits on live servers and timeouts
# as much as it computes, so two processes halve it on two cores. 0: one process.
PYTEST_WORKERS ?= 2

.PHONY: help install demo test lint docs schema bench migrations-check clean distclean

help:
	@echo "make demo              the example shop at http://$(HOST):$(PORT)/"
	@echo "make test              the test suite (SQLite, Celery eager)"
	@echo "make lint              ruff check, ruff format --check, mypy"
	@echo "make docs              the Sphinx documentation, warnings are errors"
	@echo "make schema            regenerate the API's schema docs/api/openapi.yaml"
	@echo "make bench             the benchmarks: SQLite, and PostgreSQL when DATABASE_URL"
	@echo "                       points at it; BENCH_LARGE=1 adds 1,000,000 invoices"
	@echo "make migrations-check  fail if a model change lacks its migration"
	@echo "make clean             remove build artefacts, caches, the demo database"
	@echo "make distclean         clean, and remove $(VENV)"

$(PY):
	$(PYTHON) -m venv $(VENV)

$(STAMP): setup.py | $(PY)
	$(PY) -m pip install -e ".[$(EXTRAS)]"
	touch $(STAMP)

install: $(STAMP)

demo: export BASE_URL ?= http://$(HOST):$(PORT)
demo: $(STAMP)
	$(MANAGE) migrate --noinput
	$(MANAGE) demo_superuser --username admin --password admin
	@echo
	@echo "  Shop:   $(BASE_URL)/"
	@echo "  Admin:  $(BASE_URL)/admin/  (user: admin, password: admin)"
	@echo "  Stop with Ctrl+C."
	@echo
	$(MANAGE) runserver $(HOST):$(PORT)

test: $(STAMP)
	$(BIN)/pytest -n $(PYTEST_WORKERS) $(PYTEST_ARGS)

lint: $(STAMP)
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/mypy

# The API's OpenAPI schema checked into the docs; tests/test_api_schema.py fails
# when it is stale.
schema: $(STAMP)
	$(PY) -m django_payments_ru.api --write docs/api/openapi.yaml

docs: $(STAMP)
	$(BIN)/sphinx-build -W --keep-going -b html docs docs/_build/html

$(BENCH_STAMP): $(STAMP)
	$(PY) -m pip install -e ".[$(EXTRAS),bench]"
	touch $(BENCH_STAMP)

# Figures, not a test: see docs/performance.rst and benchmarks/conftest.py.
bench: $(BENCH_STAMP)
	$(BIN)/pytest benchmarks --benchmark-only $(PYTEST_ARGS)

# An in-memory database: the check needs no data and leaves no file behind.
migrations-check: $(STAMP)
	DATABASE_URL=sqlite://:memory: $(MANAGE) makemigrations --check --dry-run

clean:
	rm -rf build dist *.egg-info docs/_build .pytest_cache .mypy_cache \
		.ruff_cache .hypothesis .benchmarks .tox example_project/db.sqlite3 \
		example_project/static
	find . -path ./$(VENV) -prune -o -name __pycache__ -type d -exec rm -rf {} +
	rm -f $(STAMP)

distclean: clean
	rm -rf $(VENV)

# Two entry points: `make demo` (Airflow with the DAGs against a target) and `make test`.
SHELL := /bin/bash
PYTHON ?= python3.11
UV_VERSION := 0.13.9
TOOLS := .tools
UV := $(TOOLS)/bin/uv
VENV := .venv
PY := $(VENV)/bin/python

.PHONY: demo celery demo-stop demo-incident demo-notice dags-test pools test lint lock bench clean

$(UV):
	$(PYTHON) -m venv $(TOOLS)
	$(TOOLS)/bin/pip install -q uv==$(UV_VERSION)

$(PY): | $(UV)
	$(UV) venv -q --python $(PYTHON) $(VENV)

# Runtime set for the demo; the test set is a superset with the same pins.
$(VENV)/.runtime: requirements.lock | $(PY)
	$(UV) pip install -q --python $(PY) -r requirements.lock
	touch $@

$(VENV)/.dev: requirements-dev.lock | $(PY)
	$(UV) pip sync -q --python $(PY) requirements-dev.lock
	touch $@ $(VENV)/.runtime

demo: $(VENV)/.runtime
	bash devtools/system-deps.sh
	$(PY) -m devtools.demo up

demo-stop:
	$(PY) -m devtools.demo down

# The demo on the distributed executor, as the compose stack runs it but as processes: Celery
# with a Redis broker and a PostgreSQL metadata database, two workers (README, "Deployments").
celery: $(VENV)/.runtime
	bash devtools/system-deps.sh
	$(PY) -m devtools.demo celery

# One incident from alert to post-mortem on the running demo (another shell): docs/operations.md.
demo-incident: $(VENV)/.runtime
	$(PY) -m devtools.demo incident

# The demo's planned window announced on the running demo (another shell): the notice, the
# board's approval waiting in the UI, the calendar page (docs/operations.md).
demo-notice: $(VENV)/.runtime
	$(PY) -m devtools.demo notice

# The pools the DAGs run in, created in the Airflow at $(AIRFLOW_HOME) (the demo's by default).
AIRFLOW_HOME ?= $(CURDIR)/.demo/airflow
pools: $(VENV)/.runtime
	PYTHONPATH=plugins $(PY) -m devtools.pools > $(AIRFLOW_HOME)/pools.json
	AIRFLOW_HOME=$(AIRFLOW_HOME) $(VENV)/bin/airflow pools import $(AIRFLOW_HOME)/pools.json

# One DAG run without the scheduler, against the running demo (or the configured target):
#   make dags-test DAG=maintenance_daily DATE=2026-11-27
dags-test: $(VENV)/.runtime
	@test -n "$(DAG)" -a -n "$(DATE)" || { echo "usage: make dags-test DAG=<dag_id> DATE=<YYYY-MM-DD>"; exit 2; }
	$(PY) -m devtools.demo dags-test $(DAG) $(DATE)

test: $(VENV)/.dev
	bash devtools/system-deps.sh
	$(PY) -m pytest $(PYTEST_ARGS)

lint: $(VENV)/.dev
	$(VENV)/bin/ruff check dags plugins devtools tests bench

bench: $(VENV)/.dev
	$(PY) -m bench.run_all

# Regenerate both locks from requirements*.txt (the upstream constraint files are not used).
lock: | $(UV)
	rm -f requirements.lock requirements-dev.lock
	$(UV) pip compile -q --python-version 3.11 requirements.txt -o requirements.lock
	$(UV) pip compile -q --python-version 3.11 requirements-dev.txt -c requirements.lock -o requirements-dev.lock

clean:
	rm -rf $(VENV) $(TOOLS) .demo

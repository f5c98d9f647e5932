# sftdesk: `make run` sets up and serves the embedded default; `make test` sets up and runs every test.
SHELL := /bin/bash
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
HOST ?= 127.0.0.1
PORT ?= 8000
# The integration pass: real PostgreSQL and Redis (override to point elsewhere).
TEST_DATABASE_URL ?= postgres://postgres@127.0.0.1:5432/test
TEST_REDIS_URL ?= redis://127.0.0.1:6379/15

.PHONY: chromium install run web worker worker-gpu migrate test test-unit test-integration lint bench-import bench-score bench-annotate bench-export bench-dashboard messages clean

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)

# torch goes in first and pinned: an unpinned torch (asked for by another package) pulls CUDA wheels.
$(VENV)/.installed: requirements.txt | $(BIN)/python
	$(BIN)/pip install --quiet --disable-pip-version-check torch==2.13.0
	$(BIN)/pip install --quiet --disable-pip-version-check -r requirements.txt
	touch $@

install: $(VENV)/.installed

migrate: install
	$(BIN)/python manage.py migrate --noinput

run: migrate
	$(BIN)/python manage.py ensure_owner
	$(BIN)/python manage.py load_demo
	HOST=$(HOST) PORT=$(PORT) bin/serve

web: migrate
	$(BIN)/python manage.py runserver $(HOST):$(PORT)

worker: install
	$(BIN)/celery -A config worker -Q cpu --loglevel=INFO

worker-gpu: install
	$(BIN)/celery -A config worker -Q gpu --concurrency=1 --loglevel=INFO

# Browser tests drive Debian's Chromium (never a downloaded browser build).
chromium:
	@command -v chromium >/dev/null || { [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null && \
	  (apt-get update -qq && apt-get install -y -qq chromium >/dev/null) || echo "chromium not installed: browser tests will skip"; }

test: install chromium
	$(MAKE) test-unit
	$(MAKE) test-integration

test-unit: install
	$(BIN)/python -m pytest -m "not integration"

test-integration: install
	DATABASE_URL=$(TEST_DATABASE_URL) REDIS_URL=$(TEST_REDIS_URL) $(BIN)/python -m pytest -m "integration or both"

lint: install
	$(BIN)/ruff check .

bench-import: install
	$(BIN)/python bench/import.py

bench-score: install
	$(BIN)/python bench/score.py --pipeline
	$(BIN)/python bench/score_models.py

# 20 annotators against gunicorn + PostgreSQL (database sftdesk_bench): saturating (think 0), then 1 s per sample.
bench-annotate: install
	$(BIN)/python bench/annotate.py --think 0,1

# 52,002 approved Alpaca samples to messages JSON Lines, then ten times as many: samples/s and peak memory.
bench-export: install
	$(BIN)/python bench/export.py

# Dashboard selectors and page at 1,000,000 samples (PostgreSQL database sftdesk_bench_dash, built once and reused).
bench-dashboard: install
	$(BIN)/python bench/dashboard.py

messages: install
	$(BIN)/python manage.py makemessages -l zh_Hans --ignore=.venv --ignore=var --ignore=tests --ignore=bench
	$(BIN)/python manage.py compilemessages --ignore=.venv

clean:
	rm -rf $(VENV) var .pytest_cache

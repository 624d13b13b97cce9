# Two commands matter: `make run` and `make test`. Everything else is what they call.
SHELL := /bin/bash
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
SQUAD ?= ../shared/eval/squad2-dev-subset.json

CHROMIUM := /usr/bin/chromium

REFERENCE_VENV := .bench/reference-venv
BENCH_OUT ?= bench-results
BENCH_ARGS ?=

.PHONY: install browser reference run index serve test test-fast lint eval bench bench-pgvector soak clean

$(STAMP): requirements.lock requirements-test.lock pyproject.toml
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -r requirements.lock -r requirements-test.lock
	$(BIN)/python -m pip install --quiet --no-deps --no-build-isolation -e .
	touch $(STAMP)

install: $(STAMP)

# The widget's browser tests drive Debian's Chromium (never a downloaded browser).
$(CHROMIUM):
	@command -v apt-get >/dev/null || { echo "Install Chromium at $(CHROMIUM) to run the browser tests"; exit 1; }
	$(if $(filter 0,$(shell id -u)),,sudo) apt-get update -qq
	DEBIAN_FRONTEND=noninteractive $(if $(filter 0,$(shell id -u)),,sudo) apt-get install -y -qq chromium

browser: $(CHROMIUM)

# The benchmark's reference pipeline (faiss-haystack pins numpy<2): its own venv, fast when up to date.
reference:
	bash bench/reference/setup.sh $(REFERENCE_VENV)

index: install ## index seeds/ (skips unchanged files, so it is cheap when nothing changed)
	$(BIN)/qa-service index seeds

run: index ## set up, index seeds/ if needed, serve on http://127.0.0.1:8000
	$(BIN)/qa-service serve --host 127.0.0.1 --port 8000

test: install browser reference
	$(BIN)/python -m pytest

test-fast: install
	$(BIN)/python -m pytest -m "not integration and not slow"

lint: install
	$(BIN)/ruff check qa_service tests
	$(BIN)/ruff format --check qa_service tests
	$(BIN)/mypy qa_service

eval: install
	$(BIN)/qa-service eval squad $(SQUAD) --json

# Ours vs the reference pipeline, the SQuAD eval and the 1M-sentence scale test; see README "Performance".
bench: install reference
	$(BIN)/qa-service bench --squad $(SQUAD) --out $(BENCH_OUT) --reference-python $(REFERENCE_VENV)/bin/python \
		--scale 1000000 $(BENCH_ARGS)

# Both backends on the SQuAD subset: eval + HTTP load, pgvector with 1 and 2 replicas (PostgreSQL on loopback).
bench-pgvector: install
	$(BIN)/python bench/pgvector_capacity.py

# Churn for SOAK_MINUTES (default 30) at bounded rates on a real server: requests, latency percentiles,
# 5xx, citation and restart checks, RSS growth (README, "Security and limits"). Not part of `make test`.
SOAK_MINUTES ?= 30
SOAK_ARGS ?=
soak: install
	$(BIN)/python bench/soak.py --minutes $(SOAK_MINUTES) $(SOAK_ARGS)

clean:
	rm -rf $(VENV) index/store.sqlite* index/*.faiss* index/manifest.json

# Two commands on a fresh machine: `make replay` and `make test`. Both build .venv themselves.
PYTHON ?= python3
VENV   := .venv
PY     := $(VENV)/bin/python
STAMP  := $(VENV)/.installed
SAMPLE ?= recordings/sample.db
NAME   ?= $(shell date -u +%Y%m%dT%H%M%SZ)

.PHONY: all venv replay test lint bench record sample clean

all: test

$(STAMP): pyproject.toml
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet -e '.[dev]'
	touch $(STAMP)

venv: $(STAMP)

replay: $(STAMP)
	$(PY) -m harness replay $(SAMPLE)
	$(PY) -m harness check $(SAMPLE)

lint: $(STAMP)
	$(VENV)/bin/ruff check harness tests bench fixtures

test: $(STAMP) lint
	$(VENV)/bin/pytest -q

bench: $(STAMP)
	$(PY) -m bench

record: $(STAMP)
	$(PY) -m harness record --kalshi-series KXBTC15M --exchanges coinbase,kraken,bitstamp,gemini,cryptocom \
	  --duration 15m -o recordings/live-$(NAME).db

# The interim sample: our own hand-made frames (fixtures/make_sample_frames.py), imported.
sample: $(STAMP)
	$(PY) fixtures/make_sample_frames.py
	rm -f $(SAMPLE)
	$(PY) -m harness import jsonl fixtures/sample_frames.jsonl -o $(SAMPLE)

clean:
	rm -rf $(VENV) .pytest_cache .ruff_cache

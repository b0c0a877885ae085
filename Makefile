# Two commands on a fresh machine: `make replay` and `make test`. Both build .venv themselves.
PYTHON ?= python3
VENV   := .venv
PY     := $(VENV)/bin/python
STAMP  := $(VENV)/.installed
SAMPLE ?= recordings/sample.db
NAME   ?= $(shell date -u +%Y%m%dT%H%M%SZ)

.PHONY: all venv replay test lint bench record sample soak clean

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

# The committed samples are simulated (harness simulate, fixed seeds); see recordings/README.md.
sample: $(STAMP)
	$(PY) -m harness simulate -o $(SAMPLE) --minutes 20 --seed 20261125
	$(PY) -m harness simulate -o recordings/faults.db --minutes 4 --seed 7 --faults default

# Ten minutes of simulated traffic at 10x through the server with faults, recorded live with checks.
soak: $(STAMP)
	$(PY) -m bench.soak

clean:
	rm -rf $(VENV) .pytest_cache .ruff_cache

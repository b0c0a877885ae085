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

# Wide tables in logs (rich wraps at 80 columns when stdout is not a terminal).
export COLUMNS ?= 160
# faults.db was made with faults on purpose: the checks must find exactly these.
FAULTS_EXPECT := format.invalid_json,sequence.gap,sequence.crossed,sequence.reconnect,quality.stale_venue

replay: $(STAMP)
	$(PY) -m harness replay $(SAMPLE)
	$(PY) -m harness check $(SAMPLE)
	$(PY) -m harness check recordings/rest_poll.db --only freshness
	$(PY) -m harness check recordings/faults.db --expect $(FAULTS_EXPECT)

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
	$(PY) -m harness simulate -o recordings/rest_poll.db --minutes 5 --seed 11 --rest-poll 5

# Ten minutes of simulated traffic at 10x through the server with faults, recorded live with checks.
soak: $(STAMP)
	$(PY) -m bench.soak

clean:
	rm -rf $(VENV) .pytest_cache .ruff_cache

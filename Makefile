# Two commands set everything up: `make run` and `make test`. Both create .venv when needed.
PYTHON ?= python3
VENV   ?= .venv
HOST   ?= 127.0.0.1
PORT   ?= 8080
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed

# A development key for `make run` only; the service refuses it outside development.
DEV_KEYS := local:local-dev-key-change-me

.PHONY: install run test lint format typecheck pytest openapi demo bench clean

$(STAMP): pyproject.toml bot_client/pyproject.toml
	$(PYTHON) -c 'import sys; sys.exit("result-relay needs Python 3.11+") if sys.version_info < (3, 11) else None'
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	# Two distributions: the service (result-relay) and the bot's client (result-relay-client).
	$(BIN)/python -m pip install --quiet -e './bot_client[discord]' -e '.[dev,postgres]'
	touch $(STAMP)

install: $(STAMP)

run: $(STAMP)
	mkdir -p data
	RELAY_ENVIRONMENT=$${RELAY_ENVIRONMENT:-development} \
	RELAY_API_KEYS=$${RELAY_API_KEYS:-$(DEV_KEYS)} \
	$(BIN)/result-relay serve --host $(HOST) --port $(PORT)

test: lint typecheck pytest

lint: $(STAMP)
	$(BIN)/ruff check service bot_client tests bench
	$(BIN)/ruff format --check service bot_client tests bench

format: $(STAMP)
	$(BIN)/ruff check --fix service bot_client tests bench
	$(BIN)/ruff format service bot_client tests bench

typecheck: $(STAMP)
	$(BIN)/mypy

pytest: $(STAMP)
	$(BIN)/pytest -q

openapi: $(STAMP)
	$(BIN)/result-relay openapi > openapi.yaml

demo: $(STAMP)
	$(BIN)/result-relay demo

bench: $(STAMP)
	$(BIN)/python bench/ingest.py
	$(BIN)/python bench/delivery.py

clean:
	rm -rf $(VENV) .pytest_cache .mypy_cache .ruff_cache .hypothesis

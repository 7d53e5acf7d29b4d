# The quickstart: `make demo` and `make test` each create .venv and install what they need.
PYTHON ?= $(shell command -v python3.11 || command -v python3)
VENV := .venv
BIN := $(VENV)/bin

.PHONY: demo test lint bench clean

$(BIN)/labelwise: pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install -q --upgrade pip
	$(BIN)/python -m pip install -q -e ".[pipeline,server,dev]"
	touch $@

demo: $(BIN)/labelwise
	$(BIN)/labelwise demo

test: $(BIN)/labelwise
	$(BIN)/python -m pytest -q

lint: $(BIN)/labelwise
	$(BIN)/ruff check .

bench: $(BIN)/labelwise
	$(BIN)/python -m pip install -q -e ".[pipeline,server,dev,bench]"
	$(BIN)/python -m benchmarks.quality --json benchmarks/quality.json --markdown benchmarks/quality.md

clean:
	rm -rf $(VENV) .labelwise data

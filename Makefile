# The quickstart: `make demo` and `make test` each create .venv and install what they need.
PYTHON ?= $(shell command -v python3.11 || command -v python3)
VENV := .venv
BIN := $(VENV)/bin

.PHONY: demo test test-fast lint bench clean example-data

$(BIN)/labelwise: pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install -q --upgrade pip
	$(BIN)/python -m pip install -q -e ".[pipeline,server,sql,tune,label-tree,dev]"
	touch $@

demo: $(BIN)/labelwise
	$(BIN)/labelwise demo

# the whole suite: unit, flow (ephemeral Prefect + SQLite MLflow) and system (real servers)
test: $(BIN)/labelwise
	$(BIN)/python -m pytest -q --durations=20

# the engine's unit tests alone (no Prefect, MLflow or servers): about two minutes
test-fast: $(BIN)/labelwise
	$(BIN)/python -m pytest -q -m "not slow and not system" tests/test_model.py \
		tests/test_data.py tests/test_split.py tests/test_thresholds_weights.py \
		tests/test_metrics.py tests/test_promotion_gate.py tests/test_config_cli.py \
		tests/test_lgb_threads.py

# ruff lint + format check, strict mypy over labelwise/ (tasks and flows too), the import contracts
lint: $(BIN)/labelwise
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/mypy
	$(BIN)/lint-imports

bench: $(BIN)/labelwise
	$(BIN)/python -m pip install -q -e ".[pipeline,server,sql,tune,label-tree,dev,bench]"
	$(BIN)/python -m benchmarks.quality --json benchmarks/quality.json --markdown benchmarks/quality.md

# configs/events-partitioned.yaml's folder: the 30 days before today (ADD_TODAY=1: today too)
example-data: $(BIN)/labelwise
	$(BIN)/python -m labelwise.pipeline.examples data/events $(if $(ADD_TODAY),--add-today)

clean:
	rm -rf $(VENV) .labelwise data

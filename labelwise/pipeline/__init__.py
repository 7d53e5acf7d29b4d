"""Adapters between the engine and the production path: the YAML config, the embedded-state
environment, a config's tables as engine inputs. Above the engine, below the Prefect tasks and
flows (the MLflow model file, ``labelwise/mlflow_model.py``, sits beside this package)."""

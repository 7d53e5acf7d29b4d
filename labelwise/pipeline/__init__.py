"""Adapters between the engine and the production path: the YAML config, the embedded-state
environment, a config's tables as engine inputs, and the MLflow pyfunc model file. Above the
engine, below the Prefect tasks and flows."""

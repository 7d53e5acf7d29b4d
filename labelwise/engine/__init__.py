"""The engine: a scikit-learn-style multi-label library (polars, numpy, LightGBM, scikit-learn).

It imports no orchestration, tracking or data-contract library (prefect, mlflow,
great_expectations): the import contract in ``pyproject.toml`` holds that in CI.
"""

"""Prefect flows: train, promote, rollback, predict (composition, parameters, schedules)."""

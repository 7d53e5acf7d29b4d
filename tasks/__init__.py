"""Prefect tasks: the effects around the engine (read, validate, train, track, register)."""

"""Parameter constraints, declared next to the parameters and checked in one place.

After scikit-learn's ``_parameter_constraints``: a class lists, per parameter, what a valid value
is (``None``, a type, an :class:`Interval` or :class:`Options`), and :func:`check_params` checks
them all, raising :class:`~labelwise.engine.errors.ConfigError` with the parameter's name. The YAML
loader reports that name under its config path (``thresholds.fixed``), so a setting is declared,
defaulted and validated once, where the engine defines it.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from numbers import Integral, Real
from typing import Any, Self

from labelwise.engine.errors import ConfigError


@dataclass(frozen=True)
class Interval:
    """Numbers of ``kind`` (``int`` or ``float``) between ``low`` and ``high`` (None: open)."""

    kind: type
    low: float | None = None
    high: float | None = None
    closed: str = "both"  # both | left | right | neither

    def __contains__(self, value: Any) -> bool:
        if isinstance(value, bool):
            return False
        if self.kind is int and not isinstance(value, Integral):
            return False
        if not isinstance(value, Real) or math.isnan(value):
            return False
        v = float(value)
        lo_ok = self.low is None or (
            v >= self.low if self.closed in ("both", "left") else v > self.low
        )
        hi_ok = self.high is None or (
            v <= self.high if self.closed in ("both", "right") else v < self.high
        )
        return lo_ok and hi_ok

    def __str__(self) -> str:
        what = "an integer" if self.kind is int else "a number"
        left = "[" if self.closed in ("both", "left") else "("
        right = "]" if self.closed in ("both", "right") else ")"
        low = "-inf" if self.low is None else f"{self.low:g}"
        high = "inf" if self.high is None else f"{self.high:g}"
        return f"{what} in {left}{low}, {high}{right}"


@dataclass(frozen=True)
class Options:
    """One of a fixed set of values."""

    values: tuple[Any, ...]

    def __contains__(self, value: Any) -> bool:
        return isinstance(value, str | bool | int | float) and value in self.values

    def __str__(self) -> str:
        return "one of " + ", ".join(repr(v) for v in self.values)


Constraint = None | type | Interval | Options


def _satisfies(value: Any, constraint: Constraint) -> bool:
    if constraint is None:
        return value is None
    if isinstance(constraint, type):
        return isinstance(value, constraint) and not (
            isinstance(value, bool) and constraint is not bool
        )
    return value in constraint


def _describe(constraint: Constraint) -> str:
    if constraint is None:
        return "None"
    if isinstance(constraint, type):
        return f"a {constraint.__name__}"
    return str(constraint)


def check_params(
    params: Mapping[str, Any], constraints: Mapping[str, Iterable[Constraint]]
) -> None:
    """Raise ConfigError (``.param`` = the name) for the first value no constraint admits."""
    for name, allowed in constraints.items():
        if name not in params:
            continue
        value = params[name]
        options = list(allowed)
        if not any(_satisfies(value, c) for c in options):
            wanted = " or ".join(_describe(c) for c in options)
            raise ConfigError(f"{name} must be {wanted}, got {value!r}", param=name)


class Parameters:
    """scikit-learn's estimator protocol (``get_params``, ``set_params``, a repr of the
    non-default parameters) for a class whose ``__init__`` stores each parameter as is.

    ``sklearn.base.clone`` and grid searches only need these two methods; inheriting
    ``BaseEstimator`` instead would import scikit-learn (1-1.5 s) in every command that reads
    a config, including those that never fit.
    """

    @classmethod
    def _param_names(cls) -> list[str]:
        import inspect

        init = inspect.signature(cls.__init__).parameters.values()
        varargs = (inspect.Parameter.VAR_POSITIONAL, inspect.Parameter.VAR_KEYWORD)
        return sorted(p.name for p in init if p.name != "self" and p.kind not in varargs)

    def get_params(self, deep: bool = True) -> dict[str, Any]:
        """The constructor's parameters by name (``deep`` kept for scikit-learn's API: no
        parameter is itself an estimator)."""
        return {name: getattr(self, name) for name in self._param_names()}

    def set_params(self, **params: Any) -> Self:
        """Set constructor parameters by name; an unknown name is an error."""
        known = self._param_names()
        for name, value in params.items():
            if name not in known:
                raise ValueError(
                    f"invalid parameter {name!r} for {type(self).__name__}; valid: {known}"
                )
            setattr(self, name, value)
        return self

    def __repr__(self) -> str:
        import inspect

        init = inspect.signature(type(self).__init__).parameters
        changed = [
            f"{name}={value!r}"
            for name, value in self.get_params().items()
            if not _same(value, init[name].default)
        ]
        return f"{type(self).__name__}({', '.join(changed)})"


def _same(a: Any, b: Any) -> bool:
    try:
        return bool(a is b or a == b)
    except Exception:  # arrays and the like compare element-wise
        return False

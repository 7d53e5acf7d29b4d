"""The promotion gate: does a challenger beat the champion, evaluated on the same rows?

A challenger replaces the champion only when its ``metric`` gains more than the rule asks (above
0 with ``min_gain=0``, at least ``min_gain`` otherwise) and no label with enough support
(``min_label_support`` true rows) loses more than ``max_label_regression`` F1: an aggregate gain
bought with a broken label is refused.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass, field
from typing import ClassVar

from labelwise.engine.errors import ConfigError
from labelwise.engine.params import Constraint, Interval, check_params


@dataclass(frozen=True)
class Evaluation:
    """A model scored on a table: its metrics, a row per label (``label``, ``f1``,
    ``support``, ...) and the labels the model knows (empty: the per-label rows' labels)."""

    metrics: Mapping[str, float]
    per_label: Sequence[Mapping[str, str | float | int]]
    labels: tuple[str, ...] = ()


@dataclass(frozen=True)
class Regression:
    """A label whose F1 the challenger lowers by more than the rule allows."""

    label: str
    champion_f1: float
    challenger_f1: float
    support: int


@dataclass(frozen=True)
class Decision:
    """The gate's verdict on two evaluations of the same rows; ``reasons`` say why, in words."""

    promote: bool
    reasons: tuple[str, ...]
    gain: float = 0.0
    champion_score: float = 0.0
    challenger_score: float = 0.0
    regressions: tuple[Regression, ...] = ()
    lost_labels: tuple[str, ...] = ()
    gained_labels: tuple[str, ...] = field(default=())

    def as_json(self) -> dict[str, object]:
        """The decision as JSON-ready values (the promotion run's ``decision.json``)."""
        return asdict(self)


@dataclass(frozen=True)
class PromotionRule:
    """When a challenger may replace the champion (see the module docstring)."""

    # read by the YAML loader (pydantic): an unknown key is an error, not a silent default
    __pydantic_config__: ClassVar[dict[str, str]] = {"extra": "forbid"}

    metric: str = "f1_macro"
    higher_is_better: bool = True
    min_gain: float = 0.0
    max_label_regression: float = 0.05
    min_label_support: int = 20
    allow_label_changes: bool = False

    _constraints: ClassVar[dict[str, list[Constraint]]] = {
        "metric": [str],
        "higher_is_better": [bool],
        "min_gain": [Interval(float, 0)],
        "max_label_regression": [Interval(float, 0, 1)],
        "min_label_support": [Interval(int, 1)],
        "allow_label_changes": [bool],
    }

    def __post_init__(self) -> None:
        from labelwise.engine.metrics import metric_names

        check_params(asdict(self), self._constraints)
        self.check_metric(metric_names())

    def check_metric(self, known: list[str]) -> None:
        """Refuse a ``metric`` the evaluation does not compute, naming the ones it does."""
        if self.metric not in known:
            raise ConfigError(
                f"metric {self.metric!r} is not a metric labelwise computes; choose one of "
                f"{sorted(known)}",
                param="metric",
            )

    def describe(self) -> str:
        """The rule in words, as the gate's reasons and the promotion run show it."""
        need = "above 0" if self.min_gain == 0 else f"of at least {self.min_gain:g}"
        return (
            f"{self.metric} ({'higher' if self.higher_is_better else 'lower'} is better) must "
            f"gain {need}; no label with {self.min_label_support}+ true rows may lose more "
            f"than {self.max_label_regression:g} F1"
        )


def gate(champ: Evaluation, chal: Evaluation, rule: PromotionRule) -> Decision:
    """Decide from two evaluations of the same rows; ``reasons`` say why, in words."""
    rule.check_metric(list(chal.metrics))
    a, b = champ.metrics[rule.metric], chal.metrics[rule.metric]
    gain = (b - a) if rule.higher_is_better else (a - b)
    ok_gain = gain > 0 if rule.min_gain == 0 else gain >= rule.min_gain
    need = "above 0" if rule.min_gain == 0 else f"at least {rule.min_gain:g}"
    reasons = [
        f"{rule.metric}: champion {a:.4f}, challenger {b:.4f}, gain {gain:+.4f} "
        f"({'enough' if ok_gain else 'not enough'}: the rule asks for a gain {need})"
    ]
    regressions = label_regressions(champ, chal, rule)
    if regressions:
        names = ", ".join(x.label for x in regressions[:10])
        reasons.append(
            f"{len(regressions)} label(s) lose more than {rule.max_label_regression:g} F1: {names}"
        )
    lost, gained = label_changes(list(champ.labels), list(chal.labels))
    changed_ok = True
    if lost or gained:
        changed_ok = rule.allow_label_changes
        reasons.append(
            f"the label set changed: lost {lost[:10] or 'none'}, gained {gained[:10] or 'none'}; "
            f"compared on the {len(chal.per_label)} shared label(s)"
            + (
                ""
                if changed_ok
                else " and refused (set promotion.allow_label_changes: true to accept it)"
            )
        )
    return Decision(
        promote=bool(ok_gain and not regressions and changed_ok),
        reasons=tuple(reasons),
        gain=gain,
        champion_score=a,
        challenger_score=b,
        regressions=tuple(regressions),
        lost_labels=tuple(lost),
        gained_labels=tuple(gained),
    )


def label_changes(champion: list[str], challenger: list[str]) -> tuple[list[str], list[str]]:
    """(labels the challenger lost, labels it gained) against the champion."""
    new, old = set(challenger), set(champion)
    return [x for x in champion if x not in new], [x for x in challenger if x not in old]


def label_regressions(champ: Evaluation, chal: Evaluation, rule: PromotionRule) -> list[Regression]:
    """Labels with enough support whose F1 drops by more than the rule allows."""
    before = {str(r["label"]): float(r["f1"]) for r in champ.per_label}
    out = []
    for r in chal.per_label:
        label, f1, support = str(r["label"]), float(r["f1"]), int(r["support"])
        old = before.get(label)
        if old is None or support < rule.min_label_support:
            continue
        if old - f1 > rule.max_label_regression:
            out.append(Regression(label, round(old, 4), round(f1, 4), support))
    return out

"""The promotion gate: does a challenger beat the champion, evaluated on the same rows?

A challenger replaces the champion only when its ``metric`` gains more than the rule asks (above
0 with ``min_gain=0``, at least ``min_gain`` otherwise) and no label with enough support
(``min_label_support`` true rows) loses more than ``max_label_regression`` F1: an aggregate gain
bought with a broken label is refused.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any, ClassVar

from labelwise.engine.errors import ConfigError
from labelwise.engine.params import Constraint, Interval, check_params

# {"metrics": {name: value}, "per_label": [{label, f1, support}], "labels": the model's labels}
Evaluation = dict[str, Any]


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


def gate(champ: Evaluation, chal: Evaluation, rule: PromotionRule) -> dict[str, Any]:
    """Decide from two evaluations of the same rows; ``reasons`` say why, in words."""
    rule.check_metric(list(chal["metrics"]))
    a, b = champ["metrics"][rule.metric], chal["metrics"][rule.metric]
    gain = (b - a) if rule.higher_is_better else (a - b)
    ok_gain = gain > 0 if rule.min_gain == 0 else gain >= rule.min_gain
    need = "above 0" if rule.min_gain == 0 else f"at least {rule.min_gain:g}"
    reasons = [
        f"{rule.metric}: champion {a:.4f}, challenger {b:.4f}, gain {gain:+.4f} "
        f"({'enough' if ok_gain else 'not enough'}: the rule asks for a gain {need})"
    ]
    regressions = label_regressions(champ, chal, rule)
    if regressions:
        names = ", ".join(x["label"] for x in regressions[:10])
        reasons.append(
            f"{len(regressions)} label(s) lose more than {rule.max_label_regression:g} F1: {names}"
        )
    lost, gained = label_changes(champ.get("labels", []), chal.get("labels", []))
    changed_ok = True
    if lost or gained:
        changed_ok = rule.allow_label_changes
        reasons.append(
            f"the label set changed: lost {lost[:10] or 'none'}, gained {gained[:10] or 'none'}; "
            f"compared on the {len(chal['per_label'])} shared label(s)"
            + (
                ""
                if changed_ok
                else " and refused (set promotion.allow_label_changes: true to accept it)"
            )
        )
    return {
        "promote": bool(ok_gain and not regressions and changed_ok),
        "lost_labels": lost,
        "gained_labels": gained,
        "gain": gain,
        "champion_score": a,
        "challenger_score": b,
        "regressions": regressions,
        "reasons": reasons,
    }


def label_changes(champion: list[str], challenger: list[str]) -> tuple[list[str], list[str]]:
    """(labels the challenger lost, labels it gained) against the champion."""
    new, old = set(challenger), set(champion)
    return [x for x in champion if x not in new], [x for x in challenger if x not in old]


def label_regressions(
    champ: Evaluation, chal: Evaluation, rule: PromotionRule
) -> list[dict[str, Any]]:
    """Labels with enough support whose F1 drops by more than the rule allows."""
    before = {r["label"]: r for r in champ["per_label"]}
    out = []
    for r in chal["per_label"]:
        old = before.get(r["label"])
        if old is None or r["support"] < rule.min_label_support:
            continue
        if old["f1"] - r["f1"] > rule.max_label_regression:
            out.append(
                {
                    "label": r["label"],
                    "champion_f1": round(old["f1"], 4),
                    "challenger_f1": round(r["f1"], 4),
                    "support": r["support"],
                }
            )
    return out

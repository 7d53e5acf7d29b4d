from __future__ import annotations

import pytest

from labelwise.engine.promotion import Evaluation, PromotionRule, gate


def _ev(score, f1s, support=50):
    return Evaluation(
        metrics={"f1_macro": score, "hamming_loss": 1 - score},
        per_label=[{"label": f"l{i}", "f1": f, "support": support} for i, f in enumerate(f1s)],
    )


def test_gate_accepts_better_and_refuses_worse():
    rule = PromotionRule(
        metric="f1_macro", min_gain=0.01, max_label_regression=0.05, min_label_support=20
    )
    assert gate(_ev(0.50, [0.5, 0.5]), _ev(0.55, [0.55, 0.55]), rule).promote
    worse = gate(_ev(0.50, [0.5, 0.5]), _ev(0.45, [0.45, 0.45]), rule)
    assert not worse.promote and "not enough" in worse.reasons[0]
    tiny = gate(_ev(0.50, [0.5, 0.5]), _ev(0.505, [0.5, 0.51]), rule)
    assert not tiny.promote
    # better on average, but one well-supported label collapses
    reg = gate(_ev(0.50, [0.8, 0.2]), _ev(0.60, [0.6, 0.6]), rule)
    assert not reg.promote and reg.regressions[0].label == "l0"
    # the same collapse on a label with too little support does not block
    low = gate(_ev(0.50, [0.8, 0.2], support=5), _ev(0.60, [0.6, 0.6], support=5), rule)
    assert low.promote
    # lower-is-better metrics
    rule2 = PromotionRule(metric="hamming_loss", higher_is_better=False, min_gain=0.0)
    assert gate(_ev(0.50, [0.5]), _ev(0.60, [0.6]), rule2).promote
    with pytest.raises(ValueError, match="not a metric"):
        PromotionRule(metric="nope")


def test_gate_reasons_never_contradict_themselves():
    """A zero gain under min_gain 0 is refused, and the reason says why in the rule's terms
    (it once read "gain +0.0000 (below the minimum 0.0)")."""
    same = gate(_ev(0.5, [0.5]), _ev(0.5, [0.5]), PromotionRule())
    assert not same.promote
    assert "gain +0.0000 (not enough: the rule asks for a gain above 0)" in same.reasons[0]
    up = gate(_ev(0.5, [0.5]), _ev(0.52, [0.52]), PromotionRule(min_gain=0.02))
    assert up.promote and "(enough: the rule asks for a gain at least 0.02)" in up.reasons[0]

from __future__ import annotations

import pytest

from flows.promote import gate
from labelwise.config import PromotionConfig


def _ev(score, f1s, support=50):
    return {"metrics": {"f1_macro": score, "hamming_loss": 1 - score},
            "per_label": [{"label": f"l{i}", "f1": f, "support": support}
                          for i, f in enumerate(f1s)]}


def test_gate_accepts_better_and_refuses_worse():
    rule = PromotionConfig(metric="f1_macro", min_gain=0.01, max_label_regression=0.05,
                           min_label_support=20)
    assert gate(_ev(0.50, [0.5, 0.5]), _ev(0.55, [0.55, 0.55]), rule)["promote"]
    worse = gate(_ev(0.50, [0.5, 0.5]), _ev(0.45, [0.45, 0.45]), rule)
    assert not worse["promote"] and "below" in worse["reasons"][0]
    tiny = gate(_ev(0.50, [0.5, 0.5]), _ev(0.505, [0.5, 0.51]), rule)
    assert not tiny["promote"]
    # better on average, but one well-supported label collapses
    reg = gate(_ev(0.50, [0.8, 0.2]), _ev(0.60, [0.6, 0.6]), rule)
    assert not reg["promote"] and reg["regressions"][0]["label"] == "l0"
    # the same collapse on a label with too little support does not block
    low = gate(_ev(0.50, [0.8, 0.2], support=5), _ev(0.60, [0.6, 0.6], support=5), rule)
    assert low["promote"]
    # lower-is-better metrics
    rule2 = PromotionConfig(metric="hamming_loss", higher_is_better=False, min_gain=0.0)
    assert gate(_ev(0.50, [0.5]), _ev(0.60, [0.6]), rule2)["promote"]
    with pytest.raises(ValueError, match="not a metric"):
        gate(_ev(0.5, [0.5]), _ev(0.5, [0.5]), PromotionConfig(metric="nope"))

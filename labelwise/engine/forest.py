"""The boosters of one level (labels x cross-fit members) as a few LightGBM models, so that
one call scores many boosters: what a served row costs is LightGBM's per-call overhead
times the calls, not the trees.

Each booster becomes one class of a ``multiclassova`` model: LightGBM adds up a class's trees
in the booster's own order and applies the same sigmoid a binary booster does, so each
probability is the booster's own. A class with fewer trees than the model's longest is padded
with single-leaf zero trees; boosters are grouped by tree count (within ``GROUP_RATIO``) to
keep the padding, which every row pays for, small. Built in memory from the boosters' model
text, which stays the model's source of truth."""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING

import numpy as np

from labelwise.engine.label_model import LabelModel

if TYPE_CHECKING:
    import lightgbm as lgb

# the longest booster of a group has at most this many times the trees of its shortest
GROUP_RATIO = 1.25
_ZERO_TREE = (
    "num_leaves=1\nnum_cat=0\nsplit_feature=\nsplit_gain=\nthreshold=\ndecision_type=\n"
    "left_child=\nright_child=\nleaf_value=0\nleaf_weight=\nleaf_count=\ninternal_value=\n"
    "internal_weight=\ninternal_count=\nis_linear=0\nshrinkage=1\n"
)
_TREE = re.compile(r"^Tree=\d+\n", flags=re.M)


@dataclass(frozen=True)
class _Booster:
    """One booster's trees (model text blocks) and where its probability goes."""

    label: int
    trees: list[str]
    head: dict[str, str]


@dataclass(frozen=True)
class _Group:
    """A merged model and the label of each of its classes."""

    booster: lgb.Booster
    labels: np.ndarray


class MergedForest:
    """The mean probability over members of each label, from few LightGBM calls.

    ``members[i][j]`` is member ``i``'s model of label ``j`` (a booster or a constant), as
    :class:`~labelwise.engine.classifier.LabelwiseClassifier` keeps its cross-fitted levels.
    ``predict_proba(X)`` equals averaging each member's ``LabelModel.predict`` (to float
    rounding: the sum runs in another order)."""

    def __init__(self, members: Sequence[Sequence[LabelModel]]) -> None:
        self.n_members, self.n_labels = len(members), len(members[0])
        self.constants = np.zeros(self.n_labels)
        boosters: list[_Booster] = []
        for member in members:
            for j, model in enumerate(member):
                if model.booster is None:
                    self.constants[j] += float(model.constant or 0.0)
                else:
                    head, trees = _parse(model.to_text())
                    boosters.append(_Booster(j, trees, head))
        self.groups = [_merge(g) for g in _grouped(boosters)]

    @property
    def n_calls(self) -> int:
        """LightGBM calls per prediction (one per group)."""
        return len(self.groups)

    def predict_proba(self, X: np.ndarray, num_threads: int = 1) -> np.ndarray:
        """Probabilities (n x labels, float64), the members' mean."""
        n = X.shape[0]
        out = np.tile(self.constants, (n, 1))
        if n == 0:  # LightGBM's empty answer cannot be reshaped to n x labels
            return out
        rows = np.arange(n)[:, None]
        for g in self.groups:
            P = np.asarray(g.booster.predict(X, num_threads=num_threads), dtype=np.float64)
            np.add.at(out, (rows, g.labels[None, :]), P.reshape(n, -1))
        out /= self.n_members
        return out


def _parse(text: str) -> tuple[dict[str, str], list[str]]:
    """A booster's header fields and its trees' text blocks."""
    head, _, rest = text.partition("\nTree=0\n")
    body = "Tree=0\n" + rest.split("\nend of trees", 1)[0]
    trees = [t.strip("\n") + "\n" for t in _TREE.split(body)[1:]]
    fields = dict(line.split("=", 1) for line in head.splitlines()[1:] if "=" in line)
    return fields, trees


def _grouped(boosters: list[_Booster]) -> list[list[_Booster]]:
    """Boosters that can share a model (same objective and features), longest first, cut
    where the shortest would be padded by more than ``GROUP_RATIO``."""
    by_kind: dict[tuple[str, str], list[_Booster]] = {}
    for b in boosters:
        key = (b.head.get("objective", ""), b.head.get("max_feature_idx", ""))
        by_kind.setdefault(key, []).append(b)
    groups: list[list[_Booster]] = []
    for same in by_kind.values():
        same.sort(key=lambda b: -len(b.trees))
        current: list[_Booster] = []
        for b in same:
            if current and len(current[0].trees) > GROUP_RATIO * max(len(b.trees), 1):
                groups.append(current)
                current = []
            current.append(b)
        groups.append(current)
    return groups


def _merge(group: list[_Booster]) -> _Group:
    """One LightGBM model whose classes are the group's boosters (one booster: itself)."""
    import lightgbm as lgb

    head, k = group[0].head, len(group)
    objective = head.get("objective", "binary sigmoid:1")
    if not objective.startswith("binary"):
        raise ValueError(f"only binary boosters can be merged, not {objective!r}")
    sigmoid = next((p for p in objective.split() if p.startswith("sigmoid:")), "sigmoid:1")
    if k == 1:
        lines = [f"{key}={head[key]}" for key in _HEAD if key in head]
        trees = group[0].trees
    else:
        lines = [
            "version=v4",
            f"num_class={k}",
            f"num_tree_per_iteration={k}",
            "label_index=0",
            f"max_feature_idx={head['max_feature_idx']}",
            f"objective=multiclassova num_class:{k} {sigmoid}",
            f"feature_names={head['feature_names']}",
            f"feature_infos={head['feature_infos']}",
        ]
        longest = len(group[0].trees)
        trees = [
            b.trees[i] if i < len(b.trees) else _ZERO_TREE for i in range(longest) for b in group
        ]
    blocks = [f"Tree={i}\n{t}" for i, t in enumerate(trees)]
    text = "\n".join(["tree", *lines, "", *blocks, "end of trees", ""])
    labels = np.array([b.label for b in group], dtype=np.intp)
    return _Group(lgb.Booster(model_str=text), labels)


_HEAD = (
    "version",
    "num_class",
    "num_tree_per_iteration",
    "label_index",
    "max_feature_idx",
    "objective",
    "feature_names",
    "feature_infos",
)

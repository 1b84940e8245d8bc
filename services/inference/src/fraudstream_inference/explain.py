"""Reasons: which features pushed a transaction's score, from the model's own trees.

Path attribution (Saabas) on the ONNX tree ensemble: in each tree, every split on the path of
the transaction moves the expected leaf value from the node's to the child's; that move is
credited to the split's feature. The credits and the trees' root values add up exactly to the
model's margin (the logit behind the score). ONNX keeps no node covers, so a node's expected
value is the plain mean of the leaves under it. Computed only when asked (`explain=true`),
once per row, from a parse of the graph cached per model version.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from functools import lru_cache

import numpy as np
import onnx
from onnx import helper

from fraudstream_common.features.definitions import FEATURE_NAMES
from fraudstream_inference.model import ScoringModel

TOP_REASONS = 5


@dataclass(frozen=True)
class Contribution:
    name: str
    value: float
    contribution: float


class _Checker:
    @staticmethod
    def goes_true(mode: str, x: float, threshold: float) -> bool:
        if mode == "BRANCH_LT":
            return x < threshold
        if mode == "BRANCH_LEQ":
            return x <= threshold
        if mode == "BRANCH_GT":
            return x > threshold
        if mode == "BRANCH_GTE":
            return x >= threshold
        if mode == "BRANCH_EQ":
            return x == threshold
        return x != threshold


@dataclass(frozen=True)
class _Node:
    feature: int
    threshold: float
    mode: str
    true_child: int
    false_child: int
    missing_true: bool
    expected: float
    leaf: bool


class TreeExplainer:
    def __init__(self, onnx_model: bytes) -> None:
        graph = onnx.load_from_string(onnx_model).graph
        (ensemble,) = [n for n in graph.node if n.op_type == "TreeEnsembleClassifier"]
        attrs = {a.name: helper.get_attribute_value(a) for a in ensemble.attribute}
        base = attrs.get("base_values", [0.0])
        self.base = float(base[-1]) if len(base) else 0.0
        leaves: dict[tuple[int, int], float] = {}
        class_ids = attrs.get("class_ids", [0] * len(attrs["class_treeids"]))
        positive = max(class_ids) if class_ids else 0
        for tree, node, class_id, weight in zip(
            attrs["class_treeids"], attrs["class_nodeids"], class_ids, attrs["class_weights"], strict=True
        ):
            if class_id == positive:
                leaves[(tree, node)] = leaves.get((tree, node), 0.0) + float(weight)
        raw: dict[int, dict[int, tuple[int, float, str, int, int, bool]]] = {}
        missing = attrs.get("nodes_missing_value_tracks_true", [0] * len(attrs["nodes_nodeids"]))
        for tree, node, feature, value, mode, true_id, false_id, miss in zip(
            attrs["nodes_treeids"],
            attrs["nodes_nodeids"],
            attrs["nodes_featureids"],
            attrs["nodes_values"],
            attrs["nodes_modes"],
            attrs["nodes_truenodeids"],
            attrs["nodes_falsenodeids"],
            missing,
            strict=True,
        ):
            raw.setdefault(tree, {})[node] = (
                feature,
                float(value),
                mode.decode() if isinstance(mode, bytes) else mode,
                true_id,
                false_id,
                bool(miss),
            )
        self.trees = [
            self._tree(nodes, {n: leaves.get((tree, n), 0.0) for n in nodes}) for tree, nodes in sorted(raw.items())
        ]

    @staticmethod
    def _tree(
        nodes: dict[int, tuple[int, float, str, int, int, bool]], leaf_values: dict[int, float]
    ) -> dict[int, _Node]:
        expected: dict[int, tuple[float, int]] = {}

        def mean(node: int) -> tuple[float, int]:
            if node in expected:
                return expected[node]
            _feature, _threshold, mode, true_id, false_id, _miss = nodes[node]
            if mode == "LEAF":
                expected[node] = (leaf_values[node], 1)
            else:
                (a, n), (b, m) = mean(true_id), mean(false_id)
                expected[node] = ((a * n + b * m) / (n + m), n + m)
            return expected[node]

        built = {}
        for node, (feature, threshold, mode, true_id, false_id, miss) in nodes.items():
            built[node] = _Node(feature, threshold, mode, true_id, false_id, miss, mean(node)[0], mode == "LEAF")
        return built

    def margin_and_credits(self, row: np.ndarray) -> tuple[float, np.ndarray]:
        credits = np.zeros(len(row), dtype=np.float64)
        margin = self.base
        for tree in self.trees:
            node = tree[0]
            margin += node.expected
            while not node.leaf:
                x = float(row[node.feature])
                true = node.missing_true if math.isnan(x) else _Checker.goes_true(node.mode, x, node.threshold)
                child = tree[node.true_child if true else node.false_child]
                credits[node.feature] += child.expected - node.expected
                margin += child.expected - node.expected
                node = child
        return margin, credits


@lru_cache(maxsize=8)
def _explainer(sha256: str, onnx_model: bytes) -> TreeExplainer:
    return TreeExplainer(onnx_model)


def contributions(model: ScoringModel, row: np.ndarray, top: int = TOP_REASONS) -> list[Contribution]:
    """The `top` features by the size of their credit, for one row of FEATURE_NAMES."""
    _margin, credits = _explainer(model.sha256, model.onnx_model).margin_and_credits(row)
    order = np.argsort(-np.abs(credits))[:top]
    return [Contribution(FEATURE_NAMES[i], float(row[i]), float(credits[i])) for i in order]

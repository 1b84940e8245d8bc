"""The same boosted trees as a tensor graph: standard ONNX operators (Gather, Less, MatMul,
Equal, ReduceSum, Sigmoid) that ONNX Runtime's CUDA provider implements, where the
`ai.onnx.ml` TreeEnsemble graph has only a CPU kernel (in a CUDA session its nodes run on the
CPU). This is Hummingbird's GEMM strategy, written out for XGBoost's binary trees with numpy
and onnx.helper, so that the trainer needs no deep-learning framework.

For T trees padded to I internal nodes and L leaves each, a batch of N rows:
1. `Gather` each internal node's feature: [N, T*I]; `Less` than its threshold (XGBoost sends
   `x < threshold` left): 1 where a row goes left, 0 where it goes right.
2. Per tree, that [T, N, I] times C [T, I, L], where C[t, i, l] is 1 when leaf l lies under
   node i's left child, -1 under its right child, 0 otherwise: a leaf's sum equals D[t, l], its
   number of left turns, exactly when the row's path ends in it.
3. The leaves' values of the leaves reached, summed over trees, plus the base margin, through
   the sigmoid: the fraud probability.

The outputs are named and shaped as the TreeEnsemble graph's (`label` [N], `probabilities`
[N, 2]), so inference runs either the same way. A missing value (NaN) is not supported: the
features are never missing (the trainer's data checks refuse nulls; inference fills none).
"""

from __future__ import annotations

import json
from dataclasses import dataclass

import numpy as np
import onnx
import xgboost as xgb
from onnx import TensorProto, helper, numpy_helper

from fraudstream_modelling.model import ONNX_INPUT

# CUDA kernels for every operator used exist from opset 13 on.
TENSOR_OPSET = 15


@dataclass(frozen=True)
class _Trees:
    features: np.ndarray  # [T, I] int64: the feature each internal node splits on
    thresholds: np.ndarray  # [T, I] float32
    paths: np.ndarray  # [T, I, L] float32: +1 / -1 / 0, as the module's docstring says
    left_turns: np.ndarray  # [T, 1, L] float32
    leaves: np.ndarray  # [T, L, 1] float32
    base_margin: float


def to_tensor_onnx(model: xgb.XGBClassifier, n_features: int) -> bytes:
    """The model as a tensor graph; raises ValueError for what it cannot express (categorical
    splits, more than one output group)."""
    trees = _trees(model.get_booster())
    n_trees, internal = trees.features.shape
    leaves = trees.leaves.shape[1]
    initializers = [
        numpy_helper.from_array(trees.features.reshape(-1), "node_features"),
        numpy_helper.from_array(trees.thresholds.reshape(-1), "node_thresholds"),
        numpy_helper.from_array(np.array([-1, n_trees, internal], dtype=np.int64), "by_tree"),
        numpy_helper.from_array(trees.paths, "paths"),
        numpy_helper.from_array(trees.left_turns, "left_turns"),
        numpy_helper.from_array(trees.leaves, "leaf_values"),
        numpy_helper.from_array(np.array([0], dtype=np.int64), "tree_axis"),
        numpy_helper.from_array(np.array([trees.base_margin], dtype=np.float32), "base_margin"),
        numpy_helper.from_array(np.array([1.0], dtype=np.float32), "one"),
        numpy_helper.from_array(np.array([0.5], dtype=np.float32), "half"),
        numpy_helper.from_array(np.array([1], dtype=np.int64), "row_axis"),
    ]
    nodes = [
        helper.make_node("Gather", [ONNX_INPUT, "node_features"], ["node_inputs"], axis=1),
        helper.make_node("Less", ["node_inputs", "node_thresholds"], ["goes_left"]),
        helper.make_node("Cast", ["goes_left"], ["left"], to=TensorProto.FLOAT),
        helper.make_node("Reshape", ["left", "by_tree"], ["left_by_row"]),  # [N, T, I]
        helper.make_node("Transpose", ["left_by_row"], ["left_by_tree"], perm=[1, 0, 2]),  # [T, N, I]
        helper.make_node("MatMul", ["left_by_tree", "paths"], ["turns"]),  # [T, N, L]
        helper.make_node("Equal", ["turns", "left_turns"], ["reached"]),
        helper.make_node("Cast", ["reached"], ["reached_leaf"], to=TensorProto.FLOAT),
        helper.make_node("MatMul", ["reached_leaf", "leaf_values"], ["tree_margins"]),  # [T, N, 1]
        helper.make_node("ReduceSum", ["tree_margins", "tree_axis"], ["summed"], keepdims=0),  # [N, 1]
        helper.make_node("Add", ["summed", "base_margin"], ["margin"]),
        helper.make_node("Sigmoid", ["margin"], ["fraud"]),
        helper.make_node("Sub", ["one", "fraud"], ["genuine"]),
        helper.make_node("Concat", ["genuine", "fraud"], ["probabilities"], axis=1),
        helper.make_node("Greater", ["fraud", "half"], ["is_fraud"]),
        helper.make_node("Cast", ["is_fraud"], ["label_column"], to=TensorProto.INT64),
        helper.make_node("Squeeze", ["label_column", "row_axis"], ["label"]),
    ]
    graph = helper.make_graph(
        nodes,
        "fraudstream_trees_as_tensors",
        [helper.make_tensor_value_info(ONNX_INPUT, TensorProto.FLOAT, [None, n_features])],
        [
            helper.make_tensor_value_info("label", TensorProto.INT64, [None]),
            helper.make_tensor_value_info("probabilities", TensorProto.FLOAT, [None, 2]),
        ],
        initializers,
    )
    opsets = [helper.make_opsetid("", TENSOR_OPSET)]
    # make_model stamps the IR version of the onnx package installed here (14 with onnx 1.23),
    # which older ONNX Runtime builds refuse (1.31, the GPU image's, reads up to 13); the lowest
    # IR version that carries the opset loads wherever the opset runs.
    proto = helper.make_model(graph, opset_imports=opsets, ir_version=helper.find_min_ir_version_for(opsets))
    proto.doc_string = f"{n_trees} trees, {internal} internal nodes and {leaves} leaves each (padded)"
    onnx.checker.check_model(proto)
    serialized: bytes = proto.SerializeToString()
    return serialized


def _trees(booster: xgb.Booster) -> _Trees:
    document = json.loads(booster.save_raw("json"))
    learner = document["learner"]
    if learner["objective"]["name"] != "binary:logistic":
        raise ValueError(f"only binary:logistic is expressed, not {learner['objective']['name']}")
    model = learner["gradient_booster"]["model"]
    if any(group != 0 for group in model["tree_info"]):
        raise ValueError("only one output group is expressed")
    parsed = [_tree(tree) for tree in model["trees"]]
    internal = max(1, *(len(nodes) for nodes, _ in parsed))
    leaves = max(len(values) for _, values in parsed)
    n_trees = len(parsed)
    features = np.zeros((n_trees, internal), dtype=np.int64)
    # Padding nodes compare against +inf (always left) and no leaf depends on them.
    thresholds = np.full((n_trees, internal), np.inf, dtype=np.float32)
    paths = np.zeros((n_trees, internal, leaves), dtype=np.float32)
    # A padding leaf needs a left turn no row makes, so that no row reaches it.
    left_turns = np.full((n_trees, 1, leaves), -1.0, dtype=np.float32)
    values = np.zeros((n_trees, leaves, 1), dtype=np.float32)
    for t, (nodes, tree_leaves) in enumerate(parsed):
        for i, (feature, threshold) in enumerate(nodes):
            features[t, i], thresholds[t, i] = feature, threshold
        for leaf, (value, turns) in enumerate(tree_leaves):
            values[t, leaf, 0] = value
            left_turns[t, 0, leaf] = sum(1 for _node, left in turns if left)
            for node, left in turns:
                paths[t, node, leaf] = 1.0 if left else -1.0
    base_score = float(str(learner["learner_model_param"]["base_score"]).strip("[]"))
    base_margin = float(np.log(base_score / (1.0 - base_score)))
    return _Trees(features, thresholds, paths, left_turns, values, base_margin)


def _tree(
    tree: dict[str, list[float] | list[int]],
) -> tuple[list[tuple[int, float]], list[tuple[float, list[tuple[int, bool]]]]]:
    """A tree's internal nodes (feature, threshold), renumbered from 0, and its leaves (value,
    the internal nodes on its path with the side taken)."""
    if any(tree["split_type"]):
        raise ValueError("categorical splits are not expressed")
    left, right = tree["left_children"], tree["right_children"]
    conditions, indices = tree["split_conditions"], tree["split_indices"]
    internal: dict[int, int] = {}
    nodes: list[tuple[int, float]] = []
    leaves: list[tuple[float, list[tuple[int, bool]]]] = []
    stack: list[tuple[int, list[tuple[int, bool]]]] = [(0, [])]
    while stack:
        node, path = stack.pop()
        if left[node] == -1:
            leaves.append((float(conditions[node]), path))
            continue
        internal[node] = len(nodes)
        nodes.append((int(indices[node]), float(np.float32(conditions[node]))))
        stack.append((int(right[node]), [*path, (internal[node], False)]))
        stack.append((int(left[node]), [*path, (internal[node], True)]))
    return nodes, leaves

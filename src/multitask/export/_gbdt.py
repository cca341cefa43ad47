"""Boosted trees as ONNX: per task one ``TreeEnsemble`` (ONNX-ML opset 5) summing the trees of its boosters.

A task's raw score is ``c_t + Σ boosters[i](x[, t])`` (:class:`multitask.gbdt._boosting.TaskModel`); a booster
shared by several tasks splits on the task id, a categorical last feature. The task id is fixed for each
task, so those splits are decided here, tree by tree, and each task keeps the numeric splits on ``x`` that
its rows can reach; a tree left with a single leaf adds that leaf's value to the constant. The trees are read
from LightGBM's ``dump_model()`` (thresholds and leaf values as exact doubles) and compared in double
precision on the float32 features widened to double, as LightGBM predicts: ``x <= threshold`` goes left.
Tree ``k`` of a booster adds to raw-score column ``k mod num_tree_per_iteration`` (the class, for
multiclass). The prediction is the value, ``σ(F)`` or ``softmax(F)`` (:mod:`multitask.gbdt._objectives`).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np
from onnx import numpy_helper

from multitask.data.preprocess import Preprocessor
from multitask.errors import ConfigError
from multitask.export._graph import DOUBLE, Graph
from multitask.models._gbdt import GBDT


@dataclass
class _Trees:
    """The arrays of one ``TreeEnsemble`` node (ONNX-ML opset 5)."""

    features: list[int] = field(default_factory=list)
    splits: list[float] = field(default_factory=list)
    missing_left: list[int] = field(default_factory=list)
    true_ids: list[int] = field(default_factory=list)
    true_leafs: list[int] = field(default_factory=list)
    false_ids: list[int] = field(default_factory=list)
    false_leafs: list[int] = field(default_factory=list)
    roots: list[int] = field(default_factory=list)
    leaf_targets: list[int] = field(default_factory=list)
    leaf_weights: list[float] = field(default_factory=list)

    def leaf(self, target: int, value: float) -> tuple[int, int]:
        self.leaf_targets.append(target)
        self.leaf_weights.append(value)
        return len(self.leaf_weights) - 1, 1

    def node(self, feature: int, threshold: float, missing_left: bool) -> int:
        self.features.append(feature)
        self.splits.append(threshold)
        self.missing_left.append(int(missing_left))
        for column in (self.true_ids, self.true_leafs, self.false_ids, self.false_leafs):
            column.append(0)
        return len(self.features) - 1


def _goes_left(split: dict[str, Any], value: float) -> bool:
    """LightGBM's decision for a known value (the task id) at ``split``."""
    if split["decision_type"] == "==":
        return int(value) in {int(v) for v in str(split["threshold"]).split("||")}
    return value <= float(split["threshold"])


def _add(trees: _Trees, n: dict[str, Any], target: int, n_features: int, code: int | None, where: str
         ) -> tuple[int, int] | float:
    """Add the subtree ``n`` (as the task ``code`` reaches it) to ``trees``: ``(index, is_leaf)``, or the
    value of the single leaf it reduces to (added nowhere)."""
    if "leaf_value" in n:
        return float(n["leaf_value"])
    feature = int(n["split_feature"])
    if feature >= n_features:  # the task-id column of a shared booster: decided by the task
        if code is None:
            raise ConfigError(f"{where}: a split on feature {feature} of {n_features}")
        return _add(trees, n["left_child" if _goes_left(n, code) else "right_child"], target, n_features, code, where)
    if n["decision_type"] != "<=":
        raise ConfigError(f"{where}: a {n['decision_type']!r} split on feature {feature}; only numeric splits "
                          "on the features can be exported")
    missing = n.get("missing_type", "None")
    if missing == "Zero":
        raise ConfigError(f"{where}: a split treating zero as missing on feature {feature} cannot be exported")
    threshold = float(n["threshold"])
    # NaN goes the default way (missing type NaN), or as 0.0 would (missing type None)
    missing_left = bool(n["default_left"]) if missing == "NaN" else 0.0 <= threshold
    index = trees.node(feature, threshold, missing_left)
    for side, ids, leafs in (("left_child", trees.true_ids, trees.true_leafs),
                             ("right_child", trees.false_ids, trees.false_leafs)):
        child = _add(trees, n[side], target, n_features, code, where)
        ids[index], leafs[index] = trees.leaf(target, child) if isinstance(child, float) else child
    return index, 0


def convert(model: GBDT, g: Graph, x: str, pre: Preprocessor) -> dict[str, str]:
    """Each task's prediction in the model's units: value (standardized), probability ``[N]``, or class
    probabilities ``[N, k]``."""
    est = model.estimator_
    n_features = int(est.n_features_in_)
    dumps = [b.dump_model() for b in est.boosters_]
    x64 = g.op("Cast", [x], "x64", to=DOUBLE)
    out: dict[str, str] = {}
    for t, (task, task_model) in enumerate(zip(model.tasks_, est.task_models_, strict=True)):
        constant = np.array(task_model.constant, dtype=np.float64)
        width = len(constant)
        trees = _Trees()
        for index, code in task_model.stages:
            dump = dumps[index]
            per_iteration = int(dump["num_tree_per_iteration"])
            for k, info in enumerate(dump["tree_info"]):
                where = f"export: task {task.name!r}: booster {index}, tree {k}"
                root = _add(trees, info["tree_structure"], k % per_iteration, n_features, code, where)
                if isinstance(root, float):
                    constant[k % per_iteration] += root
                else:
                    trees.roots.append(root[0])
        if trees.roots:
            raw = g.op("TreeEnsemble", [x64], "trees", domain="ai.onnx.ml", aggregate_function=1, post_transform=0,
                       n_targets=width, tree_roots=trees.roots, nodes_featureids=trees.features,
                       nodes_modes=numpy_helper.from_array(np.zeros(len(trees.features), dtype=np.uint8)),
                       nodes_splits=numpy_helper.from_array(np.asarray(trees.splits, dtype=np.float64)),
                       nodes_missing_value_tracks_true=trees.missing_left,
                       nodes_truenodeids=trees.true_ids, nodes_trueleafs=trees.true_leafs,
                       nodes_falsenodeids=trees.false_ids, nodes_falseleafs=trees.false_leafs,
                       leaf_targetids=trees.leaf_targets,
                       leaf_weights=numpy_helper.from_array(np.asarray(trees.leaf_weights, dtype=np.float64)))
            raw = g.op("Add", [raw, g.const(constant[None, :], "constant", np.float64)], "raw")
        else:  # no tree reaches this task: its constant on every row
            rows = g.op("Slice", [g.op("Shape", [x64]), g.const([0], "start", np.int64), g.const([1], "end", np.int64)])
            shape = g.op("Concat", [rows, g.const([width], "width", np.int64)], "shape", axis=0)
            raw = g.op("Expand", [g.const(constant[None, :], "constant", np.float64), shape], "raw")
        objective = est.objectives_[t]
        if objective == "multiclass":
            out[task.name] = g.op("Softmax", [raw], "probabilities", axis=1)
        else:
            column = g.op("Gather", [raw, g.const(0, "first", np.int64)], "score", axis=1)
            out[task.name] = column if objective == "regression" else g.op("Sigmoid", [column], "probability")
    return out

"""Behaviour of each boosted estimator: early stopping, tiny tasks, errors, saving, and what sharing buys."""

from __future__ import annotations

import json
from typing import Any

import numpy as np
import pandas as pd
import pytest
import scipy.sparse as sp

from multitask.errors import ConfigError, DataError
from multitask.gbdt import GBDTIndependent, GBDTMultiTask, GBDTPooled, from_dict
from multitask.gbdt._objectives import EPS
from tests.gbdt._helpers import NAMES, OBJECTIVES, make, mixed, shared_plus_task

ALL = list(NAMES)


# ---- early stopping ----------------------------------------------------------------------------------------
@pytest.mark.parametrize("name", ALL)
def test_without_validation_every_round_is_kept(name: str) -> None:
    X, Y = mixed(seed=0)
    model = make(name, objective=OBJECTIVES, validation_fraction=None, min_child_samples=3).fit(X, Y)
    assert (model.best_iterations_ >= 30).all()


def test_early_stopping_on_an_explicit_eval_set_stops_an_overfitting_booster() -> None:
    rng = np.random.default_rng(1)
    X, X_val = rng.normal(size=(200, 4)), rng.normal(size=(200, 4))
    y, y_val = rng.normal(size=200), rng.normal(size=200)  # pure noise: every tree overfits
    model = GBDTIndependent(n_estimators=100, min_child_samples=5, n_jobs=1).fit(X, y, eval_set=(X_val, y_val))
    assert model.best_iterations_[0] < 20
    full = GBDTIndependent(n_estimators=100, min_child_samples=5, n_jobs=1, early_stopping_rounds=None).fit(
        X, y, eval_set=(X_val, y_val))
    assert full.best_iterations_[0] == 100


@pytest.mark.parametrize("name", ALL)
def test_eval_set_in_long_form(name: str) -> None:
    X, y, tasks = shared_plus_task(3, 60, seed=2)
    X_val, y_val, tasks_val = shared_plus_task(3, 20, seed=3)
    model = make(name).fit(X, y, tasks, eval_set=(X_val, y_val, tasks_val))
    assert model.best_iterations_.shape == (3,) and (model.best_iterations_ <= 30 + 10).all()
    with pytest.raises(DataError, match="tasks: task 7 was not seen"):
        make(name).fit(X, y, tasks, eval_set=(X_val, y_val, np.full(len(y_val), 7)))
    with pytest.raises(DataError, match="needs tasks_val"):
        make(name).fit(X, y, tasks, eval_set=(X_val, y_val))
    with pytest.raises(DataError, match="eval_set: expected"):
        make(name).fit(X, y, tasks, eval_set=X_val)


# ---- the multi-task estimator ------------------------------------------------------------------------------
def test_multitask_with_no_task_rounds_is_the_pooled_model() -> None:
    X, Y = mixed(seed=4)
    pooled = make("GBDTPooled", objective=OBJECTIVES).fit(X, Y)
    stage1 = make("GBDTMultiTask", objective=OBJECTIVES, task_rounds=0).fit(X, Y)
    for t in range(3):
        np.testing.assert_array_equal(pooled.predict_task(X, t), stage1.predict_task(X, t))
    assert (stage1.task_iterations_ == 0).all()


def test_a_task_with_too_few_rows_keeps_the_shared_stage() -> None:
    X, y, tasks = shared_plus_task(3, 60, seed=5)
    keep = (tasks != 2) | (np.arange(len(y)) % 60 < 8)  # task 2: 8 rows, 0 held out, below min_task_rows
    model = make("GBDTMultiTask", min_task_rows=10, min_child_samples=3).fit(X[keep], y[keep], tasks[keep])
    assert model.task_iterations_[2] == 0 and model.task_iterations_[:2].sum() > 0
    assert (model.best_iterations_ >= model.task_iterations_).all()


def test_multitask_beats_pooled_and_independent_on_shared_plus_task_effects() -> None:
    """``y = f(x) + a_t + b_t x_2 + noise``, 6 tasks of 80 training rows; test RMSE over 200 rows per task.

    Measured (seeds 0, 1, 2): RMSE ratio multi-task / pooled 0.961, 0.977, 0.978; multi-task / independent
    0.63, 0.54, 0.60.
    """
    params: dict[str, Any] = dict(n_estimators=200, learning_rate=0.1, min_child_samples=10,
                                  early_stopping_rounds=20, n_jobs=1)
    ratios = []
    for seed in range(3):
        X, y, tasks = shared_plus_task(6, 280, seed)
        train = np.tile(np.arange(280), 6) < 80
        rmse = {}
        for cls, extra in ((GBDTIndependent, {}), (GBDTPooled, {}),
                           (GBDTMultiTask, {"task_rounds": 100, "task_learning_rate": 0.1})):
            model = cls(**params, **extra).fit(X[train], y[train], tasks[train])
            error = model.predict(X[~train], tasks[~train]) - y[~train]
            rmse[cls] = np.mean([np.sqrt(np.mean(error[tasks[~train] == t] ** 2)) for t in range(6)])
        assert rmse[GBDTMultiTask] < rmse[GBDTPooled] and rmse[GBDTMultiTask] < 0.7 * rmse[GBDTIndependent]
        ratios.append(rmse[GBDTMultiTask] / rmse[GBDTPooled])
    assert np.mean(ratios) < 0.985


# ---- pooling and classes -----------------------------------------------------------------------------------
def test_multiclass_tasks_pool_by_class_count() -> None:
    rng = np.random.default_rng(6)
    X = rng.normal(size=(120, 3))
    Y = np.column_stack([np.digitize(X[:, 0], [0.0]), np.digitize(X[:, 0], [-0.5, 0.5]),
                         np.digitize(X[:, 1], [-0.5, 0.5]), X[:, 2]]).astype(float)
    objectives = ["multiclass", "multiclass", "multiclass", "regression"]
    model = make("GBDTPooled", objective=objectives, validation_fraction=None).fit(X, Y)
    assert model.n_classes_ == [2, 3, 3, None]
    shared = [m.stages[0][0] for m in model.task_models_]
    assert len(model.boosters_) == 3 and shared[1] == shared[2] and len(set(shared)) == 3
    assert model.predict_task(X, 0).shape == (120, 2) and model.predict_task(X, 1).shape == (120, 3)


def test_class_counts_are_inferred_or_given() -> None:
    X, Y = mixed(seed=7)
    with pytest.raises(DataError, match="task 2: class code 2 is not below n_classes=2"):
        make("GBDTIndependent", objective=OBJECTIVES, n_classes=2).fit(X, Y)
    with pytest.raises(ConfigError, match="n_classes: task 2 needs an integer >= 2, got 1"):
        make("GBDTIndependent", objective=OBJECTIVES, n_classes=[None, None, 1]).fit(X, Y)
    Y[Y[:, 2] == 2, 2] = 0  # the last class never appears
    inferred = make("GBDTIndependent", objective=OBJECTIVES).fit(X, Y)
    given = make("GBDTIndependent", objective=OBJECTIVES, n_classes={2: 3}).fit(X, Y)
    assert inferred.n_classes_[2] == 2 and given.n_classes_[2] == 3
    assert given.predict_task(X, 2).shape == (len(X), 3) and given.predict_task(X, 2)[:, 2].max() < 1e-3


# ---- tiny tasks: constant models computed by hand -------------------------------------------------------------
@pytest.mark.parametrize("name", ALL)
def test_constant_models_of_tasks_that_trees_cannot_help(name: str) -> None:
    X = np.arange(12, dtype=float).reshape(6, 2)
    Y = np.full((6, 3), np.nan)
    Y[0, 0] = 4.0                       # one row: its value
    Y[:, 1] = 1.0                       # one class only: the prior, kept away from 1
    Y[:3, 2] = [2, 2, 0]                # multiclass prior over 3 rows, class 1 unseen
    model = make(name, objective=["regression", "binary", "multiclass"], n_classes=[None, None, 3],
                 validation_fraction=None).fit(X, Y)
    np.testing.assert_allclose(model.predict_task(X, 0), 4.0)
    np.testing.assert_allclose(model.predict_task(X, 1), 1 - EPS)
    prior = np.array([1 / 3, EPS, 2 / 3]) / (1 + EPS)
    np.testing.assert_allclose(model.predict_task(X, 2), np.tile(prior, (6, 1)), rtol=1e-9)
    np.testing.assert_array_equal(model.predict(X)[:, 2], 2.0)


# ---- errors ------------------------------------------------------------------------------------------------
@pytest.mark.parametrize(("params", "message"), [
    ({"objective": "poisson"}, "objective: unknown objective 'poisson'"),
    ({"objective": ["regression"]}, "objective: got 1 objectives for 3 tasks"),
    ({"n_estimators": 0}, "n_estimators: must be an integer >= 1"),
    ({"learning_rate": -0.1}, "learning_rate: must be a positive number"),
    ({"num_leaves": 1}, "num_leaves: must be an integer >= 2"),
    ({"subsample": 0.0}, r"subsample: must be in \(0, 1\]"),
    ({"validation_fraction": 1.0}, r"validation_fraction: must be None or in \(0, 1\)"),
    ({"early_stopping_rounds": 0}, "early_stopping_rounds: must be None or an integer >= 1"),
    ({"random_state": np.random.RandomState(0)}, "random_state: must be None or an integer >= 0"),
    ({"random_state": -1}, "random_state: must be None or an integer >= 0"),
    ({"n_jobs": 0}, "n_jobs: must be None or a non-zero integer"),
    ({"task_rounds": -1}, "task_rounds: must be an integer >= 0"),
    ({"min_task_rows": 0}, "min_task_rows: must be an integer >= 1"),
])
def test_bad_options_are_config_errors_naming_the_option(params: dict[str, Any], message: str) -> None:
    X, Y = mixed(n=40)
    with pytest.raises(ConfigError, match=message):
        make("GBDTMultiTask", **{"objective": OBJECTIVES, **params}).fit(X, Y)


@pytest.mark.parametrize("name", ALL)
def test_bad_labels_are_data_errors_naming_the_task(name: str) -> None:
    X, Y = mixed(n=40)
    empty = Y.copy()
    empty[:, 2] = np.nan
    with pytest.raises(DataError, match=r"task 2 \(column 2 of y\) has no labelled rows"):
        make(name, objective=OBJECTIVES).fit(X, empty)
    binary = Y.copy()
    binary[0, 1] = 2.0
    with pytest.raises(DataError, match=r"task 1: objective 'binary' needs labels 0/1, found \[2.0\]"):
        make(name, objective=OBJECTIVES).fit(X, binary)
    codes = Y.copy()
    codes[0, 2] = 1.5
    with pytest.raises(DataError, match=r"task 2: objective 'multiclass' needs integer class codes >= 0"):
        make(name, objective=OBJECTIVES).fit(X, codes)
    with pytest.raises(DataError, match="eval_set: y_val has shape"):
        make(name, objective=OBJECTIVES).fit(X, Y, eval_set=(X, Y[:, :2]))


# ---- saving without pickle ---------------------------------------------------------------------------------
@pytest.mark.parametrize("name", ALL)
def test_to_dict_is_strict_json_and_round_trips(name: str) -> None:
    X, Y = mixed(seed=8)
    frame = pd.DataFrame(X, columns=["a", "b", "c", "d"])
    targets = pd.DataFrame(Y, columns=["value", "flag", "grade"])
    model = make(name, objective=OBJECTIVES, num_leaves=np.int64(7), n_classes={"grade": 3}).fit(frame, targets)
    text = json.dumps(model.to_dict(), allow_nan=False)
    loaded = type(model).from_dict(json.loads(text))
    again = from_dict(json.loads(text))
    assert type(again) is type(model) and loaded.n_classes_ == [None, 2, 3]
    assert loaded.get_params() == {**model.get_params(), "n_classes": [None, 2, 3]}
    np.testing.assert_array_equal(loaded.predict(frame), model.predict(frame))
    for task in ["value", "flag", "grade"]:
        np.testing.assert_array_equal(loaded.predict_task(frame, task), model.predict_task(frame, task))
    assert list(loaded.tasks_) == ["value", "flag", "grade"] and list(loaded.feature_names_in_) == list("abcd")
    np.testing.assert_array_equal(loaded.best_iterations_, model.best_iterations_)
    assert loaded.score(frame, targets) == model.score(frame, targets)


def test_from_dict_rejects_other_data() -> None:
    X, Y = mixed(n=60)
    saved = make("GBDTPooled", objective=OBJECTIVES).fit(X, Y).to_dict()
    with pytest.raises(ConfigError, match="the data is a 'GBDTPooled', not a 'GBDTIndependent'"):
        GBDTIndependent.from_dict(saved)
    with pytest.raises(ConfigError, match="not a saved multitask GBDT model"):
        GBDTPooled.from_dict({"estimator": "GBDTPooled"})
    with pytest.raises(ConfigError, match="incomplete or corrupted"):
        GBDTPooled.from_dict({**saved, "boosters": ["not a model"]})


# ---- inputs ------------------------------------------------------------------------------------------------
@pytest.mark.parametrize("name", ALL)
def test_sparse_and_dense_features_give_the_same_model(name: str) -> None:
    X, Y = mixed(seed=9)
    X[np.abs(X) < 0.5] = 0.0
    dense = make(name, objective=OBJECTIVES).fit(X, Y)
    sparse = make(name, objective=OBJECTIVES).fit(sp.csr_array(X), Y)
    for t in range(3):
        np.testing.assert_allclose(sparse.predict_task(sp.csr_array(X), t), dense.predict_task(X, t), atol=1e-12)


def test_missing_feature_values_are_routed_not_rejected() -> None:
    X, y, tasks = shared_plus_task(2, 80, seed=10)
    X[::7, 0] = np.nan
    model = make("GBDTMultiTask").fit(X, y, tasks)
    assert np.isfinite(model.predict(X, tasks)).all()

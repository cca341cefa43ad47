"""Data forms, mixed task kinds, prediction shapes, errors, and the structure each formulation recovers."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
import scipy.sparse as sp

from multitask.errors import ConfigError, DataError
from multitask.linear import (
    L21,
    Clustered,
    Dirty,
    GraphRegularized,
    IndependentLinear,
    MeanRegularized,
    PooledLinear,
    Robust,
    TaskRelationship,
    regularization_path,
)
from multitask.registry import LINEAR
from tests.linear._helpers import ESTIMATORS, make, mixed, regression

NAMES = list(ESTIMATORS)


def to_long(X: np.ndarray, Y: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """The wide data as long form: one row per (row, labelled task), rows of X repeated."""
    rows, tasks = np.nonzero(~np.isnan(Y))
    return X[rows], Y[rows, tasks], tasks


@pytest.mark.parametrize("name", NAMES)
def test_long_and_wide_give_the_same_fit(name: str) -> None:
    X, Y, losses = mixed()
    wide = make(name, loss=losses).fit(X, Y)
    Xl, yl, tasks = to_long(X, Y)
    long = make(name, loss=losses).fit(Xl, yl, tasks=tasks)
    np.testing.assert_array_equal(long.tasks_, [0, 1, 2])
    np.testing.assert_allclose(long.coef_, wide.coef_, atol=1e-4)
    np.testing.assert_allclose(long.intercept_, wide.intercept_, atol=1e-4)
    np.testing.assert_allclose(long.predict(Xl, tasks), long.predict(Xl)[np.arange(len(Xl)), tasks], atol=1e-12)


@pytest.mark.parametrize("name", NAMES)
def test_dense_and_sparse_give_the_same_fit(name: str) -> None:
    X, Y, losses = mixed()
    X[np.abs(X) < 0.5] = 0.0
    dense = make(name, loss=losses).fit(X, Y)
    sparse = make(name, loss=losses).fit(sp.csr_array(X), Y)
    np.testing.assert_allclose(sparse.coef_, dense.coef_, atol=1e-6)
    np.testing.assert_allclose(sparse.predict(sp.csr_matrix(X)), dense.predict(X), atol=1e-6)


def test_mixed_regression_and_binary_tasks() -> None:
    X, Y, losses = mixed(n=400)
    model = L21(alpha=1e-3, loss=losses).fit(X, Y)
    assert model.losses_ == losses
    assert model.task_classes_[0] is None and list(model.task_classes_[2]) == [0.0, 1.0]
    pred = model.predict(X)
    assert pred.shape == (400, 3)
    assert set(np.unique(pred[:, 2])) <= {0.0, 1.0}
    proba = model.predict_proba(X)
    assert np.isnan(proba[:, :2]).all() and ((proba[:, 2] > 0) & (proba[:, 2] < 1)).all()
    np.testing.assert_array_equal(pred[:, 2], (proba[:, 2] > 0.5).astype(float))
    labelled = ~np.isnan(Y[:, 2])
    assert np.mean(pred[labelled, 2] == Y[labelled, 2]) > 0.8
    assert model.decision_function(X).shape == (400, 3)
    assert model.score(X, Y) > 0.8


def test_two_classes_are_mapped_to_zero_one() -> None:
    X, Y, _ = regression()
    y = np.where(Y[:, 0] > np.median(Y[:, 0]), 7, -3)
    model = IndependentLinear(loss="squared_hinge").fit(X, y)
    np.testing.assert_array_equal(model.task_classes_[0], [-3, 7])
    assert set(np.unique(model.predict(X))) == {-3, 7}
    assert model.score(X, y) > 0.8
    assert not hasattr(model, "predict_proba") or model.get_params()["loss"] != "logistic"
    proba = IndependentLinear(loss="logistic").fit(X, y).predict_proba(X)
    assert proba.shape == (len(X), 2)
    np.testing.assert_allclose(proba.sum(axis=1), 1.0)


def test_prediction_shapes_and_task_labels() -> None:
    X, Y, _ = regression(n_tasks=3)
    frame = pd.DataFrame(Y, columns=["math", "reading", "science"])
    model = L21().fit(X, frame)
    np.testing.assert_array_equal(model.tasks_, ["math", "reading", "science"])
    assert model.predict(X).shape == (len(X), 3)
    tasks = np.array(["reading", "math"] * (len(X) // 2))
    np.testing.assert_allclose(model.predict(X, tasks), model.predict(X)[np.arange(len(X)), (tasks == "math") * -1 + 1])
    single = L21().fit(X, Y[:, 0])
    assert single.predict(X).shape == (len(X),) and single.coef_.shape == (1, X.shape[1])
    with pytest.raises(DataError, match="'art' was not seen"):
        model.predict(X, np.array(["art"] * len(X)))


def test_long_form_with_string_task_ids_and_uneven_tasks() -> None:
    rng = np.random.default_rng(5)
    sizes = {"b": 40, "a": 9, "c": 120}
    X = rng.normal(size=(sum(sizes.values()), 4))
    tasks = np.repeat(list(sizes), list(sizes.values()))
    y = X @ np.ones(4) + rng.normal(size=len(X)) * 0.1
    model = MeanRegularized().fit(X, y, tasks=tasks)
    np.testing.assert_array_equal(model.tasks_, ["a", "b", "c"])
    assert model.predict(X, tasks).shape == (len(X),)
    assert model.score(X, y, tasks) > 0.9


@pytest.mark.parametrize(("kwargs", "fit_args", "error", "match"), [
    ({"loss": "hinge"}, {}, ConfigError, "loss: unknown loss 'hinge'"),
    ({"loss": ["squared", "logistic"]}, {}, ConfigError, "got 2 losses for 3 tasks"),
    ({"alpha": -1.0}, {}, ConfigError, "alpha: must be a non-negative"),
    ({"max_iter": 0}, {}, ConfigError, "max_iter"),
    ({}, {"tasks": np.zeros(120)}, DataError, "either a 2-D y"),
])
def test_errors_name_the_parameter(kwargs: dict, fit_args: dict, error: type, match: str) -> None:
    X, Y, _ = regression()
    with pytest.raises(error, match=match):
        L21(**kwargs).fit(X, Y, **fit_args)


def test_data_errors_name_the_task() -> None:
    X, Y, _ = regression()
    Y[:, 1] = np.nan
    with pytest.raises(DataError, match=r"task 1 \(column 1 of y\) has no labelled rows"):
        L21().fit(X, Y)
    X, Y, _ = regression()
    with pytest.raises(DataError, match=r"task 0 \(column 0 of y\): loss 'logistic' needs two classes, found 120"):
        L21(loss="logistic").fit(X, Y)
    with pytest.raises(DataError, match=r"^task 'b': loss 'logistic' needs two classes, found 3"):
        L21(loss="logistic").fit(X[:6], np.array([0, 1, 0, 1, 2, 0]), tasks=["a", "a", "b", "b", "b", "a"])
    with pytest.raises(DataError, match=r"^y: loss 'logistic' needs two classes"):
        L21(loss="logistic").fit(X, Y[:, 0])
    with pytest.raises(ConfigError, match=r"adjacency: expected shape \(3, 3\)"):
        GraphRegularized(adjacency=np.ones((2, 2))).fit(X, Y)


def test_warm_start_resumes_from_the_previous_solution() -> None:
    X, Y, _ = regression()
    cold = L21(alpha=0.05).fit(X, Y)
    model = L21(alpha=0.06, warm_start=True).fit(X, Y)
    model.set_params(alpha=0.05).fit(X, Y)
    np.testing.assert_allclose(model.coef_, cold.coef_, atol=1e-4)
    assert model.n_iter_ < cold.n_iter_


def test_regularization_path_is_monotone_in_sparsity() -> None:
    X, Y, _ = regression(n=150, d=10)
    path = regularization_path(L21(), X, Y, values=[1e-3, 0.05, 0.2, 1.0, 5.0])
    assert path.param == "alpha" and path.coefs.shape == (5, 3, 10)
    np.testing.assert_allclose(path.values, [5.0, 1.0, 0.2, 0.05, 1e-3])
    active = [np.count_nonzero(np.linalg.norm(c, axis=0)) for c in path.coefs]
    assert active == sorted(active) and active[0] == 0 and active[-1] == 10
    np.testing.assert_allclose(path.coefs[2], L21(alpha=0.2).fit(X, Y).coef_, atol=1e-4)


# ---- what each formulation is for -----------------------------------------------------------------------
def test_l21_recovers_shared_support() -> None:
    rng = np.random.default_rng(0)
    X = rng.normal(size=(300, 20))
    W = np.zeros((4, 20))
    W[:, :5] = rng.normal(size=(4, 5)) + 2.0
    Y = X @ W.T + 0.1 * rng.normal(size=(300, 4))
    support = np.linalg.norm(L21(alpha=0.1).fit(X, Y).coef_, axis=0) > 1e-8
    np.testing.assert_array_equal(support, np.arange(20) < 5)


def test_pooled_and_strong_mean_regularization_share_one_w() -> None:
    X, Y, _ = regression()
    pooled = PooledLinear().fit(X, Y)
    np.testing.assert_allclose(pooled.coef_, np.tile(pooled.coef_[0], (3, 1)))
    strong = MeanRegularized(rho=1e4).fit(X, Y)
    np.testing.assert_allclose(strong.coef_, np.tile(strong.coef_.mean(axis=0), (3, 1)), atol=1e-3)


def test_graph_ties_only_connected_tasks() -> None:
    X, Y, _ = regression(n_tasks=3)
    A = np.array([[0.0, 1.0, 0.0], [1.0, 0.0, 0.0], [0.0, 0.0, 0.0]])
    W = GraphRegularized(adjacency=A, rho=1e4, alpha=0.0).fit(X, Y).coef_
    assert np.abs(W[0] - W[1]).max() < 1e-3 and np.abs(W[0] - W[2]).max() > 0.1


def test_dirty_parts_add_up() -> None:
    X, Y, _ = regression()
    model = Dirty(alpha_sparse=0.05, alpha_group=0.05).fit(X, Y)
    np.testing.assert_allclose(model.sparse_coef_ + model.group_coef_, model.coef_)


def test_robust_flags_the_outlier_task() -> None:
    rng = np.random.default_rng(2)
    X = rng.normal(size=(400, 8))
    w = rng.normal(size=8)
    W = np.vstack([w * s for s in (1.0, 1.1, 0.9, 1.05)] + [rng.normal(size=8) * 3])
    Y = X @ W.T + 0.1 * rng.normal(size=(400, 5))
    model = Robust(alpha_low_rank=0.5, alpha_outlier=0.3).fit(X, Y)
    np.testing.assert_array_equal(model.outlier_tasks_, [4])
    np.testing.assert_allclose(model.low_rank_coef_ + model.outlier_coef_, model.coef_)


def test_task_relationship_reads_related_and_opposed_tasks() -> None:
    rng = np.random.default_rng(3)
    X = rng.normal(size=(300, 6))
    w, v = rng.normal(size=6), rng.normal(size=6)
    v -= v @ w / (w @ w) * w  # unrelated: orthogonal to w
    W = np.vstack([w, 1.1 * w, -w, v])
    Y = X @ W.T + 0.1 * rng.normal(size=(300, 4))
    model = TaskRelationship(alpha=1e-3, beta=1e-2).fit(X, Y)
    C = model.task_correlation_
    assert C[0, 1] > 0.95 and C[0, 2] < -0.95 and abs(C[0, 3]) < 0.2
    np.testing.assert_allclose(np.diag(C), 1.0)
    assert np.trace(model.task_covariance_) == pytest.approx(1.0)


def test_clustered_groups_tasks() -> None:
    rng = np.random.default_rng(4)
    X = rng.normal(size=(300, 6))
    a, b = rng.normal(size=6) * 2, rng.normal(size=6) * 2
    W = np.vstack([a, a, a, b, b, b]) + 0.05 * rng.normal(size=(6, 6))
    Y = X @ W.T + 0.1 * rng.normal(size=(300, 6))
    model = Clustered(n_clusters=2, alpha=1e-2, eta=0.1).fit(X, Y)
    M = model.cluster_matrix_
    assert np.trace(M) == pytest.approx(2.0)
    within, across = M[:3, :3].mean(), M[:3, 3:].mean()
    assert within > 0.25 and abs(across) < 0.05
    np.testing.assert_array_equal(model.task_clusters_, [0, 0, 0, 1, 1, 1])  # numbered by their first task


# ---- the command line's use: LINEAR.get(name)(loss=[...]).fit(X, Y wide with NaN) ----------------------
@pytest.mark.parametrize("name", list(LINEAR))
def test_registry_entries_work_as_the_cli_uses_them(name: str) -> None:
    cls = LINEAR.get(name)
    X, Y, losses = mixed()
    model = cls(loss=losses).fit(X, Y)
    assert model.predict(X).shape == Y.shape
    assert model.decision_function(X).shape == Y.shape
    assert model.predict_proba(X).shape == Y.shape
    assert set(cls.regularization_params) <= set(model.get_params())
    grid = model.default_param_grid(X, Y)
    scale = model.regularization_scale(X, Y)
    assert set(grid) == set(scale) == set(cls.search_space()) == set(cls.regularization_params)
    for param, (low, high) in cls.search_space().items():
        assert 0 < low < high and len(grid[param]) >= 3
        np.testing.assert_allclose([min(grid[param]), max(grid[param])], [low * scale[param], high * scale[param]])
        assert model.search_bounds(X, Y)[param] == pytest.approx((low * scale[param], high * scale[param]))

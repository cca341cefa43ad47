"""Properties every boosted estimator must have, checked over one shared list of estimators."""

from __future__ import annotations

import numpy as np
import pytest
from sklearn.base import clone

from tests.gbdt._helpers import NAMES, OBJECTIVES, make, mixed, to_long

ALL = list(NAMES)


def predictions(model: object, X: np.ndarray, n_tasks: int) -> list[np.ndarray]:
    return [model.predict_task(X, t) for t in range(n_tasks)]  # type: ignore[attr-defined]


def assert_same(first: list[np.ndarray], second: list[np.ndarray], atol: float = 0.0) -> None:
    for a, b in zip(first, second, strict=True):
        np.testing.assert_allclose(a, b, rtol=0, atol=atol)


@pytest.mark.parametrize("name", ALL)
def test_wide_and_long_forms_give_identical_models(name: str) -> None:
    X, Y = mixed(seed=1)
    X_long, y_long, tasks = to_long(X, Y)
    wide = make(name, objective=OBJECTIVES).fit(X, Y)
    long = make(name, objective=OBJECTIVES).fit(X_long, y_long, tasks)
    assert_same(predictions(wide, X, 3), predictions(long, X, 3))
    np.testing.assert_array_equal(long.predict(X_long, tasks), wide.predict(X)[np.nonzero(~np.isnan(Y.T))[::-1]])
    np.testing.assert_array_equal(wide.best_iterations_, long.best_iterations_)


@pytest.mark.parametrize("name", ALL)
def test_unlabelled_rows_change_nothing(name: str) -> None:
    X, Y = mixed(seed=2)
    model = make(name, objective=OBJECTIVES).fit(X, Y)
    rng = np.random.default_rng(0)
    extra = rng.normal(size=(40, X.shape[1])) * 10
    padded = make(name, objective=OBJECTIVES).fit(np.vstack([X, extra]), np.vstack([Y, np.full((40, 3), np.nan)]))
    assert_same(predictions(model, X, 3), predictions(padded, X, 3))


def test_an_independent_task_ignores_the_other_tasks_labels() -> None:
    X, Y = mixed(seed=3)
    other = Y.copy()
    other[:, 0] = np.where(np.isnan(Y[:, 1]), 5.0, np.nan)  # regression labels on different rows
    first = make("GBDTIndependent", objective=OBJECTIVES).fit(X, Y)
    second = make("GBDTIndependent", objective=OBJECTIVES).fit(X, other)
    assert_same(predictions(first, X, 3)[1:], predictions(second, X, 3)[1:])


@pytest.mark.parametrize("name", ALL)
def test_row_order_does_not_matter_with_explicit_validation(name: str) -> None:
    X, Y = mixed(seed=4)
    X_val, Y_val = mixed(n=60, seed=5)
    rows = np.random.default_rng(4).permutation(len(X))
    model = make(name, objective=OBJECTIVES).fit(X, Y, eval_set=(X_val, Y_val))
    shuffled = make(name, objective=OBJECTIVES).fit(X[rows], Y[rows], eval_set=(X_val, Y_val))
    assert_same(predictions(model, X_val, 3), predictions(shuffled, X_val, 3), atol=1e-10)


@pytest.mark.parametrize("name", ALL)
def test_task_order_does_not_matter(name: str) -> None:
    X, Y = mixed(seed=6)
    order = [2, 0, 1]
    model = make(name, objective=OBJECTIVES, validation_fraction=None).fit(X, Y)
    permuted = make(name, objective=[OBJECTIVES[j] for j in order], validation_fraction=None).fit(X, Y[:, order])
    assert_same([predictions(model, X, 3)[j] for j in order], predictions(permuted, X, 3), atol=1e-10)


@pytest.mark.parametrize("name", ALL)
@pytest.mark.parametrize("objective", OBJECTIVES)
def test_tiny_tasks_fit_and_predict(name: str, objective: str) -> None:
    """Tasks of 1, 2 and 3 labelled rows beside a task of 60 rows."""
    rng = np.random.default_rng(7)
    X = rng.normal(size=(60, 3))
    labels = {"regression": X[:, 0], "binary": (X[:, 0] > 0).astype(float),
              "multiclass": np.digitize(X[:, 0], [-0.5, 0.5]).astype(float)}[objective]
    Y = np.full((60, 4), np.nan)
    Y[:, 0] = labels
    for t, n_rows in ((1, 1), (2, 2), (3, 3)):
        Y[:n_rows, t] = labels[10 : 10 + n_rows]
    model = make(name, objective=objective, n_classes=3).fit(X, Y)
    out = model.predict(X)
    assert out.shape == (60, 4) and np.isfinite(out).all()
    for t in range(4):
        natural = model.predict_task(X, t)
        assert np.isfinite(natural).all()
        if objective == "multiclass":
            assert natural.shape == (60, 3)
            np.testing.assert_allclose(natural.sum(axis=1), 1.0)
        else:
            assert natural.shape == (60,)
        if objective != "regression":
            assert ((natural >= 0) & (natural <= 1)).all()
    assert model.score(X, labels, tasks=np.zeros(60, dtype=int)) > 0.5  # the large task is learnt
    if name == "GBDTIndependent":  # a one-row task keeps its constant: the label itself
        np.testing.assert_allclose(model.predict(X)[:, 1], labels[10], atol=1e-5)


@pytest.mark.parametrize("name", ALL)
def test_objectives_predict_their_natural_outputs_and_learn(name: str) -> None:
    X, Y = mixed(n=300, seed=8)
    model = make(name, objective=OBJECTIVES).fit(X, Y)
    value, proba, classes = predictions(model, X, 3)
    assert value.shape == (300,) and proba.shape == (300,) and classes.shape == (300, 3)
    assert ((proba > 0) & (proba < 1)).all()
    np.testing.assert_allclose(classes.sum(axis=1), 1.0)
    wide = model.predict(X)
    np.testing.assert_array_equal(wide, np.column_stack([value, proba, classes.argmax(axis=1)]))
    labelled = ~np.isnan(Y)
    assert np.corrcoef(value[labelled[:, 0]], Y[labelled[:, 0], 0])[0, 1] > 0.9
    assert np.mean((proba > 0.5)[labelled[:, 1]] == Y[labelled[:, 1], 1]) > 0.8
    assert np.mean(classes.argmax(axis=1)[labelled[:, 2]] == Y[labelled[:, 2], 2]) > 0.8
    assert model.n_classes_ == [None, 2, 3] and model.objectives_ == OBJECTIVES


@pytest.mark.parametrize("name", ALL)
def test_clone_and_refit_are_deterministic(name: str) -> None:
    X, Y = mixed(seed=9)
    model = make(name, objective=OBJECTIVES, subsample=0.7, colsample_bytree=0.7)
    first, second = clone(model).fit(X, Y), clone(model).fit(X, Y)
    assert_same(predictions(first, X, 3), predictions(second, X, 3))
    assert clone(model).get_params() == model.get_params()
    other_seed = clone(model).set_params(random_state=1).fit(X, Y)
    assert not np.array_equal(other_seed.predict_task(X, 0), first.predict_task(X, 0))

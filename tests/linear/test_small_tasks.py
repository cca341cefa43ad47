"""Tasks with 1, 2 or 3 labelled rows, and binary tasks whose rows have one class, in every formulation."""

from __future__ import annotations

import numpy as np
import pytest

from multitask.linear import IndependentLinear, MeanRegularized, MultiTaskCV
from tests.linear._helpers import ESTIMATORS, make

NAMES = list(ESTIMATORS)
#: task: (loss, labelled rows); tasks 2-4 are regression tasks of 1, 2 and 3 rows, 5 a binary task of one class
TASKS = [("squared", 40), ("logistic", 40), ("squared", 1), ("squared", 2), ("squared", 3), ("logistic", 2),
         ("logistic", 3)]
LOSSES = [loss for loss, _ in TASKS]


def tiny_tasks(seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """Wide ``Y`` (40, 7) with NaN: two full tasks and five of 1 to 3 labelled rows."""
    rng = np.random.default_rng(seed)
    X = rng.normal(size=(40, 3))
    w = rng.normal(size=3)
    Y = np.full((40, len(TASKS)), np.nan)
    for j, (loss, size) in enumerate(TASKS):
        rows = rng.choice(40, size, replace=False)
        z = X[rows] @ (w + 0.2 * rng.normal(size=3)) + 0.2 * rng.normal(size=size)
        Y[rows, j] = (z > 0).astype(float) if loss == "logistic" else z
    Y[~np.isnan(Y[:, 5]), 5] = 1.0  # one class
    Y[~np.isnan(Y[:, 6]), 6] = [0.0, 1.0, 1.0]  # two classes over three rows: some folds train on one
    return X, Y


def as_long(X: np.ndarray, Y: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    rows, tasks = np.nonzero(~np.isnan(Y))
    return X[rows], Y[rows, tasks], tasks


@pytest.mark.parametrize("form", ["wide", "long"])
@pytest.mark.parametrize("name", NAMES)
def test_fit_predict_and_cross_validate_tiny_tasks(name: str, form: str) -> None:
    X, Y = tiny_tasks()
    args = (X, Y) if form == "wide" else as_long(X, Y)
    model = make(name, loss=LOSSES, tol=1e-6).fit(*args)
    assert model.coef_.shape == (len(TASKS), 3)
    predictions = model.predict(X)
    assert predictions.shape == (len(X), len(TASKS)) and np.isfinite(predictions).all()
    np.testing.assert_array_equal(predictions[:, 5], 1.0)  # the one-class task predicts its class
    proba = model.predict_proba(X)
    assert ((proba[:, [1, 5, 6]] > 0) & (proba[:, [1, 5, 6]] < 1)).all()
    # the search space's two ends: both limits, where tiny tasks are hardest
    grid = {param: list(bounds) for param, bounds in make(name, loss=LOSSES).search_bounds(*args).items()}
    # (the unregularized end is ill-conditioned on 2-row tasks: a capped solve is enough to score it)
    search = MultiTaskCV(make(name, loss=LOSSES, tol=1e-4, max_iter=300), grid, cv=3).fit(*args)
    assert not search.cv_results_["failed"].any() and np.isfinite(search.best_score_)
    scored = search.scored_cells_.sum(axis=0)  # folds in which each task is scored
    assert scored[0] == scored[1] == 3 and scored[2] == 0  # the one-row task is only trained on
    assert 1 <= scored[3] <= 2 and 1 <= scored[4] <= 3
    if form == "long":  # no row shared with another task: a k-row task is held out in k folds
        assert scored[3] == 2 and scored[4] == 3
    assert np.isfinite(search.predict(X)).all()


@pytest.mark.parametrize(("values", "classes", "predicted"), [
    ([1.0], [0.0, 1.0], 1.0), ([0.0, 0.0, 0.0], [0.0, 1.0], 0.0), ([7.0, 7.0], [7.0, 7.0], 7.0),
])
@pytest.mark.parametrize("loss", ["logistic", "squared_hinge"])
def test_a_binary_task_with_one_class_predicts_it(values: list[float], classes: list[float], predicted: float,
                                                  loss: str) -> None:
    rng = np.random.default_rng(1)
    X = rng.normal(size=(len(values), 2))
    model = IndependentLinear(loss=loss).fit(X, np.array(values))
    np.testing.assert_array_equal(model.task_classes_[0], classes)
    np.testing.assert_array_equal(model.predict(rng.normal(size=(5, 2))), predicted)
    if loss == "logistic":  # the intercept goes to the class, as far as half a row of the other allows
        n = len(values)
        share = (n + 0.5) / (n + 1)
        expected = share if predicted != 0.0 else 1 - share
        np.testing.assert_allclose(model.predict_proba(X)[:, 1], expected, rtol=1e-4)


def test_a_tiny_task_borrows_strength_from_the_others() -> None:
    rng = np.random.default_rng(2)
    X = rng.normal(size=(200, 4))
    w = rng.normal(size=4)
    Y = np.column_stack([X @ w + 0.1 * rng.normal(size=200) for _ in range(3)])
    Y[2:, 2] = np.nan  # the third task has two rows: alone, its weights are underdetermined
    alone = IndependentLinear(alpha=1e-3).fit(X, Y).coef_[2]
    shared = MeanRegularized(rho=1.0, alpha=1e-3).fit(X, Y).coef_[2]
    assert np.linalg.norm(shared - w) < 0.2 * np.linalg.norm(w) < np.linalg.norm(alone - w)

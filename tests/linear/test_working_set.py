"""The working-set solver gives the full solver's solution, in fewer passes over the data on wide problems."""

from __future__ import annotations

from typing import Any

import numpy as np
import pytest
import scipy.sparse as sp

from multitask.errors import ConfigError
from multitask.linear import L21, Dirty, Lasso, LinearMTL, MultiTaskCV, SparseLowRank, regularization_path
from multitask.linear._backend import ArrayBackend, Backend, Centered
from multitask.linear._losses import LOSSES
from multitask.linear._path import warm_fits
from multitask.linear._penalties import Blocks, GroupNorm, L1InfNorm, L1Norm, NuclearNorm
from multitask.linear._solver import fista
from multitask.linear._working_set import applies, working_set_fista

#: the formulations whose penalty is a sum over features, with strengths as fractions of their limits
SPARSE: dict[str, tuple[type[LinearMTL], dict[str, float]]] = {
    "lasso": (Lasso, {"alpha": 0.2}),
    "l21": (L21, {"alpha": 0.2}),
    "dirty": (Dirty, {"alpha_sparse": 0.3, "alpha_group": 0.2}),
}
LOSS_NAMES = ("squared", "logistic", "squared_hinge")


def wide(n: int = 50, d: int = 150, n_tasks: int = 3, loss: str = "squared", seed: int = 0, missing: float = 0.2,
         sparse: bool = False) -> tuple[Any, np.ndarray]:
    """More features than rows, 5 of them used; binary 0/1 targets for classification losses; NaN = missing."""
    rng = np.random.default_rng(seed)
    if sparse:
        X = sp.random(n, d, density=0.1, format="csr", random_state=seed, data_rvs=rng.standard_normal)
    else:
        X = rng.normal(size=(n, d))
    W = np.zeros((n_tasks, d))
    W[:, rng.choice(d, 5, replace=False)] = rng.normal(size=(n_tasks, 5)) * 2
    Z = np.asarray(X @ W.T) + 0.3 * rng.normal(size=(n, n_tasks))
    Y = Z if loss == "squared" else (Z > 0).astype(float)
    Y[rng.random(Y.shape) < missing] = np.nan
    return X, Y


def objective(model: LinearMTL, X: Any, y: Any, tasks: Any = None) -> float:
    """The fitted model's objective, recomputed from its coefficients (not from the solver's history)."""
    problem = model._prepare(X, y, tasks)
    value = problem.backend.loss(model.coef_, model.intercept_ + model.coef_ @ problem.mean)
    return value + model._penalty(model.n_tasks_).value(model._coef_parts)


def pair(name: str, X: Any, y: Any, tasks: Any = None, **params: Any) -> tuple[LinearMTL, LinearMTL]:
    cls, fractions = SPARSE[name]
    scale = cls(**params).regularization_scale(X, y, tasks)
    strengths = {p: f * scale[p] for p, f in fractions.items()}
    fits = [cls(**strengths, **params, tol=1e-9, max_iter=50_000, working_set=ws).fit(X, y, tasks)
            for ws in (False, True)]
    return fits[0], fits[1]


def assert_same_objective(full: LinearMTL, ws: LinearMTL, X: Any, y: Any, tasks: Any = None) -> None:
    a, b = objective(full, X, y, tasks), objective(ws, X, y, tasks)
    assert abs(a - b) <= 1e-6 * abs(a), (a, b)


@pytest.mark.parametrize("name", SPARSE)
@pytest.mark.parametrize("loss", LOSS_NAMES)
@pytest.mark.parametrize("sparse", [False, True])
def test_same_objective_as_the_full_solver(name: str, loss: str, sparse: bool) -> None:
    X, Y = wide(loss=loss, sparse=sparse, seed=LOSS_NAMES.index(loss))
    full, ws = pair(name, X, Y, loss=loss)
    assert_same_objective(full, ws, X, Y)
    assert ws.n_restricted_passes_ > 0 and full.n_restricted_passes_ == 0


@pytest.mark.parametrize("name", SPARSE)
def test_long_form_and_gram_backends(name: str) -> None:
    # tasks on their own rows (stacked rows, one Gram matrix per squared task) and one logistic task
    rng = np.random.default_rng(3)
    n, d = 240, 30
    X = rng.normal(size=(n, d))
    tasks = np.repeat(["a", "b", "c"], n // 3)
    w = np.zeros(d)
    w[:4] = 1.5
    y = X @ w + 0.2 * rng.normal(size=n)
    y[tasks == "c"] = (y[tasks == "c"] > 0).astype(float)
    loss = {"a": "squared", "b": "squared", "c": "logistic"}
    full, ws = pair(name, X, y, tasks, loss=loss)
    assert_same_objective(full, ws, X, y, tasks)


@pytest.mark.parametrize("name", SPARSE)
def test_shared_gram_backend(name: str) -> None:
    X, Y = wide(n=200, d=40, missing=0.0)  # more rows than features, all labelled: one Gram matrix
    full, ws = pair(name, X, Y)
    assert_same_objective(full, ws, X, Y)


def test_fewer_full_passes_on_wide_data() -> None:
    X, Y = wide(n=60, d=400, sparse=True)
    full, ws = pair("l21", X, Y)
    assert_same_objective(full, ws, X, Y)
    assert ws.n_passes_ < full.n_passes_ / 5
    assert full.n_passes_ >= full.n_iter_


class _Plain:
    """A backend with only the protocol's two methods (no ``restrict``), like a distributed one may be."""

    def __init__(self, backend: Backend) -> None:
        self.backend, self.n_tasks, self.n_features = backend, backend.n_tasks, backend.n_features
        self.calls = 0

    def loss(self, W: np.ndarray, b: np.ndarray) -> float:
        self.calls += 1
        return self.backend.loss(W, b)

    def loss_and_grad(self, W: np.ndarray, b: np.ndarray) -> tuple[float, np.ndarray, np.ndarray]:
        self.calls += 1
        return self.backend.loss_and_grad(W, b)


def test_any_backend_without_restrict() -> None:
    X, Y = wide(missing=0.0)
    mean = X.mean(axis=0)
    rows = [np.arange(len(X))] * Y.shape[1]
    inner = ArrayBackend(X, rows, list(Y.T), [LOSSES["squared"]] * Y.shape[1])
    backend = _Plain(Centered(inner, mean))
    penalty = Blocks([GroupNorm(0.05)])
    start = (np.zeros((1, Y.shape[1], X.shape[1])), Y.mean(axis=0))
    a = fista(backend, penalty, *start, tol=1e-9, max_iter=50_000)
    b = working_set_fista(backend, penalty, *start, tol=1e-9, max_iter=50_000)
    value = [backend.backend.loss(r.coef[0], r.intercept) + penalty.value(r.coef) for r in (a, b)]
    assert abs(value[0] - value[1]) <= 1e-6 * abs(value[0])
    assert np.count_nonzero(np.any(b.coef[0] != 0, axis=0)) < X.shape[1]


def _fit_on_plain(model: LinearMTL, X: Any, Y: Any) -> _Plain:
    """Fit ``model`` with its backend seen through :class:`_Plain`; that backend."""
    plain: list[_Plain] = []

    def prepare(X: Any, y: Any, tasks: Any) -> Any:
        problem = LinearMTL._prepare(model, X, y, tasks)
        plain.append(_Plain(problem.backend))
        return type(problem)(problem.data, problem.losses, problem.targets, problem.classes, problem.mean,
                             plain[-1])  # type: ignore[arg-type]

    model._prepare = prepare  # type: ignore[method-assign]
    model.fit(X, Y)
    return plain[-1]


def test_passes_through_a_backend_without_restrict_are_full_passes() -> None:
    X, Y = wide(missing=0.0)
    model = L21(alpha=0.05, working_set=True, tol=1e-7, max_iter=50_000)
    plain = _fit_on_plain(model, X, Y)
    assert model.n_restricted_passes_ == 0
    assert model.n_passes_ == plain.calls


def test_auto_is_off_on_a_backend_without_restrict() -> None:
    X, Y = wide(d=600, sparse=True)
    on = L21(alpha=0.05, working_set=True).fit(X, Y)
    model = L21(alpha=0.05)
    _fit_on_plain(model, X, Y)
    assert on.n_restricted_passes_ > 0 and model.n_restricted_passes_ == 0
    assert model.n_iter_ != on.n_iter_  # the full solver ran, not the working set through full passes


def test_which_penalties_it_applies_to() -> None:
    assert applies(Blocks([L1Norm(1.0)])) and applies(Blocks([GroupNorm(1.0)]))
    assert applies(Blocks([L1Norm(1.0), L1InfNorm(1.0)]))
    assert not applies(Blocks([L1Norm(1.0), NuclearNorm(1.0)]))  # sparse + low rank: Q uses every feature
    assert not applies(Blocks([GroupNorm(1.0, "tasks")]))
    assert not applies(L1Norm(1.0))


def test_sparse_low_rank_fits_with_the_full_solver() -> None:
    X, Y = wide(d=120)
    model = SparseLowRank(alpha_sparse=0.05, alpha_low_rank=0.05, tol=1e-6).fit(X, Y)
    assert model.n_restricted_passes_ == 0 and model.n_passes_ > 0


@pytest.mark.parametrize("value", ["yes", 1.5, None])
def test_bad_working_set_option(value: Any) -> None:
    X, Y = wide()
    with pytest.raises(ConfigError, match="working_set"):
        L21(working_set=value).fit(X, Y)


def test_auto_switches_on_with_many_features() -> None:
    X, Y = wide(d=600, sparse=True)
    assert L21(alpha=0.05).fit(X, Y).n_restricted_passes_ > 0
    X, Y = wide(d=100)
    assert L21(alpha=0.05).fit(X, Y).n_restricted_passes_ == 0


def test_warm_start_from_the_solution_is_cheap() -> None:
    X, Y = wide(sparse=True)
    model = L21(alpha=0.05, tol=1e-8, max_iter=50_000, working_set=True, warm_start=True).fit(X, Y)
    cold = model.n_passes_ + model.n_restricted_passes_
    model.fit(X, Y)
    assert model.n_passes_ + model.n_restricted_passes_ < cold / 3


@pytest.mark.parametrize("name", SPARSE)
def test_path_matches_the_full_solver(name: str) -> None:
    X, Y = wide(sparse=True, missing=0.1)
    cls, _ = SPARSE[name]
    param = cls.regularization_params[0]
    values = cls().default_param_grid(X, Y)[param][2:]
    path = regularization_path(cls(tol=1e-8, max_iter=50_000, working_set=True), X, Y, values=values)
    assert path.coefs.shape == (len(values), Y.shape[1], X.shape[1])
    for value, model in warm_fits(cls(tol=1e-8, max_iter=50_000, working_set=True), param, values, X, Y):
        full = cls(**{param: value}, tol=1e-8, max_iter=50_000, working_set=False).fit(X, Y)
        assert_same_objective(full, model, X, Y)


def test_cross_validation_with_working_sets() -> None:
    X, Y = wide(sparse=True)
    grid = {"alpha": [0.1, 0.03, 0.01]}
    fits = [MultiTaskCV(L21(tol=1e-8, max_iter=50_000, working_set=ws), grid, cv=3).fit(X, Y) for ws in (False, True)]
    assert fits[0].best_params_ == fits[1].best_params_
    np.testing.assert_allclose(fits[0].cv_results_["mean_test_score"], fits[1].cv_results_["mean_test_score"],
                               atol=1e-5)

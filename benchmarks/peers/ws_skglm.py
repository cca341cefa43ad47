"""skglm's side of benchmarks/linear_working_set.py, run in its own environment (benchmarks/peers/.venv-skglm).

    python ws_skglm.py DATA.npz OUT_DIR --problem l21|lasso --alpha A --tols 1e-4,1e-6,...

Reads ``X`` (CSR) and ``Y`` from DATA.npz (written by the benchmark), fits skglm's ``MultiTaskLasso`` (ℓ2,1) or
one ``Lasso`` per task (ℓ1) at each tolerance, once, after one untimed fit that compiles the numba kernels; for
each tolerance writes ``OUT_DIR/tol-K.npz`` (coef, intercept) and prints one JSON line: tol, CPU and wall
seconds. The objective is computed by the benchmark from the saved coefficients.
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import numpy as np
import scipy.sparse as sp
from skglm import Lasso, MultiTaskLasso


def fit(problem: str, X: sp.csr_matrix, Y: np.ndarray, alpha: float, tol: float) -> tuple[np.ndarray, np.ndarray]:
    if problem == "l21":
        model = MultiTaskLasso(alpha=alpha, tol=tol, fit_intercept=True, max_iter=100, max_epochs=100_000).fit(X, Y)
        return np.asarray(model.coef_), np.asarray(model.intercept_)
    coef, intercept = [], []
    for t in range(Y.shape[1]):
        model = Lasso(alpha=alpha, tol=tol, fit_intercept=True, max_iter=100, max_epochs=100_000).fit(X, Y[:, t])
        coef.append(np.asarray(model.coef_))
        intercept.append(float(model.intercept_))
    return np.vstack(coef), np.asarray(intercept)


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("data", type=Path)
    parser.add_argument("out", type=Path)
    parser.add_argument("--problem", choices=("l21", "lasso"), required=True)
    parser.add_argument("--alpha", type=float, required=True)
    parser.add_argument("--tols", required=True)
    a = parser.parse_args()
    with np.load(a.data) as f:
        X = sp.csr_matrix((f["data"], f["indices"], f["indptr"]), shape=tuple(f["shape"]))
        Y = f["Y"]
    fit(a.problem, X[:200], Y[:200], a.alpha, 1e-2)  # compiles the kernels, untimed
    for k, tol in enumerate(float(t) for t in a.tols.split(",")):
        cpu, wall = time.process_time(), time.perf_counter()
        coef, intercept = fit(a.problem, X, Y, a.alpha, tol)
        cpu, wall = time.process_time() - cpu, time.perf_counter() - wall
        np.savez(a.out / f"tol-{k}.npz", coef=coef, intercept=intercept)
        print(json.dumps({"tol": tol, "cpu_s": cpu, "wall_s": wall, "file": f"tol-{k}.npz"}), flush=True)


if __name__ == "__main__":
    main()

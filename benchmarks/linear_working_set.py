"""Working sets on sparse, wide data: ℓ2,1, lasso and dirty least squares against skglm, at equal objective.

Two shared-X problems on ``scipy.sparse`` X (standard normal nonzeros, 50 features used by every task, noise
0.5): "tall" n=20,000, d=5,000, 1 % dense and "wide" n=5,000, d=50,000, 0.2 % dense, T=10 tasks. For ℓ2,1
(skglm's ``MultiTaskLasso``) and lasso (one skglm ``Lasso`` per task; the sum of the tasks' objectives is
ours) every solver minimizes the same objective, recomputed here from the returned coefficients:
``(1/(2n)) ||Y - X Wᵀ - b||_F^2 + alpha Ω(W)``, ``alpha`` a fraction of the strength that zeroes W. The
dirty model (ℓ1 + ℓ1,∞) has no skglm peer: ours with and without the working set.

The reference objective is the lowest any solver reached at its tightest tolerance; each solver is then fitted
at a sweep of tolerances, from loose to tight, once each (one run), until its objective is within 1e-8
(relative) of the reference: its time is that fit's. Both sides run on one thread; CPU seconds (``process_time``)
are reported beside wall-clock seconds because the machine is shared. skglm runs in its own environment
(``benchmarks/peers/.venv-skglm``, created here with pip if missing), after an untimed fit that compiles its
numba kernels. Passes per fit: ``n_passes_`` (evaluations of the loss over all of X) and
``n_restricted_passes_`` (over the working set's columns only).

    .venv/bin/python benchmarks/linear_working_set.py --write
    .venv/bin/python benchmarks/linear_working_set.py --problems tall --formulations l21 --no-peer   # quick
    .venv/bin/python benchmarks/linear_working_set.py --auto --write   # where working_set="auto" switches on

``--auto`` times ours with and without the working set at the default ``tol`` on small dense problems
(n=500, T=5, d from 10 to 3,000, 20 features used), best CPU time of 3 fits: what ``working_set="auto"``
is set from.
"""

from __future__ import annotations

import os

for _name in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS"):
    os.environ[_name] = "1"

import argparse  # noqa: E402
import json  # noqa: E402
import logging  # noqa: E402
import subprocess  # noqa: E402
import tempfile  # noqa: E402
import time  # noqa: E402
import venv  # noqa: E402
import warnings  # noqa: E402
from dataclasses import dataclass  # noqa: E402
from pathlib import Path  # noqa: E402
from typing import Any  # noqa: E402

import numpy as np  # noqa: E402
import scipy.sparse as sp  # noqa: E402

try:  # run as a script from benchmarks/, or as a module (python -m benchmarks.linear_working_set)
    from linear_common import REPO, machine, write_subsection
except ModuleNotFoundError:
    from benchmarks.linear_common import REPO, machine, write_subsection
from sklearn.exceptions import ConvergenceWarning  # noqa: E402

from multitask.linear import L21, Dirty, Lasso  # noqa: E402

logger = logging.getLogger("linear_working_set")
PEER_ENV = REPO / "benchmarks" / "peers" / ".venv-skglm"
PEER_SCRIPT = REPO / "benchmarks" / "peers" / "ws_skglm.py"
PROBLEMS = {"tall": (20_000, 5_000, 0.01), "wide": (5_000, 50_000, 0.002)}
OUR_TOLS = [1e-4, 1e-5, 1e-6, 1e-7, 1e-8, 1e-9, 1e-10]
PEER_TOLS = [1e-3, 1e-4, 1e-5, 1e-6, 1e-7, 1e-8, 1e-9, 1e-10]
DIGITS = 1e-8


def make_data(n: int, d: int, density: float, n_tasks: int, seed: int) -> tuple[sp.csr_matrix, np.ndarray]:
    rng = np.random.default_rng(seed)
    X = sp.random(n, d, density=density, format="csr", random_state=seed, data_rvs=rng.standard_normal)
    W = np.zeros((n_tasks, d))
    W[:, rng.choice(d, 50, replace=False)] = rng.standard_normal((n_tasks, 50))
    Y = np.asarray(X @ W.T) + 1.0 + 0.5 * rng.standard_normal((n, n_tasks))
    return sp.csr_matrix(X), Y


def objective(formulation: str, X: Any, Y: np.ndarray, coef: np.ndarray, intercept: np.ndarray,
              alphas: dict[str, float], parts: tuple[np.ndarray, np.ndarray] | None = None) -> float:
    R = Y - np.asarray(X @ coef.T) - intercept
    loss = float((R * R).sum() / (2 * X.shape[0]))
    if formulation == "l21":
        return loss + alphas["alpha"] * float(np.linalg.norm(coef, axis=0).sum())
    if formulation == "lasso":
        return loss + alphas["alpha"] * float(np.abs(coef).sum())
    assert parts is not None
    P, Q = parts
    return loss + alphas["alpha_sparse"] * float(np.abs(P).sum()) + alphas["alpha_group"] * float(np.abs(Q).max(axis=0).sum())


@dataclass
class Fit:
    tol: float
    cpu_s: float
    wall_s: float
    value: float
    passes: int = -1
    restricted_passes: int = -1
    active: int = -1


ESTIMATORS = {"l21": L21, "lasso": Lasso, "dirty": Dirty}


def ours(formulation: str, X: Any, Y: np.ndarray, alphas: dict[str, float], tol: float, working_set: bool) -> Fit:
    model = ESTIMATORS[formulation](**alphas, tol=tol, max_iter=200_000, working_set=working_set)
    cpu, wall = time.process_time(), time.perf_counter()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        model.fit(X, Y)
    cpu, wall = time.process_time() - cpu, time.perf_counter() - wall
    parts = (model.sparse_coef_, model.group_coef_) if formulation == "dirty" else None
    value = objective(formulation, X, Y, model.coef_, model.intercept_, alphas, parts)
    active = int(np.count_nonzero(np.any(model.coef_ != 0, axis=0)))
    fit = Fit(tol, cpu, wall, value, model.n_passes_, model.n_restricted_passes_, active)
    logger.info("  ours working_set=%s tol=%g: %.2f s cpu, %.2f s wall, objective %.12g, %d + %d passes", working_set,
                tol, cpu, wall, value, fit.passes, fit.restricted_passes)
    return fit


def peer_python() -> Path:
    python = PEER_ENV / "bin" / "python"
    if not python.exists():
        print(f"creating {PEER_ENV} ...", flush=True)
        venv.EnvBuilder(with_pip=True).create(PEER_ENV)
        subprocess.run([str(python), "-m", "pip", "install", "--quiet", "skglm", "numpy", "scipy"], check=True)
    return python


def skglm(formulation: str, X: sp.csr_matrix, Y: np.ndarray, alpha: float) -> list[Fit]:
    with tempfile.TemporaryDirectory() as tmp:
        data = Path(tmp) / "data.npz"
        np.savez(data, data=X.data, indices=X.indices, indptr=X.indptr, shape=np.array(X.shape), Y=Y)
        command = [str(peer_python()), str(PEER_SCRIPT), str(data), tmp, "--problem", formulation, "--alpha",
                   repr(alpha), "--tols", ",".join(f"{t:g}" for t in PEER_TOLS)]
        env = {**os.environ, "PYTHONWARNINGS": "ignore"}
        out = subprocess.run(command, check=True, capture_output=True, text=True, env=env).stdout
        fits = []
        for line in out.splitlines():
            info = json.loads(line)
            with np.load(Path(tmp) / info["file"]) as f:
                value = objective(formulation, X, Y, f["coef"], f["intercept"], {"alpha": alpha})
            fits.append(Fit(info["tol"], info["cpu_s"], info["wall_s"], value))
            logger.info("  skglm tol=%g: %.2f s cpu, %.2f s wall, objective %.12g", info["tol"], info["cpu_s"],
                        info["wall_s"], value)
    return fits


def first_reaching(fits: list[Fit], target: float) -> Fit | None:
    return next((f for f in fits if f.value <= target), None)


def sweep(formulation: str, X: Any, Y: np.ndarray, alphas: dict[str, float], working_set: bool, target: float,
          done: dict[float, Fit]) -> Fit | None:
    """Fits from the loosest tolerance up, until one reaches ``target`` (fits already made are reused)."""
    for tol in OUR_TOLS:
        fit = done.get(tol) or ours(formulation, X, Y, alphas, tol, working_set)
        if fit.value <= target:
            return fit
    return None


def run(problem: str, formulation: str, n_tasks: int, fraction: float, seed: int, peer: bool) -> dict[str, Any]:
    n, d, density = PROBLEMS[problem]
    X, Y = make_data(n, d, density, n_tasks, seed)
    model = ESTIMATORS[formulation]()
    scale = model.regularization_scale(X, Y)
    alphas = {name: fraction * value for name, value in scale.items()}
    logger.info("%s %s: n=%d d=%d density=%g T=%d alphas=%s", problem, formulation, n, d, density, n_tasks, alphas)
    tight = ours(formulation, X, Y, alphas, OUR_TOLS[-1], True)  # the full solver's tight fit would be slow
    peer_fits = skglm(formulation, X, Y, alphas["alpha"]) if peer and formulation != "dirty" else []
    reference = min([tight.value] + [f.value for f in peer_fits])
    target = reference + DIGITS * abs(reference)
    result: dict[str, Any] = {"problem": problem, "formulation": formulation, "n": n, "d": d, "density": density,
                              "tasks": n_tasks, "reference": reference}
    result["ws"] = sweep(formulation, X, Y, alphas, True, target, {OUR_TOLS[-1]: tight})
    result["full"] = sweep(formulation, X, Y, alphas, False, target, {})
    result["skglm"] = first_reaching(peer_fits, target) if peer_fits else None
    result["active"] = tight.active
    return result


def _time(fit: Fit | None) -> str:
    return "not reached" if fit is None else f"{fit.cpu_s:.2f} s ({fit.wall_s:.2f} s wall, `tol={fit.tol:g}`)"


def _ratio(a: Fit | None, b: Fit | None) -> str:
    return "–" if a is None or b is None else f"{a.cpu_s / b.cpu_s:.2f}"


def _passes(fit: Fit | None) -> str:
    return "–" if fit is None else f"{fit.passes} + {fit.restricted_passes}"


def table(results: list[dict[str, Any]]) -> str:
    head = ("| problem | formulation | active features | skglm | ours, working set | ours, no working set | "
            "ours (ws) / skglm | ours (ws) / ours (no ws) | passes with ws (full + restricted) | passes without ws |\n"
            "|---|---|---|---|---|---|---|---|---|---|")
    rows = []
    for r in results:
        peer = "no peer" if r["formulation"] == "dirty" else _time(r["skglm"])
        rows.append(f"| {r['problem']} (n={r['n']:,}, d={r['d']:,}, {100 * r['density']:g} % dense, T={r['tasks']}) | "
                    f"{r['formulation']} | {r['active']} | {peer} | {_time(r['ws'])} | {_time(r['full'])} | "
                    f"{_ratio(r['ws'], r['skglm'])} | {_ratio(r['ws'], r['full'])} | {_passes(r['ws'])} | "
                    f"{_passes(r['full'])} |")
    return head + "\n" + "\n".join(rows)


AUTO_FEATURES = (10, 30, 100, 300, 1000, 3000)


def auto(fractions: tuple[float, ...], seed: int) -> str:
    rng = np.random.default_rng(seed)
    rows = []
    for d in AUTO_FEATURES:
        X = rng.standard_normal((500, d))
        W = np.zeros((5, d))
        W[:, rng.choice(d, min(d, 20), replace=False)] = rng.standard_normal((5, min(d, 20)))
        Y = X @ W.T + rng.standard_normal((500, 5))
        for formulation, cls in ESTIMATORS.items():
            scale = cls().regularization_scale(X, Y)
            for fraction in fractions:
                alphas = {name: fraction * value for name, value in scale.items()}
                cpu, passes, active = {}, {}, 0
                for ws in (True, False):
                    best = np.inf
                    for _ in range(3):
                        model = cls(**alphas, working_set=ws)
                        start = time.process_time()
                        with warnings.catch_warnings():
                            warnings.simplefilter("ignore", ConvergenceWarning)
                            model.fit(X, Y)
                        best = min(best, time.process_time() - start)
                    cpu[ws], passes[ws] = best, f"{model.n_passes_} + {model.n_restricted_passes_}"
                    active = int(np.count_nonzero(np.any(model.coef_ != 0, axis=0)))
                logger.info("d=%d %s %g: ws %.4f s, full %.4f s", d, formulation, fraction, cpu[True], cpu[False])
                rows.append(f"| {d} | {formulation} | {fraction:g} | {active} | {1000 * cpu[True]:.1f} ms | "
                            f"{1000 * cpu[False]:.1f} ms | {cpu[True] / cpu[False]:.2f} | {passes[True]} | {passes[False]} |")
    return ("| d | formulation | alpha fraction | active features | with working set | without | ratio | "
            "passes with (full + restricted) | passes without |\n|---|---|---|---|---|---|---|---|---|\n" + "\n".join(rows))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--problems", default="tall,wide")
    parser.add_argument("--formulations", default="l21,lasso,dirty")
    parser.add_argument("--tasks", type=int, default=10)
    parser.add_argument("--alpha-fraction", type=float, default=0.1,
                        help="each strength as a fraction of the one that zeroes W (default 0.1)")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--no-peer", action="store_true", help="do not run skglm")
    parser.add_argument("--out", type=Path, default=REPO / "benchmarks" / "results" / "linear_working_set.json")
    parser.add_argument("--write", action="store_true", help="write the results into docs/benchmarks.md")
    parser.add_argument("--auto", action="store_true", help="time small dense problems with and without the working set")
    a = parser.parse_args()
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    if a.auto:
        body = auto((0.1, 0.01), a.seed)
        print(body)
        if a.write:
            write_subsection("Working sets: when `working_set=\"auto\"` switches on", f"""
Ours with and without the working set on small dense problems (n=500, T=5 tasks, 20 features used, unit noise),
each strength a fraction of the one that zeroes W, default `tol=1e-5`: the best CPU time of 3 fits (one thread).

```
.venv/bin/python benchmarks/linear_working_set.py --auto --write
```

{body}

Measured on a shared 2-core machine loaded by other jobs ({machine()}).
""")
        return
    results = [run(p, f, a.tasks, a.alpha_fraction, a.seed, not a.no_peer)
               for p in a.problems.split(",") for f in a.formulations.split(",")]
    a.out.parent.mkdir(parents=True, exist_ok=True)
    a.out.write_text(json.dumps([{k: (v.__dict__ if isinstance(v, Fit) else v) for k, v in r.items()} for r in results],
                                indent=1) + "\n")
    print(table(results))
    if a.write:
        body = f"""
Time to reach the same objective to 8 digits (within 1e-8 relative of the lowest any solver reached) on
`scipy.sparse` X, shared by T tasks, `alpha` = {a.alpha_fraction:g} × the strength that zeroes W; for the
dirty model both strengths are that fraction of their own limits. See the script's docstring for the data and
the protocol (one run per tolerance, loosest first; one thread; skglm's numba compilation untimed).

```
.venv/bin/python benchmarks/linear_working_set.py --write
```

{table(results)}

Times are CPU seconds (`process_time`, one thread), wall-clock in brackets; a ratio below 1 means ours is
faster. Passes: evaluations of the loss over all of X (`n_passes_`, on Spark one job each) + evaluations over
the working set's columns only (`n_restricted_passes_`). Measured on a shared 2-core machine loaded by other
jobs ({machine()}): wall times are inflated and noisy, CPU times less so; every number is one run.
"""
        write_subsection("Working sets on sparse, wide data: against skglm", body)


if __name__ == "__main__":
    main()

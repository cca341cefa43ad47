"""Funnel models on generated impressions: CTCVR AUC over all impressions, ESMM and AITM against the usual ways.

    python -m benchmarks.recommender                    # seeds 0,1,2: about 3 minutes on one thread
    python -m benchmarks.recommender --rows 10000 --name recommender_10k   # fewer clicks: 1,000 per seed

Data: :func:`multitask.datasets._funnel.funnel` (impression → click → conversion, conversion only after a
click; ``x2`` raises clicks and lowers conversion given a click, so the clicked rows are a biased sample).
Per seed: ``--rows`` training impressions (20% of them held out for early stopping) and as many test
impressions, drawn afresh. Every model has the same widths (bottom 64, towers 64-32, separate heads) and
training (Adam, lr 2e-3, batch 512, at most 20 epochs, patience 3, one thread):

* ``ctr x cvr(clicked)``: two single-task networks, pCTR on all impressions and pCVR on the clicked ones
  only (the sample-selection-biased way ESMM fixes); pCTCVR = pCTR · pCVR;
* ``shared-bottom(clicked)``: one shared-bottom network, click on all impressions and conversion on the
  clicked ones only (a mask); pCTCVR = pCTR · pCVR;
* ``shared-bottom``: one shared-bottom network, click and click-and-convert both on all impressions,
  pCTCVR predicted directly;
* ``esmm``: ESMM (pCTCVR = pCTR · pCVR learned over all impressions), pCVR from ``ESMM.cvr``;
* ``aitm``: AITM (two steps, calibration 0.6).

Scores on the test impressions: ``ctcvr_auc`` (click and convert, over all impressions: the ranking an ad
system needs), ``ctr_auc``, ``cvr_auc_clicked`` (pCVR against observed conversions of the clicked test
rows) and ``cvr_auc_entire`` (pCVR against a conversion drawn from the true P(conversion | click, x) for
every test impression, clicked or not: what the CVR model is used for; pCTCVR / pCTR where a model has no
pCVR of its own). ``oracle`` scores the true rates. Writes ``benchmarks/results/architectures/
NAME_runs.csv`` (one row per seed and model) and ``NAME.csv`` (mean and sd over seeds; ``--name``, default
``recommender``).
"""

from __future__ import annotations

import argparse
import csv
import time
from pathlib import Path
from typing import Any

import numpy as np
import torch

from multitask import Task
from multitask.data.arrays import Arrays
from multitask.datasets._funnel import funnel, funnel_rates
from multitask.metrics import auc
from multitask.nn import InputSpec
from multitask.nn._aitm import AITM
from multitask.nn._esmm import ESMM
from multitask.nn._shared_bottom import SharedBottom
from multitask.train import TrainConfig, fit

RESULTS = Path(__file__).resolve().parent / "results" / "architectures"
WIDTHS: dict[str, Any] = {"bottom_hidden": [64], "tower_hidden": [64, 32]}
TRAIN = TrainConfig(epochs=20, batch_size=512, lr=2e-3, patience=3, threads=1, progress=False)
FEATURES = 16
METRICS = ("ctcvr_auc", "ctr_auc", "cvr_auc_clicked", "cvr_auc_entire")


def arrays(x: np.ndarray, targets: dict[str, np.ndarray], masks: dict[str, np.ndarray] | None = None) -> Arrays:
    """One source ``"s"`` of features ``x`` and binary targets (labelled everywhere unless ``masks``)."""
    masks = masks or {t: np.ones(len(x), dtype=bool) for t in targets}
    return Arrays({"s": x}, {t: y.astype(np.float32) for t, y in targets.items()}, masks, dict.fromkeys(targets, "s"))


def train(model: torch.nn.Module, data: Arrays, seed: int) -> torch.nn.Module:
    """``model`` fit on 80% of ``data``'s rows, early-stopped on the other 20%."""
    n = data.n_rows("s")
    order = np.random.default_rng([seed, 11]).permutation(n)
    cut = int(0.8 * n)
    tasks = list(model.tasks)  # type: ignore[arg-type]
    config = TRAIN.model_copy(update={"seed": seed})
    result = fit(model, tasks, data.subset({"s": order[:cut]}), data.subset({"s": order[cut:]}), config)
    return result.model.eval()


def probabilities(model: torch.nn.Module, x: torch.Tensor, task: str) -> np.ndarray:
    """``σ(model(x)[task])`` as float64."""
    with torch.no_grad():
        return torch.sigmoid(model({"s": x})[task]).numpy().astype(np.float64)


#: what a fitted model gives on test features: ``(pCTR, pCTCVR or None, pCVR or None)``
Scores = tuple[np.ndarray, np.ndarray | None, np.ndarray | None]


def fit_and_predict(name: str, x: np.ndarray, y: dict[str, np.ndarray], test: torch.Tensor, seed: int) -> Scores:
    """Train the model called ``name`` on impressions ``(x, y)`` and score the test impressions."""
    spec = {"s": InputSpec(dim=x.shape[1])}
    click, conversion = Task("click", "binary"), Task("conversion", "binary")
    both = {"click": "s", "conversion": "s"}
    clicked = y["click"] == 1
    torch.manual_seed(seed)
    if name == "ctr x cvr(clicked)":
        ctr = train(SharedBottom(spec, [click], {"click": "s"}, **WIDTHS), arrays(x, {"click": y["click"]}), seed)
        cvr_rows = arrays(x[clicked], {"conversion": y["conversion"][clicked]})
        cvr = train(SharedBottom(spec, [conversion], {"conversion": "s"}, **WIDTHS), cvr_rows, seed)
        return probabilities(ctr, test, "click"), None, probabilities(cvr, test, "conversion")
    if name == "shared-bottom(clicked)":
        masks = {"click": np.ones(len(x), dtype=bool), "conversion": clicked}
        model = train(SharedBottom(spec, [click, conversion], both, **WIDTHS), arrays(x, y, masks), seed)
        return probabilities(model, test, "click"), None, probabilities(model, test, "conversion")
    if name == "esmm":
        esmm = train(ESMM(spec, [click, conversion], both, **WIDTHS), arrays(x, y), seed)
        assert isinstance(esmm, ESMM)
        with torch.no_grad():
            p_cvr = esmm.cvr({"s": test}).numpy().astype(np.float64)
        return probabilities(esmm, test, "click"), probabilities(esmm, test, "conversion"), p_cvr
    architecture = {"shared-bottom": SharedBottom, "aitm": AITM}[name]
    model = train(architecture(spec, [click, conversion], both, **WIDTHS), arrays(x, y), seed)
    return probabilities(model, test, "click"), probabilities(model, test, "conversion"), None


MODELS = ("ctr x cvr(clicked)", "shared-bottom(clicked)", "shared-bottom", "esmm", "aitm")


def score(scores: Scores, y: dict[str, np.ndarray], entire: np.ndarray) -> dict[str, float]:
    """The four AUCs of ``scores`` (pCTCVR = pCTR · pCVR, pCVR = pCTCVR / pCTR where one is missing)."""
    p_ctr, p_ctcvr, p_cvr = scores
    if p_ctcvr is None:
        assert p_cvr is not None
        p_ctcvr = p_ctr * p_cvr
    if p_cvr is None:
        p_cvr = np.clip(p_ctcvr / np.maximum(p_ctr, 1e-12), 0.0, 1.0)
    clicked = y["click"] == 1
    return {
        "ctcvr_auc": auc(y["conversion"], p_ctcvr),
        "ctr_auc": auc(y["click"], p_ctr),
        "cvr_auc_clicked": auc(y["conversion"][clicked], p_cvr[clicked]),
        "cvr_auc_entire": auc(entire, p_cvr),
    }


def run_seed(seed: int, rows: int, models: list[str]) -> list[dict[str, Any]]:
    """One row per model (and the oracle) for data seed ``seed``."""
    data = funnel(rows, n_features=FEATURES, n_test=rows, seed=seed)
    assert data.test is not None
    features = [f"x{i}" for i in range(FEATURES)]
    frames = {"train": data.train.sources["impressions"].frame, "test": data.test.sources["impressions"].frame}
    x = {k: f[features].to_numpy(np.float32) for k, f in frames.items()}
    y = {k: {t: f[t].to_numpy(np.float64) for t in ("click", "conversion")} for k, f in frames.items()}
    true_ctr, true_cvr = funnel_rates(x["test"].astype(np.float64))
    entire = (np.random.default_rng([seed, 13]).random(rows) < true_cvr).astype(np.float64)
    test = torch.from_numpy(x["test"].copy())
    out = [{"seed": seed, "model": "oracle", **score((true_ctr, None, true_cvr), y["test"], entire), "seconds": 0.0}]
    for name in models:
        start = time.perf_counter()
        scores = fit_and_predict(name, x["train"], y["train"], test, seed)
        seconds = time.perf_counter() - start
        out.append({"seed": seed, "model": name, **score(scores, y["test"], entire), "seconds": round(seconds, 1)})
        print(f"seed {seed} {name:24s} " + " ".join(f"{m} {out[-1][m]:.4f}" for m in METRICS) + f" {seconds:.0f}s")
    return out


def summarize(runs: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Mean and sd over seeds of every metric, per model (in the order of first appearance)."""
    summary = []
    for name in dict.fromkeys(r["model"] for r in runs):
        mine = [r for r in runs if r["model"] == name]
        row: dict[str, Any] = {"model": name, "seeds": len(mine)}
        for metric in (*METRICS, "seconds"):
            values = np.array([r[metric] for r in mine], dtype=np.float64)
            row[f"{metric}_mean"] = round(float(values.mean()), 4)
            row[f"{metric}_sd"] = round(float(values.std(ddof=1)) if len(values) > 1 else 0.0, 4)
        summary.append(row)
    return summary


def write(path: Path, rows: list[dict[str, Any]]) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("w", newline="") as f:
        writer = csv.DictWriter(f, fieldnames=list(rows[0]))
        writer.writeheader()
        writer.writerows(rows)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--seeds", default="0,1,2", help="comma-separated data and model seeds (default 0,1,2)")
    parser.add_argument("--rows", type=int, default=50_000, help="training (and test) impressions per seed")
    parser.add_argument("--models", default=",".join(MODELS), help=f"comma-separated, from: {', '.join(MODELS)}")
    parser.add_argument("--out", type=Path, default=RESULTS, help="folder of the CSV files")
    parser.add_argument("--name", default="recommender", help="file stem: NAME.csv and NAME_runs.csv")
    a = parser.parse_args()
    torch.set_num_threads(1)
    models = [m for m in a.models.split(",") if m]
    unknown = sorted(set(models) - set(MODELS))
    if unknown:
        parser.error(f"unknown model(s) {', '.join(unknown)}; choose from {', '.join(MODELS)}")
    runs = [row for seed in (int(s) for s in a.seeds.split(",")) for row in run_seed(seed, a.rows, models)]
    summary = summarize(runs)
    write(a.out / f"{a.name}_runs.csv", runs)
    write(a.out / f"{a.name}.csv", summary)
    for row in summary:
        print(f"{row['model']:24s} " + " ".join(
            f"{m} {row[m + '_mean']:.4f}±{row[m + '_sd']:.4f}" for m in METRICS
        ))


if __name__ == "__main__":
    main()

"""``--precision bf16`` against ``fp32``: the metrics and the epoch time of the same runs on census-income.

    python -m benchmarks.precision                      # census-income, hard-sharing, 5 epochs, seeds 0 and 1

Each run is ``multitask train --dataset census-income --epochs 5 --batch-size 256 --threads 1 --seed S`` with
``--precision fp32`` and with ``--precision bf16`` (the forward pass under ``torch.autocast`` in bfloat16;
weights, losses and updates in float32). Reported per precision: the validation metrics of each task (mean
over seeds) and the mean epoch time from ``log.jsonl``. The real data set is read from ``../shared/data``
(or ``$MULTITASK_DATA``).
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
DATA = Path(os.environ.get("MULTITASK_DATA", REPO.parent / "shared" / "data"))


def run(precision: str, seed: int, epochs: int) -> tuple[dict[str, dict[str, float]], float]:
    with tempfile.TemporaryDirectory(prefix="mt_precision_") as tmp:
        out = Path(tmp) / "run"
        done = subprocess.run(
            [sys.executable, "-m", "multitask", "train", "--dataset", "census-income", "--data-dir", str(DATA),
             "--epochs", str(epochs), "--batch-size", "256", "--threads", "1", "--quiet", "--seed", str(seed),
             "--precision", precision, "--out", str(out)],
            capture_output=True, text=True,
        )
        if done.returncode != 0:
            raise SystemExit(done.stderr[-2000:])
        metrics = json.loads((out / "metrics.json").read_text())["tasks"]
        seconds = [json.loads(line)["seconds"] for line in (out / "log.jsonl").read_text().splitlines()]
    return metrics, statistics.mean(seconds)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--seeds", type=int, default=2)
    parser.add_argument("--epochs", type=int, default=5)
    a = parser.parse_args()
    if not (DATA / "census-income").is_dir():
        print(f"skipped: {DATA / 'census-income'} is absent")
        return
    for precision in ("fp32", "bf16"):
        results = [run(precision, seed, a.epochs) for seed in range(a.seeds)]
        tasks = results[0][0]
        mean = {t: {m: round(statistics.mean(r[0][t][m] for r in results), 4) for m in tasks[t]} for t in tasks}
        print(json.dumps({"precision": precision, "seeds": a.seeds, "epochs": a.epochs,
                          "epoch_s": round(statistics.mean(r[1] for r in results), 2), "metrics": mean}), flush=True)


if __name__ == "__main__":
    main()

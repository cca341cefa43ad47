"""Training speed with 1 and with 2 torch intra-op threads, for the same model, data and steps.

    python -m benchmarks.torch_threads [--repeats 5]

Uses the model and data of ``benchmarks/trainer_overhead.py`` (HardSharing 128-64, 3 tasks, 50k rows × 20
features, batch 256) and ``multitask.train.fit`` for one epoch; both settings are measured in this one
process, interleaved, and the median is reported. This is why the demo, the benchmarks and the tests set
``threads=1``: small models gain nothing from intra-op threads and may lose a lot on a busy machine.
"""

from __future__ import annotations

import argparse
import statistics
import time

from benchmarks.trainer_overhead import TASKS, make_data, make_model
from multitask.train import TrainConfig, fit


def one_epoch(threads: int, rows: int) -> float:
    data = make_data(rows, 20)
    model = make_model(20)
    config = TrainConfig(epochs=1, batch_size=256, threads=threads, progress=False, patience=None)
    start = time.perf_counter()
    fit(model, TASKS, data, None, config)
    return time.perf_counter() - start


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--rows", type=int, default=50_000)
    a = parser.parse_args()
    times: dict[int, list[float]] = {1: [], 2: []}
    for _ in range(a.repeats):
        for threads in (1, 2):
            times[threads].append(one_epoch(threads, a.rows))
    one, two = statistics.median(times[1]), statistics.median(times[2])
    print(f"1 thread : {one:.2f} s per epoch (median of {a.repeats})")
    print(f"2 threads: {two:.2f} s per epoch (median of {a.repeats})")
    print(f"ratio 2/1: {two / one:.2f}")


if __name__ == "__main__":
    main()

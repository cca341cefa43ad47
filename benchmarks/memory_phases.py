"""Where the peak resident memory of an in-memory ``multitask train`` comes from, phase by phase.

    python -m benchmarks.streaming generate --rows 1000000 --path /tmp/mt_mem/1m.parquet
    python -m benchmarks.memory_phases --path /tmp/mt_mem/1m.parquet

Runs ``multitask train`` (the same flags as ``benchmarks.streaming run --modes memory``) inside this process,
with the run's phases wrapped: before each phase the peak of the resident set (``VmHWM`` of
``/proc/self/status``) is reset to the current resident set (writing 5 to ``/proc/self/clear_refs``), after
it the peak is read. A line per phase: resident set before, the phase's peak (and how far above "before"
it went), resident set after, anonymous (``RssAnon``: arrays, Python objects, freed memory the allocators
kept) and file-backed (``RssFile``: library code paged in) parts after. Phases nest (reading inside
preparing inside training); a phase's peak includes its inner phases'. Linux only.
"""

from __future__ import annotations

import argparse
import functools
import resource
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from benchmarks.streaming import TASKS

_STATUS = Path("/proc/self/status")


def _mib(key: str) -> float:
    for line in _STATUS.read_text().splitlines():
        if line.startswith(key + ":"):
            return int(line.split()[1]) / 1024
    raise KeyError(key)


def _reset_peak() -> None:
    Path("/proc/self/clear_refs").write_text("5")


class Phases:
    """Wraps functions so that each call prints its phase's memory; nested calls pass their peak outwards."""

    def __init__(self) -> None:
        self.stack: list[float] = []

    def wrap(self, owner: Any, name: str, label: str) -> None:
        f: Callable[..., Any] = getattr(owner, name)

        @functools.wraps(f)
        def phase(*args: Any, **kwargs: Any) -> Any:
            before = _mib("VmRSS")
            _reset_peak()
            self.stack.append(0.0)
            start = time.perf_counter()
            try:
                return f(*args, **kwargs)
            finally:
                peak = max(_mib("VmHWM"), self.stack.pop())
                if self.stack:
                    self.stack[-1] = max(self.stack[-1], peak)
                after = _mib("VmRSS")
                print(f"{'  ' * len(self.stack)}{label}: before {before:.0f}, peak {peak:.0f} (+{peak - before:.0f}), "
                      f"after {after:.0f} MiB (anon {_mib('RssAnon'):.0f}, file {_mib('RssFile'):.0f}); "
                      f"{time.perf_counter() - start:.1f} s", flush=True)
                _reset_peak()

        setattr(owner, name, phase)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--path", type=Path, required=True)
    parser.add_argument("--epochs", type=int, default=1)
    a = parser.parse_args()
    start = time.perf_counter()
    import multitask.cli as cli

    print(f"after imports: {_mib('VmRSS'):.0f} MiB (anon {_mib('RssAnon'):.0f}, file {_mib('RssFile'):.0f}); "
          f"{time.perf_counter() - start:.1f} s", flush=True)
    import multitask.data.reading as reading
    import multitask.runs as runs
    from multitask.data.preprocess import Preprocessor
    from multitask.models._deep import Deep

    phases = Phases()
    phases.wrap(reading, "_read_parquet", "read the Parquet file")
    phases.wrap(runs, "split_rows", "split the rows")
    phases.wrap(Preprocessor, "fit", "fit the preprocessing")
    phases.wrap(Preprocessor, "transform_parts", "encode the parts")
    phases.wrap(runs, "prepare", "prepare (all of the above)")
    phases.wrap(Deep, "fit", "train")
    phases.wrap(Deep, "predict", "predict the validation part")
    phases.wrap(runs, "task_metrics", "metrics")
    phases.wrap(runs, "save_predictions", "save the predictions")
    phases.wrap(runs, "_train", "the whole run")
    with tempfile.TemporaryDirectory(prefix="mt_bench_") as tmp:
        code = cli.main(["train", "--data", str(a.path), *TASKS, "--epochs", str(a.epochs), "--batch-size", "512",
                         "--hidden", "128,64", "--quiet", "--threads", "1", "--out", str(Path(tmp) / "run")])
    print(f"exit {code}; ru_maxrss {resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024:.0f} MiB (not the "
          "run's peak: the resets above lower it too)")


if __name__ == "__main__":
    main()

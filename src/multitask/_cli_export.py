"""``multitask export``: a trained run as an ONNX graph that takes the raw feature columns.

    multitask export --run runs/census --format onnx --output census.onnx
    multitask export --run runs/census --format onnx --output census-int8.onnx --quantize int8 --data test.csv

The graph is checked against the library's predictions before it is written (see :mod:`multitask.export`).
With ``--quantize int8``, the command prints the size of the float and the int8 graph, their throughput and,
with ``--data`` (labelled held-out rows), each task's metrics under both.
"""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any

from multitask.errors import ConfigError


def add_parser(subparsers: Any) -> argparse.ArgumentParser:
    """Add ``export`` to the command line's subcommands."""
    from multitask.cli import _doc
    from multitask.export import FORMATS, QUANTIZE

    e: argparse.ArgumentParser = subparsers.add_parser(
        "export", help="a trained run as an ONNX graph (raw feature columns in, one output per task)")
    e.add_argument("--run", required=True, help="run directory written by `multitask train`")
    e.add_argument("--format", required=True, metavar="FORMAT", help=f"one of: {', '.join(FORMATS)}")
    e.add_argument("--output", required=True, help="file to write (never a file inside a run directory)")
    e.add_argument("--quantize", metavar="KIND",
                   help=f"one of: {', '.join(QUANTIZE)} (dynamic quantization of the deep network's weights)")
    e.add_argument("--data", help="with --quantize: labelled held-out rows (the layout the run was trained on) "
                                  "on which to report each task's metrics under the float and the int8 graph")
    e.add_argument("--sep", help=_doc("sep"))
    return e


def run(a: argparse.Namespace, console: Any) -> int:
    """Export the run; print what was written (and, with --quantize, the comparison)."""
    from multitask._rundir import atomic_replace
    from multitask.data.reading import read_table
    from multitask.export import FORMATS
    from multitask.export._onnx import (
        check_output,
        check_quantize,
        checked_graph,
        require_onnx,
        synthetic_rows,
    )
    from multitask.runs import load_run

    if a.format not in FORMATS:
        raise ConfigError(f"--format {a.format!r}: unknown format; choose one of: {', '.join(FORMATS)}")
    check_quantize(a.quantize)
    if a.data is not None and a.quantize is None:
        raise ConfigError("--data reports the metrics of a quantized graph: give it with --quantize")
    require_onnx()
    loaded = load_run(a.run)
    out = check_output(a.output, loaded.run_dir)
    frame = read_table(a.data, sep=a.sep) if a.data is not None else None
    graph = checked_graph(loaded)
    data = graph
    if a.quantize is not None:
        from multitask.export._quantize import quantize_int8

        data = quantize_int8(loaded, graph)
    atomic_replace(out, lambda tmp: Path(tmp).write_bytes(data))
    console.print(f"ONNX graph of {len(loaded.tasks)} task output(s) written to {out} ({len(data) / 1e6:.3g} MB)",
                  markup=False)
    if a.quantize is not None:
        from multitask.export._quantize import compare

        rows = frame if frame is not None else synthetic_rows(loaded, 4096)
        comparison = compare(loaded, {"float": graph, a.quantize: data}, rows, labelled=frame is not None,
                             where=str(a.data) if a.data is not None else "rows drawn from the training statistics")
        _print(comparison, a.quantize, console)
    return 0


def _print(c: Any, kind: str, console: Any) -> None:
    from rich.table import Table

    table = Table(title=f"float vs {kind} on {c.rows} rows (one thread)", title_justify="left")
    for column in ("", "float", kind):
        table.add_column(column)
    table.add_row("size (MB)", f"{c.size['float'] / 1e6:.3g}", f"{c.size[kind] / 1e6:.3g}")
    table.add_row("rows/s from the table", f"{c.rows_per_second['float']:,.0f}", f"{c.rows_per_second[kind]:,.0f}")
    table.add_row("rows/s of the session", f"{c.session_rows_per_second['float']:,.0f}",
                  f"{c.session_rows_per_second[kind]:,.0f}")
    for task, change in c.max_change.items():
        table.add_row(f"{task}: largest change", "", f"{change:.3g}")
    if c.metrics is not None:
        for task, values in c.metrics["float"].items():
            for metric, value in values.items():
                other = c.metrics[kind][task][metric]
                table.add_row(f"{task}: {metric}", _number(value), _number(other))
    console.print(table)


def _number(value: float | None) -> str:
    return "—" if value is None else f"{value:.4g}"

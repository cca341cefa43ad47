"""The command line's contract under generated input (docs/cli.md, "What the command line promises").

Whatever the table, the options and the names, ``train`` (and ``evaluate`` and ``predict`` on the run it wrote)
ends either with exit 0 and files that a strict JSON parser reads (no NaN, no Infinity), or with exit 2 and one
line ``multitask: error: …`` on stderr; nothing is written outside the run directory and ``--output``, and no
file of the user's changes.

The examples are fixed (``derandomize``) so that the suite gives the same answer on every run;
``MULTITASK_FUZZ=N pytest tests/test_fuzz.py`` draws N fresh random examples per test instead.
"""

from __future__ import annotations

import contextlib
import hashlib
import io
import json
import os
import re
import tempfile
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, NoReturn

import numpy as np
import pandas as pd
import yaml
from hypothesis import HealthCheck, event, given, settings
from hypothesis import strategies as st

from multitask._rundir import is_run
from multitask.cli import main
from multitask.tasks import KINDS

_RANDOM = int(os.environ.get("MULTITASK_FUZZ", "0"))


def fuzz_settings(examples: int) -> settings:
    """``examples`` fixed examples (or ``MULTITASK_FUZZ`` random ones); no deadline: a run takes ~0.1-0.5 s."""
    return settings(max_examples=_RANDOM or examples, deadline=None, derandomize=not _RANDOM, database=None,
                    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])


# ---- the contract -----------------------------------------------------------------------------------------
@dataclass(frozen=True)
class Outcome:
    code: int
    out: str
    err: str


def cli(*args: str) -> Outcome:
    """``multitask ARGS`` in this process: exit status, stdout and stderr."""
    out, err = io.StringIO(), io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        code = main(list(args))
    return Outcome(code, out.getvalue(), err.getvalue())


def strict_loads(text: str) -> Any:
    """``json.loads`` refusing NaN and Infinity (what a strict parser, e.g. a browser's, does)."""

    def refuse(constant: str) -> NoReturn:
        raise ValueError(f"{constant} is not JSON")

    return json.loads(text, parse_constant=refuse)


def assert_error_line(o: Outcome, *needles: str) -> str:
    """Exit status 2 and exactly one stderr line ``multitask: error: …`` containing every needle."""
    assert o.code == 2, (o.code, o.err[-2000:])
    assert "Traceback" not in o.err, o.err
    assert o.err.endswith("\n") and o.err.count("\n") == 1, o.err
    line = o.err.rstrip("\n")
    assert line.startswith("multitask: error: ") and len(line) > len("multitask: error: "), line
    for needle in needles:
        assert needle in line, (needle, line)
    return line


def assert_contract(o: Outcome) -> None:
    """Exit 0, or exit 2 with one error line."""
    assert o.code in (0, 2), (o.code, o.err[-2000:])
    if o.code == 2:
        assert_error_line(o)


#: a task's folder inside the run: its index, then a readable slug (src/multitask/_names.py)
TASK_DIR = re.compile(r"\d{3,}-[A-Za-z0-9_-]{1,40}")


def assert_complete_run(run: Path) -> dict[str, Any]:
    """A finished run: every JSON file and log line strict JSON, metrics.json of the documented shape, every
    undefined metric ``null`` with a reason, task folders by index and slug. Returns metrics.json."""
    assert run.is_dir() and not (run / "INCOMPLETE").exists()
    for path in sorted(run.rglob("*.json")):
        strict_loads(path.read_text(encoding="utf-8"))
    for path in sorted(run.rglob("*.jsonl")):
        for line in path.read_text(encoding="utf-8").splitlines():
            strict_loads(line)
    metrics = strict_loads((run / "metrics.json").read_text(encoding="utf-8"))
    assert {"model", "evaluated_on", "tasks", "mean", "not_evaluated", "baselines"} <= set(metrics)
    for task, values in metrics["tasks"].items():
        if any(v is None for v in values.values()):
            assert isinstance(metrics["not_evaluated"].get(task), str), (task, metrics["not_evaluated"])
    for kind, b in metrics["baselines"].items():
        assert {"model", "tasks", "mean", "delta_m", "delta_m_tasks"} <= set(b), kind
        assert set(b["tasks"]) == set(metrics["tasks"])
    meta = strict_loads((run / "run.json").read_text(encoding="utf-8"))
    dirs = meta["task_dirs"]
    assert sorted(dirs) == sorted(metrics["tasks"])
    assert len(set(dirs.values())) == len(dirs)
    for i, (name, folder) in enumerate(dirs.items()):
        assert TASK_DIR.fullmatch(folder) and int(folder.split("-")[0]) == i, (name, folder)
    stl = run / "baseline" / "stl"
    if "stl" in metrics["baselines"]:
        assert sorted(p.name for p in stl.iterdir()) == sorted(dirs.values())
    else:
        assert not stl.exists()
    return metrics


def assert_train_contract(o: Outcome, run: Path, existed: bool) -> bool:
    """The contract of one ``train`` into ``run``; True when it succeeded. A failed run that had started is
    marked INCOMPLETE, and ``evaluate`` refuses it."""
    assert_contract(o)
    event(f"train exit {o.code}")  # --hypothesis-show-statistics: how many runs got through
    if o.code == 0:
        assert_complete_run(run)
        return True
    if not existed and _exists(run) and run.is_dir() and any(run.iterdir()):
        assert (run / "INCOMPLETE").is_file(), sorted(p.name for p in run.iterdir())
        assert_error_line(cli("evaluate", "--run", str(run), "--data", "data.csv"), "did not finish")
    return False


# ---- the sandbox: the working folder, with nothing outside it that a run may touch --------------------------
def snapshot(root: Path) -> dict[str, str]:
    """``{relative path: content hash, or "dir"}`` of everything under ``root``."""
    out: dict[str, str] = {}
    for dirpath, dirnames, filenames in os.walk(root):
        for d in dirnames:
            out[os.path.relpath(os.path.join(dirpath, d), root)] = "dir"
        for f in filenames:
            p = os.path.join(dirpath, f)
            with open(p, "rb") as fh:
                out[os.path.relpath(p, root)] = hashlib.sha256(fh.read()).hexdigest()
    return out


def _exists(path: Path) -> bool:
    try:
        return path.exists()
    except OSError:  # a name too long
        return False


def _is_run(path: Path) -> bool:
    try:
        return is_run(path)
    except OSError:  # a name too long
        return False


def _is_within(path: Path, parent: Path) -> bool:
    return path == parent or parent in path.parents


def assert_written_only(root: Path, before: dict[str, str], allowed: Sequence[Path]) -> None:
    """Every change under ``root`` lies in an ``allowed`` path (or is a folder leading to one)."""
    allowed = [p.resolve() for p in allowed]
    after = snapshot(root)
    for key in sorted(set(before) | set(after)):
        if before.get(key) == after.get(key):
            continue
        path = (root / key).resolve()
        ok = any(_is_within(path, a) for a in allowed) or (
            after.get(key) == "dir" and key not in before and any(_is_within(a, path) for a in allowed))
        assert ok, f"{key} was {'changed' if key in before and key in after else 'written' if key in after else 'removed'}"


@contextlib.contextmanager
def sandbox() -> Iterator[Path]:
    """A fresh folder ``BASE/home/user/work`` as the working directory; yields BASE (three levels up)."""
    before = Path.cwd()
    with tempfile.TemporaryDirectory(prefix="multitask-fuzz-") as tmp:
        base = Path(tmp).resolve()
        work = base / "home" / "user" / "work"
        work.mkdir(parents=True)
        os.chdir(work)
        try:
            yield base
        finally:
            os.chdir(before)


# ---- generated names ---------------------------------------------------------------------------------------
def _no_markup(text: str) -> str:
    # names like "[/]" are printed as text, not markup (test_hardening.py,
    # test_a_name_that_looks_like_markup_is_printed_as_it_is), so they stay in
    return text


_ODD_PARTS = ["/", "\\", ".", "..", " ", "-", "_", ":", "|", "*", "?", "~", "$HOME", "%s", "{}", "\t", "é", "名前",
              "🙂", "ǅ", "İ", "con", "NUL", "aux.txt", ".hidden", "a/../b", "\u200b", "\N{RIGHT-TO-LEFT MARK}"]
_CHARS = st.characters(codec="utf-8", exclude_categories=("Cs", "Cc"))

_PLAIN = st.from_regex(r"[a-z][a-z0-9_]{0,6}", fullmatch=True)

#: task names, task ids and column names, from plain (half of them, so that runs get through) to hostile
names = st.one_of(
    _PLAIN,
    _PLAIN,
    _PLAIN,
    st.lists(st.one_of(st.sampled_from(_ODD_PARTS), st.text(_CHARS, min_size=1, max_size=6)),
             min_size=1, max_size=4).map("".join),
    st.tuples(st.sampled_from(["a", "é", "/", ".", "ab/"]), st.integers(300, 1000)).map(lambda t: t[0] * t[1]),
    st.sampled_from(["a/b", "a_b", "a\\b", "a-b", "a b", "..", ".", "/", "../x", "1.0", "2.0", "nan", "inf", "None",
                     "True", "-1", "0x1", "y1.1", ""]),
).map(_no_markup)


# ---- generated tables --------------------------------------------------------------------------------------
_NUMBER = st.one_of(st.floats(-1e3, 1e3, allow_nan=False), st.integers(-5, 5))
#: feature columns: most of them readable, a few of each kind that must be refused naming the column
_FEATURE_COLUMNS = {
    "numeric": _NUMBER,
    "category": st.sampled_from(["a", "b", "c", "", None, " ", "1", "é"]),
    "constant": st.just(7.0),
    "with missing cells": st.one_of(_NUMBER, st.none()),
    "extreme": st.one_of(_NUMBER, st.sampled_from([1e300, -1e300, float("inf"), float("nan"), 1e-300, 2**63])),
    "mixed": st.one_of(_NUMBER, _NUMBER, _NUMBER, st.sampled_from(["unknown", "?", "1,5", "NA"])),
    "missing": st.none(),
}
_FEATURE_KINDS = ["numeric"] * 8 + ["category"] * 3 + sorted(_FEATURE_COLUMNS)
_TARGETS = {
    "regression": _NUMBER,
    "binary": st.sampled_from([0, 1]),
    "multiclass": st.sampled_from(["lo", "mid", "hi", 3]),
    "multilabel": st.sampled_from(["a", "b", "a|b", "b|c", "a|a", "|a"]),
}
_BINARY_VALUES = st.sampled_from([(0, 1), ("no", "yes"), (True, False), (1, 2), ("x", "x"), (0, 1, 2)])


@st.composite
def feature_frame(draw: st.DrawFn, n: int, reserved: Sequence[str]) -> pd.DataFrame:
    """1-3 feature columns of ``n`` rows, each of a random kind, under names not in ``reserved``."""
    k = draw(st.integers(1, 3))
    cols = draw(st.lists(st.one_of(st.sampled_from(["x", "x2", "color", "age"]), names), min_size=k, max_size=k,
                         unique=True).filter(lambda c: not set(c) & set(reserved)))
    frame = pd.DataFrame(index=range(n))
    for c in cols:
        kind = draw(st.sampled_from(_FEATURE_KINDS))
        frame[c] = pd.Series(draw(st.lists(_FEATURE_COLUMNS[kind], min_size=n, max_size=n)), dtype=object)
    return frame


@st.composite
def labels(draw: st.DrawFn, kind: str, n: int) -> list[Any]:
    """A target column: all rows labelled, or 0-3 of them; binary tasks from one pair of values; now and then
    one cell that does not fit the kind."""
    values: st.SearchStrategy[Any] = _TARGETS[kind]
    if kind == "binary":
        values = st.sampled_from(draw(_BINARY_VALUES))
    column: list[Any] = draw(st.lists(values, min_size=n, max_size=n))
    if draw(st.sampled_from([False, False, True])):
        keep = set(draw(st.lists(st.integers(0, n - 1), max_size=3)))
        column = [v if i in keep else None for i, v in enumerate(column)]
    if draw(st.sampled_from([False] * 5 + [True])):
        column[draw(st.integers(0, n - 1))] = draw(st.sampled_from(["high", 1e300, -1e300, "a|", 2.5, True]))
    return column


@dataclass(frozen=True)
class Table:
    frame: pd.DataFrame
    args: list[str]  # the train flags declaring the layout and tasks
    long: bool
    tasks: list[str]  # wide form: the task names


@st.composite
def wide_tables(draw: st.DrawFn) -> Table:
    n = draw(st.integers(1, 30))
    k = draw(st.integers(1, 4))
    tasks = draw(st.lists(names, min_size=k, max_size=k, unique=True))
    frame = draw(feature_frame(n, tasks))
    args = []
    for task in tasks:
        kind = draw(st.sampled_from(KINDS))
        frame[task] = pd.Series(draw(labels(kind, n)), dtype=object)
        args.append(f"--task={task}:{kind}")
    return Table(frame, args, False, tasks)


@st.composite
def long_tables(draw: st.DrawFn) -> Table:
    n_tasks = draw(st.integers(1, 4))
    ids = draw(st.one_of(
        st.lists(names, min_size=n_tasks, max_size=n_tasks, unique=True),
        st.just([1.0, 2.0, 3.0, 4.0][:n_tasks]),
        st.just([1, 2, 3, 4][:n_tasks]),
    ))
    sizes = draw(st.lists(st.integers(1, 8), min_size=n_tasks, max_size=n_tasks))
    kind = draw(st.sampled_from(KINDS))
    n = sum(sizes)
    frame = draw(feature_frame(n, ["task", "y"]))
    frame["task"] = [task for task, size in zip(ids, sizes, strict=True) for _ in range(size)]
    frame["y"] = pd.Series(draw(labels(kind, n)), dtype=object)
    return Table(frame, ["--task-column", "task", "--target", "y", "--task-kind", kind], True, [])


#: fast models: linear ones train in milliseconds, the deep one is made tiny
FAST_MODELS = {
    "linear:independent": [],
    "linear:pooled": [],
    "hard-sharing": ["--epochs", "1", "--batch-size", "16", "--hidden", "4"],
}


def write_csv(frame: pd.DataFrame, path: str, sep: str) -> None:
    frame.to_csv(path, index=False, sep=sep)


def check_evaluate_and_predict(table: Table, run: str, base: Path, *sep: str) -> None:
    """A finished run evaluates and predicts the file it was trained on (with the same ``--sep``, if any)."""
    o = cli("evaluate", "--run", run, "--data", "data.csv", *sep)  # the table
    assert o.code == 0, o.err
    o = cli("evaluate", "--run", run, "--data", "data.csv", "--json", *sep)
    assert o.code == 0, o.err
    metrics = strict_loads(o.out)
    assert set(metrics) == set(strict_loads(Path(run, "metrics.json").read_text())["tasks"])
    before = snapshot(base)
    o = cli("predict", "--run", run, "--data", "data.csv", "--output", "pred.csv", *sep)
    assert o.code == 0, o.err
    assert_written_only(base, before, [Path("pred.csv")])
    pred = pd.read_csv("pred.csv", keep_default_na=False, sep=",")
    assert len(pred) == len(table.frame)
    expected = ["task", "prediction"] if table.long else table.tasks
    assert set(expected) <= set(pred.columns), (expected, list(pred.columns))


# ---- the fuzz tests ----------------------------------------------------------------------------------------
@fuzz_settings(60)
@given(table=st.one_of(wide_tables(), long_tables()), model=st.sampled_from(sorted(FAST_MODELS)),
       sep=st.sampled_from([",", ";", "\t", "|"]), give_sep=st.booleans(), baseline=st.sampled_from([[], ["stl"]]))
def test_any_table_trains_or_is_refused_in_one_line(table: Table, model: str, sep: str, give_sep: bool,
                                                    baseline: list[str]) -> None:
    with sandbox() as base:
        write_csv(table.frame, "data.csv", sep)
        data = Path("data.csv").read_bytes()
        before = snapshot(base)
        sep_args = ["--sep", sep] if give_sep else []
        args = ["train", "--data", "data.csv", *table.args, "--model", model, *FAST_MODELS[model], "--out", "run",
                "--quiet", *sep_args, *(["--baseline", *baseline] if baseline else [])]
        o = cli(*args)
        assert_written_only(base, before, [Path("run")])
        assert Path("data.csv").read_bytes() == data
        if assert_train_contract(o, Path("run"), existed=False):
            check_evaluate_and_predict(table, "run", base, *sep_args)


def _flag_values() -> dict[str, st.SearchStrategy[str]]:
    """Each train flag with values from valid to absurd (valid ones bounded so that a run stays fast)."""
    floats = st.sampled_from(["0", "-1", "1e-3", "0.5", "1e308", "1e999", "inf", "-inf", "nan", "NaN", "1e-320", "",
                              "abc", "true", "0x10"])
    return {
        "--epochs": st.sampled_from(["0", "1", "2", "-1", "1000001", "abc", "1.5", "true", "", "99999999999999999999"]),
        "--batch-size": st.sampled_from(["0", "1", "16", "2147483647", "2147483648", "-3", "1e3"]),
        "--lr": floats,
        "--valid-fraction": st.sampled_from(["0", "1", "0.5", "0.01", "0.99", "nan", "inf", "-0.1", "1e-9", "abc"]),
        "--seed": st.sampled_from(["0", "-1", "4294967295", "4294967296", "99999999999999999999"]),
        "--patience": st.sampled_from(["0", "1", "-5", "2147483648"]),
        "--temperature": floats,
        "--threads": st.sampled_from(["0", "1", "-1", "2147483648"]),
        "--hidden": st.sampled_from(["4", "0", "-1", "", "2,2", "abc", "4,", ",", "99999999999999999999", "20000"]),
        "--dropout": st.sampled_from(["0", "0.5", "1", "-0.1", "nan", "inf"]),
        "--model": st.sampled_from([*FAST_MODELS, "gbdt:independent", "pooled-mlp", "nope", "linear:", ":", ""]),
        "--optimizer": st.sampled_from(["adam", "adamw", "sgd", "nope"]),
        "--schedule": st.sampled_from(["constant", "cosine", "step", "nope"]),
        "--sampling": st.sampled_from(["proportional", "uniform", "temperature", "round-robin", "nope"]),
        "--baseline": st.sampled_from(["stl", "pooled", "gbdt", "stl,stl", "", ",", "nope", "stl,pooled,gbdt"]),
        "--cv": st.sampled_from(["2", "3", "0", "1", "1001", "-2", "30"]),
        "--model-option": st.sampled_from(["alpha=1", "alpha=inf", "alpha=.nan", "alpha=-1", "alpha=true",
                                           "bogus=1", "hidden=[4]", "dropout=2", "=", "alpha", "alpha=1e999"]),
        "--features": st.sampled_from(["x", "x,color", "zzz", "", ",", "x,x", "y1", "task"]),
        "--sep": st.sampled_from([",", ";", "", ";;", "\\t", '"', "\n"]),
        "--task-kind": st.sampled_from(KINDS),
        "--test-data": st.sampled_from(["data.csv", "missing.csv", "", "."]),
        "--dataset": st.sampled_from(["synthetic", "nope"]),
        "--dataset-option": st.sampled_from(["n=3", "x"]),
        "--data-dir": st.sampled_from(["."]),
    }


_FLAG_VALUES = _flag_values()
_SWITCHES = ["--poolable", "--overwrite", "--resume"]


@st.composite
def flag_sets(draw: st.DrawFn) -> list[str]:
    keys = draw(st.lists(st.sampled_from(sorted(_FLAG_VALUES)), max_size=4, unique=True))
    args = []
    for key in keys:
        args.append(f"{key}={draw(_FLAG_VALUES[key])}")
    args += draw(st.lists(st.sampled_from(_SWITCHES), max_size=2, unique=True))
    return args


def _fixed_table(long: bool) -> Table:
    rng = np.random.default_rng(0)
    n = 24
    frame = pd.DataFrame({"x": rng.standard_normal(n), "color": rng.choice(["red", "blue"], n)})
    if long:
        frame["task"] = np.repeat(["g0", "g1"], n // 2)
        frame["y"] = frame["x"] + 0.1 * rng.standard_normal(n)
        return Table(frame, ["--task-column", "task", "--target", "y"], True, [])
    frame["y1"] = frame["x"] * 2 + 0.1 * rng.standard_normal(n)
    frame["y2"] = (frame["x"] > 0).astype(int)
    return Table(frame, ["--task", "y1:regression", "--task", "y2:binary"], False, ["y1", "y2"])


#: the deep models: given no other model, the run is made tiny (flags given later win)
_DEEP = {"hard-sharing", "pooled-mlp"}
_TINY = ["--epochs=1", "--batch-size=16", "--hidden=4"]


@fuzz_settings(100)
@given(long=st.booleans(), flags=flag_sets())
def test_any_flags_train_or_are_refused_in_one_line(long: bool, flags: list[str]) -> None:
    table = _fixed_table(long)
    model = dict(f.split("=", 1) for f in flags if "=" in f).get("--model", "hard-sharing")
    with sandbox() as base:
        write_csv(table.frame, "data.csv", ",")
        before = snapshot(base)
        o = cli("train", "--data", "data.csv", *table.args, *(_TINY if model in _DEEP else []), *flags,
                "--out", "run", "--quiet")
        assert_written_only(base, before, [Path("run")])
        assert Path("data.csv").exists()
        if assert_train_contract(o, Path("run"), existed=False):
            check_evaluate_and_predict(table, "run", base)


def some_of(values: dict[str, st.SearchStrategy[Any]], most: int) -> st.SearchStrategy[dict[str, Any]]:
    """Dictionaries of at most ``most`` of the keys of ``values``, each with a value of its strategy."""
    keys = st.lists(st.sampled_from(sorted(values)), max_size=most, unique=True)
    return keys.flatmap(lambda ks: st.fixed_dictionaries({k: values[k] for k in ks}))


def _config_values() -> dict[str, st.SearchStrategy[Any]]:
    """Options of a YAML config, with values of every YAML type (bounded where a valid value would be slow)."""
    anything = st.one_of(st.booleans(), st.none(), st.integers(-(2**70), 2**70), st.text(max_size=4),
                         st.floats(allow_nan=True, allow_infinity=True), st.lists(st.integers(-2, 4), max_size=2),
                         st.dictionaries(st.text(max_size=3), st.integers(), max_size=1))
    small_int = st.one_of(st.integers(-2, 2), st.sampled_from([10**6 + 1, 2**31, 2**63, 1.0, "1"]), st.booleans())
    floats = st.one_of(st.floats(allow_nan=True, allow_infinity=True), st.booleans(), st.text(max_size=3),
                       st.none())
    train = {
        "epochs": small_int, "batch_size": st.one_of(small_int, st.just(16)), "lr": floats, "weight_decay": floats,
        "momentum": floats, "temperature": floats, "patience": st.one_of(small_int, st.none()),
        "seed": st.one_of(st.integers(-(2**40), 2**40), st.booleans(), st.floats()), "threads": st.sampled_from(
            [0, 1, -1, 2**31, True, None, 1.0]), "optimizer": st.sampled_from(["adam", "sgd", "", "x", 1]),
        "schedule": st.sampled_from(["cosine", "step", "", None]), "sampling": st.sampled_from(
            ["uniform", "round-robin", "x", None]), "monitor": st.sampled_from(["y1", "g0", "nope", "", None, 3]),
        "progress": anything, "bogus": anything,
    }
    hidden = st.one_of(st.lists(st.integers(-1, 4), max_size=2), st.sampled_from(["4", "", 4, None, [4.5], [True]]))
    dropout = st.one_of(st.floats(allow_nan=True, allow_infinity=True), st.booleans(), st.sampled_from(["abc", None]))
    return {
        "train": some_of(train, 3),
        "valid_fraction": floats, "poolable": anything, "cv": small_int, "search": st.sampled_from(
            [0, -1, True, "x", 10**6]), "baseline": st.one_of(anything, st.sampled_from(["stl", ["stl", "stl"], ["x"]])),
        "model": st.sampled_from([*FAST_MODELS, "pooled-mlp", "", None, 3]),
        "model_options": some_of({
            "hidden": hidden, "dropout": dropout, "alpha": floats, "bogus": anything}, 2),
        "features": st.one_of(anything, st.sampled_from([["x"], ["x", "x"], ["zzz"], []])),
        "sep": st.sampled_from([",", ";", "", None, 1]), "task_kind": st.sampled_from([*KINDS, "x", None]),
        "tasks": st.one_of(anything, st.sampled_from([["y1:regression"], ["y1"], [{"name": "y1"}], [{"name": ""}],
                                                       [{"name": "y1", "kind": "binary", "weight": float("nan")}]])),
        "overwrite": anything, "dataset_options": anything, "bogus": anything, "out": st.just("run"),
        "data": st.just("data.csv"),
    }


_CONFIG_VALUES = _config_values()


@fuzz_settings(100)
@given(long=st.booleans(), config=some_of(_CONFIG_VALUES, 4), repeat=st.sampled_from([False, False, True]))
def test_any_config_file_trains_or_is_refused_in_one_line(long: bool, config: dict[str, Any], repeat: bool) -> None:
    table = _fixed_table(long)
    with sandbox() as base:
        write_csv(table.frame, "data.csv", ",")
        text = yaml.safe_dump(config, allow_unicode=True)
        if repeat and config:
            text += f"{next(iter(config))}: 1\n"  # the first key again
        Path("run.yaml").write_text(text, encoding="utf-8")
        before = snapshot(base)
        train = config.get("train") if isinstance(config.get("train"), dict) else {}
        tiny = [] if str(config.get("model", "hard-sharing")) not in _DEEP else [
            f for f, key in (("--epochs=1", "epochs"), ("--batch-size=16", "batch_size")) if key not in train]
        layout = table.args if long or "tasks" not in config else []
        o = cli("train", "--config", "run.yaml", "--data", "data.csv", *layout, *tiny, "--out", "run", "--quiet")
        assert_written_only(base, before, [Path("run")])
        if repeat and config:
            assert_error_line(o, "run.yaml", repr(next(iter(config))), "twice")
        elif assert_train_contract(o, Path("run"), existed=False):
            check_evaluate_and_predict(table, "run", base)


@fuzz_settings(30)
@given(tasks=st.lists(names, min_size=2, max_size=4, unique=True), long=st.booleans())
def test_any_task_names_get_their_own_folders(tasks: list[str], long: bool) -> None:
    """Names that are paths, equal after slugging, long or unicode: one folder each, all inside the run."""
    rng = np.random.default_rng(1)
    with sandbox() as base:
        n = 8 * len(tasks)
        frame = pd.DataFrame({"x": rng.standard_normal(n)})
        if long:
            frame["task"] = np.repeat(np.array(tasks, dtype=object), 8)
            frame["y"] = frame["x"] + 0.1 * rng.standard_normal(n)
            layout = ["--task-column", "task", "--target", "y"]
        else:
            for t in tasks:
                frame[t] = frame["x"] + 0.1 * rng.standard_normal(n)
            layout = [f"--task={t}:regression" for t in tasks]
        write_csv(frame, "data.csv", ",")
        before = snapshot(base)
        o = cli("train", "--data", "data.csv", *layout, "--features", "x", "--model", "linear:independent",
                "--baseline", "stl", "--out", "run", "--quiet")
        assert_written_only(base, before, [Path("run")])
        if not assert_train_contract(o, Path("run"), existed=False):
            return
        metrics = assert_complete_run(Path("run"))
        assert sorted(metrics["tasks"]) == sorted(str(t) for t in tasks)
        check_evaluate_and_predict(Table(frame, layout, long, tasks), "run", base)


#: path parts for --out and --output: at most three ".." keep every path inside the sandbox
_PATH_PARTS = ["run", "r un", "é", "sub", "data.csv", "mine", "oldrun", "empty", "INCOMPLETE", "run.json", ".", "",
               "a" * 300, "pred.csv", "baseline", "oldrun/baseline"]


@st.composite
def paths(draw: st.DrawFn) -> str:
    ups = draw(st.integers(0, 3))
    rest = draw(st.lists(st.sampled_from(_PATH_PARTS), max_size=3))
    return "/".join([".."] * ups + rest)


@fuzz_settings(30)
@given(out=paths(), switches=st.lists(st.sampled_from(["--overwrite", "--resume"]), max_size=2, unique=True),
       output=paths(),
       predict_run=st.sampled_from(["oldrun", "run"]))
def test_any_out_and_output_paths_keep_every_file_of_the_user(out: str, switches: list[str], output: str,
                                                               predict_run: str) -> None:
    table = _fixed_table(long=False)
    with sandbox() as base:
        write_csv(table.frame, "data.csv", ",")
        Path("mine").mkdir()
        Path("mine", "notes.txt").write_text("mine\n")
        Path("empty").mkdir()
        Path("pred.csv").write_text("an old result of mine\n")
        users = snapshot(Path.cwd())
        train = ["--data", "data.csv", *table.args, "--model", "linear:independent", "--quiet"]
        assert cli("train", *train, "--out", "oldrun").code == 0
        old = snapshot(Path("oldrun"))
        before = snapshot(base)
        existed = _exists(Path(out))
        o = cli("train", *train, *switches, "--out", out)
        assert_written_only(base, before, [Path(out)])
        assert_train_contract(o, Path(out), existed=existed)
        # the old run: replaced whole (--overwrite), or none of its files changed
        replaced = Path(out).resolve() == Path("oldrun").resolve() and o.code == 0
        now = snapshot(Path("oldrun"))
        assert replaced or all(now.get(k) == v for k, v in old.items())

        before = snapshot(base)
        in_a_run = any(_is_run(p) for p in Path(output).resolve().parents)
        o = cli("predict", "--run", predict_run, "--data", "data.csv", "--output", output)
        assert_contract(o)
        assert_written_only(base, before, [Path(output)] if o.code == 0 else [])
        if o.code == 0:
            assert not in_a_run, output
            assert os.path.isfile(output), output
            assert len(pd.read_csv(output)) == len(table.frame)
        # the user's own files: never changed, but for the file named by a successful predict --output
        now = snapshot(Path.cwd())
        for key, value in users.items():
            if not (o.code == 0 and Path(key).resolve() == Path(output).resolve()):
                assert now.get(key) == value, key

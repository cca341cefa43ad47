"""The validation split: a partition of the rows in which every task keeps labelled training rows."""

from __future__ import annotations

import numpy as np
import pandas as pd
from hypothesis import given, settings
from hypothesis import strategies as st

from multitask.data.preprocess import Preprocessor
from multitask.data.reading import declare_long, declare_wide
from multitask.data.spec import DataSpec
from multitask.data.split import split_spec
from multitask.tasks import Task


def _labelled_train(train: DataSpec, task: str) -> int:
    return int(train.labelled_rows(task).sum())


def _overshadowed(n: int = 10) -> DataSpec:
    """Wide form: task ``b`` labels only rows 0 and 1, which belong to task ``a``'s group (``a`` labels all)."""
    frame = pd.DataFrame({"x": np.arange(float(n)), "a": np.arange(float(n)), "b": np.nan})
    frame.loc[[0, 1], "b"] = [0.0, 1.0]
    return declare_wide(frame, [Task("a", "regression"), Task("b", "regression")], features=["x"])


def test_a_task_labelled_only_in_another_tasks_rows_keeps_a_training_row() -> None:
    held_out_both = 0
    for seed in range(40):
        train, valid = split_spec(_overshadowed(), 0.5, seed)
        assert _labelled_train(train, "b") >= 1, seed
        held_out_both += int(valid.labelled_rows("b").sum() == 1 and _labelled_train(train, "b") == 1)
        Preprocessor.fit(train)  # every task has labelled rows to fit on
    assert held_out_both > 0  # the split does hold out one of b's rows in some seeds


def test_a_task_with_one_labelled_row_has_none_in_validation() -> None:
    frame = pd.DataFrame({"x": np.arange(20.0), "a": np.arange(20.0), "b": np.nan})
    frame.loc[7, "b"] = 3.0
    spec = declare_wide(frame, [Task("a", "regression"), Task("b", "regression")], features=["x"])
    for seed in range(20):
        train, valid = split_spec(spec, 0.9, seed)
        assert list(train.sources["data"].frame.index[train.labelled_rows("b")]) == [7]
        assert not valid.labelled_rows("b").any()
        assert _labelled_train(train, "a") >= 1


def test_long_form_task_with_one_row_stays_in_training() -> None:
    frame = pd.DataFrame({"g": ["p"] * 9 + ["q"], "x": np.arange(10.0), "y": np.arange(10.0)})
    train, valid = split_spec(declare_long(frame, "g", "y"), 0.5, 0)
    assert _labelled_train(train, "q") == 1
    assert not valid.rows_of("q").any()


def test_moving_a_row_back_is_seed_deterministic() -> None:
    spec = _overshadowed(30)
    a = split_spec(spec, 0.7, 11)
    b = split_spec(spec, 0.7, 11)
    for x, y in zip(a, b, strict=True):
        pd.testing.assert_frame_equal(x.sources["data"].frame, y.sources["data"].frame)


@settings(max_examples=40, deadline=None)
@given(
    labels=st.lists(st.tuples(st.booleans(), st.booleans(), st.booleans()), min_size=1, max_size=25),
    fraction=st.floats(0.05, 0.95),
    seed=st.integers(0, 10_000),
)
def test_every_labelled_task_keeps_a_training_row(
    labels: list[tuple[bool, bool, bool]], fraction: float, seed: int
) -> None:
    n = len(labels)
    mask = np.asarray(labels, dtype=bool)
    frame = pd.DataFrame({"x": np.arange(float(n))})
    for j, t in enumerate("abc"):
        frame[t] = np.where(mask[:, j], 1.0, np.nan)
    spec = declare_wide(frame, [Task(t, "regression") for t in "abc"], features=["x"])
    train, valid = split_spec(spec, fraction, seed)
    rows_train, rows_valid = train.sources["data"].frame.index, valid.sources["data"].frame.index
    assert sorted([*rows_train, *rows_valid]) == list(range(n))  # a partition of the rows
    for t in "abc":
        if spec.labelled_rows(t).any():
            assert _labelled_train(train, t) >= 1, t
        if spec.labelled_rows(t).sum() == 1:
            assert not valid.labelled_rows(t).any(), t

"""Errors about one task name it in a form a caller can rewrite with its own task names."""

from __future__ import annotations

import re
from collections.abc import Callable

import numpy as np
import pandas as pd
import pytest

from multitask.errors import DataError
from multitask.linear import L21, DivergedError, IndependentLinear, MultiTaskCV, rename_task_error
from tests.linear._helpers import ESTIMATORS, regression

NAMES = ["math", "reading", "science"]


def raised(fit: Callable[[], object]) -> DataError:
    with pytest.raises(DataError) as info:
        fit()
    return info.value


def no_labels() -> tuple[np.ndarray, np.ndarray]:
    X, Y, _ = regression()
    Y[:, 1] = np.nan
    return X, Y


def three_classes() -> tuple[np.ndarray, np.ndarray]:
    X, Y, _ = regression()
    Y[:, 2] = np.arange(len(Y)) % 3
    return X, Y


@pytest.mark.parametrize("name", list(ESTIMATORS))
def test_task_errors_start_with_the_task_and_its_column(name: str) -> None:
    X, Y = no_labels()
    error = raised(lambda: ESTIMATORS[name]().fit(X, Y))
    assert str(error) == "task 1 (column 1 of y) has no labelled rows"
    X, Y = three_classes()
    error = raised(lambda: ESTIMATORS[name](loss=["squared", "squared", "logistic"]).fit(X, Y))
    assert re.fullmatch(r"task 2 \(column 2 of y\): loss 'logistic' needs two classes, found 3 \(\[0.0, 1.0, 2.0\]\)",
                        str(error))


def test_rename_task_error_writes_the_callers_names() -> None:
    X, Y = no_labels()
    renamed = rename_task_error(raised(lambda: L21().fit(X, Y)), NAMES)
    assert type(renamed) is DataError and str(renamed) == "task 'reading' has no labelled rows"
    X, Y = three_classes()
    error = raised(lambda: MultiTaskCV(L21(loss=["squared", "squared", "logistic"])).fit(X, Y))
    assert str(rename_task_error(error, NAMES)).startswith("task 'science': loss 'logistic' needs two classes")


def test_rename_task_error_keys_on_the_column_not_the_label() -> None:
    X, Y = no_labels()
    frame = pd.DataFrame(Y, columns=["a b", "it's", "c"])
    error = raised(lambda: IndependentLinear().fit(X, frame))
    assert str(error) == '''task "it's" (column 1 of y) has no labelled rows'''
    assert str(rename_task_error(error, NAMES)) == "task 'reading' has no labelled rows"


def test_rename_task_error_leaves_the_rest_alone() -> None:
    error = DataError("task 7 (column 7 of y) has no labelled rows; task 0 (column 0 of y) too")
    assert str(rename_task_error(error, NAMES)) == "task 7 (column 7 of y) has no labelled rows; task 'math' too"
    untouched = DataError("tasks: task 'x' was not seen in fit")
    assert rename_task_error(untouched, NAMES) is untouched
    diverged = DivergedError()
    assert rename_task_error(diverged, NAMES) is diverged

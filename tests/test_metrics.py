"""Metrics against hand computations, delta_m's sign convention, and task declarations."""

from __future__ import annotations

import math

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from multitask.errors import ConfigError
from multitask.evaluate import delta_m, mean_over_tasks
from multitask.metrics import accuracy, auc, explained_variance, f1, macro_f1, mae, micro_f1, r2, recall, rmse
from multitask.tasks import Task, parse_task


def test_regression_metrics_by_hand() -> None:
    y, p = np.array([1.0, 2.0, 3.0, 4.0]), np.array([1.0, 2.0, 4.0, 2.0])
    assert rmse(y, p) == pytest.approx(math.sqrt((0 + 0 + 1 + 4) / 4))
    assert mae(y, p) == pytest.approx(3 / 4)
    assert r2(y, p) == pytest.approx(1 - 5 / 5)
    residual = y - p
    assert explained_variance(y, p) == pytest.approx(1 - residual.var() / y.var())


def test_binary_metrics_by_hand() -> None:
    y = np.array([0, 0, 1, 1, 1])
    p = np.array([0.1, 0.6, 0.4, 0.8, 0.9])  # labels at 0.5: 0 1 0 1 1
    assert accuracy(y, p) == pytest.approx(3 / 5)
    assert recall(y, p) == pytest.approx(2 / 3)
    assert f1(y, p) == pytest.approx(2 * (2 / 3) * (2 / 3) / (4 / 3))
    assert auc(y, p) == pytest.approx(5 / 6)  # 5 of the 6 (positive, negative) pairs are ordered right


def test_auc_with_one_class_is_nan() -> None:
    assert math.isnan(auc(np.array([1, 1, 1]), np.array([0.2, 0.4, 0.9])))


def test_multiclass_and_multilabel_metrics() -> None:
    y = np.array([0, 1, 2, 2])
    p = np.eye(3)[[0, 1, 1, 2]]
    assert accuracy(y, p) == pytest.approx(0.75)
    assert macro_f1(y, p) == pytest.approx(np.mean([1.0, 2 / 3, 2 / 3]))
    ym = np.array([[1, 0], [1, 1], [0, 1]])
    pm = np.array([[0.9, 0.1], [0.2, 0.7], [0.1, 0.8]])  # 3 of the 4 positives found, no false positive
    assert micro_f1(ym, pm) == pytest.approx(2 * 3 / (2 * 3 + 1))


@settings(max_examples=50, deadline=None)
@given(m=st.floats(0.1, 10), b=st.floats(0.1, 10))
def test_delta_m_is_positive_exactly_when_multi_task_is_better(m: float, b: float) -> None:
    lower = Task("t", "regression")  # rmse: lower is better
    higher = Task("t", "binary")  # auc: higher is better
    assert (delta_m([lower], {"t": {"rmse": m}}, {"t": {"rmse": b}}) > 0) == (m < b)
    assert (delta_m([higher], {"t": {"auc": m}}, {"t": {"auc": b}}) > 0) == (m > b)


def test_delta_m_formula() -> None:
    tasks = [Task("a", "regression"), Task("b", "binary")]
    mtl = {"a": {"rmse": 9.0}, "b": {"auc": 0.88}}
    stl = {"a": {"rmse": 10.0}, "b": {"auc": 0.80}}
    assert delta_m(tasks, mtl, stl) == pytest.approx(100 / 2 * (0.1 + 0.1))


def test_delta_m_is_the_mean_over_the_tasks_where_it_is_defined() -> None:
    tasks = [Task("a", "regression"), Task("b", "binary")]
    mtl = {"a": {"rmse": 9.0}, "b": {"auc": 0.9}}
    assert delta_m(tasks, mtl, {"a": {"rmse": 10.0}, "b": {"auc": None}}) == pytest.approx(10.0)
    assert delta_m(tasks[1:], mtl, {"b": {"auc": float("nan")}}) is None


def test_mean_over_tasks_ignores_nan() -> None:
    assert mean_over_tasks({"a": {"auc": 0.8}, "b": {"auc": float("nan")}, "c": {"auc": 0.6}}) == {
        "auc": pytest.approx(0.7)
    }


def test_task_defaults_and_errors() -> None:
    t = parse_task("income:binary")
    assert (t.name, t.kind, t.loss, t.metric, t.higher_is_better) == ("income", "binary", "bce", "auc", True)
    with pytest.raises(ConfigError, match="NAME:KIND"):
        parse_task("score")
    assert not Task("y", "regression").higher_is_better
    assert Task("y", "regression", loss="huber").loss == "huber"
    with pytest.raises(ConfigError, match="unknown task kind 'regresion'"):
        Task("y", "regresion")
    with pytest.raises(ConfigError, match="loss 'ce' does not fit a regression task"):
        Task("y", "regression", loss="ce")
    with pytest.raises(ConfigError, match="unknown metric 'rsme'"):
        Task("y", "regression", metric="rsme")
    with pytest.raises(ConfigError, match="weight must be a finite number >= 0"):
        Task("y", "regression", weight=-1)
    assert Task.from_dict(t.to_dict()) == t

"""The Spark engine: the same fits as in memory, bad input, and ``multitask train/predict --engine spark``.

Every test that runs Spark shares one ``local[2]`` session (module scope; starting one takes seconds) and
the data it fits (module-scope fixtures), on one or two partitions: a Spark job costs about as much on a
hundred rows as on a thousand. The decomposition of the loss into blocks is checked without Spark, for
every formulation and every loss, with and without a working set, over a list of blocks that stands in for
an RDD (:class:`ListRDD`): the same functions run on the executors, and a fit on Spark takes a pass per
evaluation for non-squared losses, so these checks would take minutes on Spark.
"""

from __future__ import annotations

import json
import warnings
from collections.abc import Callable
from dataclasses import dataclass, field
from functools import reduce
from itertools import pairwise
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest

pytest.importorskip("pyspark")
pa = pytest.importorskip("pyarrow")

from multitask.cli import main  # noqa: E402
from multitask.data._spark import NumericEncoder, SparkTable, spark_session  # noqa: E402
from multitask.errors import ConfigError, DataError  # noqa: E402
from multitask.linear._spark import fit_spark  # noqa: E402
from tests.linear._helpers import ESTIMATORS, make  # noqa: E402

NAMES = list(ESTIMATORS)
pytestmark = pytest.mark.filterwarnings("ignore:PySpark does not yet fully support pandas:FutureWarning")
#: small strengths that leave every formulation a non-trivial solution
PARAMS: dict[str, dict[str, Any]] = {"clustered": {"n_clusters": 2}, "graph": {}, "robust": {}}


# ---- data ---------------------------------------------------------------------------------------------------
def long_frame(n_tasks: int = 4, n: int = 240, d: int = 4, seed: int = 0, binary: bool = False) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    X = rng.standard_normal((n, d))
    task = rng.integers(0, n_tasks, n)
    w = rng.standard_normal(d) + 0.3 * rng.standard_normal((n_tasks, d))
    y = np.einsum("ij,ij->i", X, w[task]) + 0.5 * task + 0.3 * rng.standard_normal(n)
    frame = pd.DataFrame(X, columns=[f"x{j}" for j in range(d)])
    frame["task"] = np.array(["a", "b", "c", "d", "e", "f"])[task]
    frame["y"] = (y > np.median(y)).astype(float) if binary else y
    return frame


def wide_frame(n: int = 200, d: int = 4, seed: int = 1) -> pd.DataFrame:
    """Three tasks on shared rows: two regression, one binary; some labels missing."""
    rng = np.random.default_rng(seed)
    X = rng.standard_normal((n, d))
    w = rng.standard_normal(d)
    frame = pd.DataFrame(X, columns=[f"x{j}" for j in range(d)])
    frame["r1"] = X @ w + 0.2 * rng.standard_normal(n)
    frame["r2"] = X @ (w + 0.3) + 0.2 * rng.standard_normal(n)
    frame["c"] = (X @ w + 0.5 * rng.standard_normal(n) > 0).astype(float)
    frame.loc[rng.random(n) < 0.25, "r1"] = np.nan
    frame.loc[rng.random(n) < 0.1, "c"] = np.nan
    return frame


FEATURES = ["x0", "x1", "x2", "x3"]


def sparse_frame(n: int = 150, d: int = 40, loss: str = "squared", seed: int = 2) -> tuple[pd.DataFrame, list[str]]:
    """Long form, three tasks, ``d`` features of which 5 matter (binary targets for classification losses)."""
    rng = np.random.default_rng(seed)
    X = rng.standard_normal((n, d))
    task = rng.integers(0, 3, n)
    W = np.zeros((3, d))
    W[:, :5] = 2.0 * rng.standard_normal((3, 5))
    y = np.einsum("ij,ij->i", X, W[task]) + 0.3 * rng.standard_normal(n)
    features = [f"f{j}" for j in range(d)]
    frame = pd.DataFrame(X, columns=features)
    frame["task"] = np.array(["a", "b", "c"])[task]
    frame["y"] = y if loss == "squared" else (y > 0).astype(float)
    return frame, features


def in_memory(est: Any, frame: pd.DataFrame, targets: list[str] | None = None, features: list[str] = FEATURES) -> Any:
    X = frame[features].to_numpy()
    if targets is None:
        return est.fit(X, frame["y"].to_numpy(), frame["task"].to_numpy())
    return est.fit(X, frame[targets])


def assert_same_fit(a: Any, b: Any) -> None:
    assert b.objective_[-1] == pytest.approx(a.objective_[-1], rel=1e-6)
    np.testing.assert_allclose(b.coef_, a.coef_, atol=1e-5 * max(1.0, float(np.abs(a.coef_).max())))
    np.testing.assert_allclose(b.intercept_, a.intercept_, atol=1e-5 * max(1.0, float(np.abs(a.intercept_).max())))
    assert list(np.asarray(b.tasks_)) == list(np.asarray(a.tasks_))


# ---- the block decomposition, without Spark --------------------------------------------------------------------
@dataclass
class ListRDD:
    """The two RDD operations the backend uses (map, treeAggregate), over a list of blocks."""

    items: list[Any]
    jobs: list[int] = field(default_factory=list)

    def map(self, fn: Callable[[Any], Any]) -> ListRDD:
        return ListRDD([fn(x) for x in self.items], self.jobs)

    def treeAggregate(self, zero: Any, seq: Any, comb: Any, depth: int = 2) -> Any:
        self.jobs.append(1)
        return reduce(comb, self.items, zero)

    def persist(self, level: Any = None) -> ListRDD:
        return self

    def unpersist(self) -> ListRDD:
        return self


def list_table(frame: pd.DataFrame, targets: list[str] | None, n_blocks: int, features: list[str] = FEATURES,
               task_names: list[str] | None = None) -> SparkTable:
    """A table whose blocks are the frame cut into ``n_blocks`` Arrow batches (some of them empty)."""
    if targets is None:
        encoder = NumericEncoder(tuple(features), False, len(features), "y", "task")
    else:
        encoder = NumericEncoder(tuple(features), False, len(features), targets=tuple(targets))
    cuts = np.linspace(0, len(frame), n_blocks + 1).astype(int)
    batches = [pa.RecordBatch.from_pandas(frame.iloc[a:b], preserve_index=False) for a, b in pairwise(cuts)]
    batches.append(pa.RecordBatch.from_pandas(frame.iloc[:0], preserve_index=False))  # an empty block
    table = SparkTable(None, "wide" if targets else "long", list(frame.columns), len(features), encoder, features,
                       "the frame", None, None if targets else "y", None if targets else "task", targets or [],
                       task_names)
    table.blocks = lambda: ListRDD([encoder(b) for b in batches])  # type: ignore[method-assign]
    table.run_job = lambda job: job()  # type: ignore[method-assign]
    table.storage_level = lambda: None  # type: ignore[method-assign]
    return table


@pytest.mark.parametrize("loss", ["squared", "logistic", "squared_hinge"])
@pytest.mark.parametrize("name", NAMES)
def test_blocks_give_the_in_memory_fit(name: str, loss: str) -> None:
    frame = long_frame(binary=loss != "squared")
    a = in_memory(make(name, loss=loss, **PARAMS.get(name, {})), frame)
    b = fit_spark(make(name, loss=loss, **PARAMS.get(name, {})), list_table(frame, None, 5),
                  sufficient_statistics=False)
    assert_same_fit(a, b)


@pytest.mark.parametrize("name", NAMES)
def test_blocks_in_wide_form_with_missing_labels_and_mixed_losses(name: str) -> None:
    frame = wide_frame()
    losses = ["squared", "squared", "logistic"]
    a = in_memory(make(name, loss=losses, tol=1e-6, **PARAMS.get(name, {})), frame, ["r1", "r2", "c"])
    b = fit_spark(make(name, loss=losses, tol=1e-6, **PARAMS.get(name, {})), list_table(frame, ["r1", "r2", "c"], 3))
    assert_same_fit(a, b)


def test_squared_loss_takes_one_pass_over_the_data() -> None:
    frame = long_frame()
    table = list_table(frame, None, 4)
    jobs: list[int] = []
    blocks = table.blocks

    def counted() -> ListRDD:
        rdd = blocks()
        rdd.jobs = jobs
        return rdd

    table.blocks = counted  # type: ignore[method-assign]
    est = fit_spark(make("l21", alpha=0.01), table)
    assert est.spark_passes_ == 1 and len(jobs) == 1
    slow = fit_spark(make("l21", alpha=0.01), table, sufficient_statistics=False)
    assert slow.spark_passes_ > 10 and len(jobs) == slow.spark_passes_ + 1
    assert_same_fit(est, slow)


#: the formulations whose penalty is a sum over features (what a working set applies to), and strengths
#: that leave 5 to 20 of the 40 features of :func:`sparse_frame` nonzero
WORKING_SET: dict[str, dict[str, float]] = {"lasso": {"alpha": 0.05}, "l21": {"alpha": 0.05},
                                            "dirty": {"alpha_sparse": 0.05, "alpha_group": 0.04}}


@pytest.mark.parametrize("loss", ["squared", "logistic", "squared_hinge"])
@pytest.mark.parametrize("name", WORKING_SET)
def test_blocks_with_a_working_set_give_the_in_memory_fit(name: str, loss: str) -> None:
    frame, features = sparse_frame(loss=loss)
    params = {**WORKING_SET[name], "loss": loss, "working_set": True}
    a = in_memory(make(name, **params), frame, features=features)
    # squared loss without sufficient statistics: on Spark, like the other losses
    b = fit_spark(make(name, **params), list_table(frame, None, 4, features), sufficient_statistics=False)
    assert_same_fit(a, b)
    assert a.n_restricted_passes_ > 0
    assert b.spark_restricted_passes_ == b.n_restricted_passes_ > 0  # each restricted evaluation is one job
    assert b.spark_passes_ == b.n_passes_ + 1 < b.spark_restricted_passes_ / 5  # + the statistics pass


@pytest.mark.parametrize("form", ["long", "wide"])
@pytest.mark.parametrize("name", WORKING_SET)
def test_spark_takes_the_in_memory_per_feature_steps(name: str, form: str) -> None:
    # the curvature comes from one job on Spark: the iterates are those of the in-memory fit, not only its optimum
    params = {**WORKING_SET[name], "tol": 1e-8}
    if form == "long":
        frame, features = sparse_frame(loss="logistic")
        losses: Any = "logistic"
        a = in_memory(make(name, loss=losses, **params), frame, features=features)
        table = list_table(frame, None, 4, features)
    else:
        frame, features = wide_frame(), FEATURES
        losses = ["squared", "squared", "logistic"]
        a = in_memory(make(name, loss=losses, **params), frame, ["r1", "r2", "c"])
        table = list_table(frame, ["r1", "r2", "c"], 3)
    b = fit_spark(make(name, loss=losses, **params), table, sufficient_statistics=False)
    assert len(b.objective_) == len(a.objective_)
    np.testing.assert_allclose(b.objective_, a.objective_, rtol=1e-9)
    np.testing.assert_allclose(b.coef_, a.coef_, atol=1e-9)


def test_working_set_restricts_gram_statistics_on_the_driver() -> None:
    # squared-loss tasks through Gram statistics restrict with no job; the logistic task restricts on Spark
    frame, features = sparse_frame(seed=3)
    targets = frame.pivot_table(index=frame.index, columns="task", values="y")
    wide = pd.concat([frame[features], targets], axis=1)
    wide["c"] = (wide["c"] > 0).astype(float).where(wide["c"].notna())
    losses = ["squared", "squared", "logistic"]
    a = in_memory(make("l21", alpha=0.05, loss=losses, working_set=True), wide, ["a", "b", "c"], features)
    b = fit_spark(make("l21", alpha=0.05, loss=losses, working_set=True),
                  list_table(wide, ["a", "b", "c"], 3, features))
    assert_same_fit(a, b)
    assert b.spark_restricted_passes_ > 0
    c = fit_spark(make("l21", alpha=0.05, working_set=True), list_table(frame, None, 3, features))
    assert c.spark_passes_ == 1 and c.spark_restricted_passes_ == 0 < c.n_restricted_passes_
    assert_same_fit(in_memory(make("l21", alpha=0.05, working_set=True), frame, features=features), c)


@pytest.mark.parametrize("form", ["long", "wide"])
def test_working_set_of_squared_loss_beyond_gram_statistics_of_all_features(form: str,
                                                                           monkeypatch: pytest.MonkeyPatch) -> None:
    # too many features for Gram statistics of every column (here: 40 and more), not of a working set's:
    # one job per working set for its Gram statistics, then none
    monkeypatch.setattr("multitask.linear._spark._GRAM_MAX_FEATURES", 40)
    frame, features = sparse_frame()
    targets = None
    if form == "wide":
        frame = pd.concat([frame[features], frame.pivot_table(index=frame.index, columns="task", values="y")], axis=1)
        targets = ["a", "b", "c"]
    a = in_memory(make("l21", alpha=0.2, working_set=True), frame, targets, features)
    b = fit_spark(make("l21", alpha=0.2, working_set=True), list_table(frame, targets, 3, features))
    assert_same_fit(a, b)
    assert 0 < b.spark_restricted_passes_ < b.n_restricted_passes_ / 10
    full = fit_spark(make("l21", alpha=0.2, working_set=False), list_table(frame, targets, 3, features))
    assert full.spark_passes_ == full.n_passes_ + 1 > 10 * b.spark_passes_


def test_auto_working_set_from_500_features() -> None:
    frame, features = sparse_frame(n=120, d=500, loss="logistic")
    a = in_memory(make("l21", alpha=0.05, loss="logistic", tol=1e-6), frame, features=features)
    b = fit_spark(make("l21", alpha=0.05, loss="logistic", tol=1e-6), list_table(frame, None, 2, features))
    assert_same_fit(a, b)
    assert a.n_restricted_passes_ > 0 and b.spark_restricted_passes_ > 0
    small, small_features = sparse_frame(d=40, loss="logistic")
    c = fit_spark(make("l21", alpha=0.05, loss="logistic", tol=1e-6), list_table(small, None, 2, small_features))
    assert c.spark_restricted_passes_ == 0


# ---- errors name the task ---------------------------------------------------------------------------------------
def test_errors_name_the_task_not_its_index() -> None:
    # the command line's encoder gives each row's task as an index of the run's tasks: messages use names
    frame = long_frame(n_tasks=3)
    frame["task"] = frame["task"].map({"a": 0, "b": 1, "c": 2})
    frame.loc[frame.index[frame["task"] == 1][0], "y"] = np.inf
    table = list_table(frame, None, 2, task_names=["north", "south", "west"])
    with pytest.raises(DataError, match=r"task 'south' \(column 'y'\): the target is infinite in 1 rows"):
        fit_spark(make("lasso"), table)
    frame = long_frame(n_tasks=3, binary=True)
    frame["task"] = frame["task"].map({"a": 0, "b": 1, "c": 2})
    frame.loc[frame["task"] == 2, "y"] = np.arange((frame["task"] == 2).sum()) % 3
    with pytest.raises(DataError, match=r"task 'west' \(column 'y'\): loss 'logistic' needs two classes"):
        fit_spark(make("lasso", loss="logistic"), list_table(frame, None, 2, task_names=["north", "south", "west"]))
    fitted = fit_spark(make("lasso", loss={"north": "squared", "south": "squared", "west": "squared"}),
                       list_table(long_frame(n_tasks=3).assign(task=lambda f: f["task"].map({"a": 0, "b": 1, "c": 2})),
                                  None, 2, task_names=["north", "south", "west"]))
    assert list(fitted.tasks_) == ["north", "south", "west"]  # a loss per task name, fitted tasks by name
    wide = wide_frame()
    wide.loc[4, "c"] = 2.0
    with pytest.raises(DataError, match=r"task 'c' \(column 'c'\): loss 'logistic' needs two classes"):
        fit_spark(make("lasso", loss=["squared", "squared", "logistic"]), list_table(wide, ["r1", "r2", "c"], 2))


# ---- on Spark ---------------------------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def spark() -> Any:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        session = spark_session("local[2]")
    session.conf.set("spark.sql.shuffle.partitions", "2")
    session.conf.set("spark.sql.execution.arrow.maxRecordsPerBatch", "64")
    yield session
    session.stop()


def spark_frame(spark: Any, frame: pd.DataFrame, partitions: int = 3) -> Any:
    """The frame as a Spark DataFrame in ``partitions`` partitions (rows in order, no pandas conversion)."""
    rows = [tuple(None if isinstance(v, float) and np.isnan(v) else v for v in r)
            for r in frame.itertuples(index=False, name=None)]
    schema = ", ".join(f"{c} {'double' if pd.api.types.is_numeric_dtype(frame[c]) else 'string'}" for c in frame.columns)
    return spark.createDataFrame(rows, schema).coalesce(partitions)


@pytest.fixture(scope="module")
def long_data(spark: Any) -> tuple[pd.DataFrame, SparkTable]:
    """:func:`long_frame` in memory and as a Spark table of two partitions."""
    frame = long_frame()
    return frame, SparkTable.long(spark_frame(spark, frame, 2), FEATURES, "y", "task", spark=spark)


@pytest.mark.parametrize("name", NAMES)
def test_squared_loss_on_spark_matches_memory(long_data: tuple[pd.DataFrame, SparkTable], name: str) -> None:
    frame, table = long_data
    a = in_memory(make(name, **PARAMS.get(name, {})), frame)
    b = fit_spark(make(name, **PARAMS.get(name, {})), table)
    assert_same_fit(a, b)
    assert b.spark_passes_ == 1


def vector_frame(spark: Any, frame: pd.DataFrame, features: list[str], partitions: int = 2) -> Any:
    """The frame with its features as one array column ``features`` (cheaper than hundreds of columns)."""
    rows = [(x.tolist(), t, y) for x, t, y in zip(frame[features].to_numpy(), frame["task"], frame["y"], strict=True)]
    return spark.createDataFrame(rows, "features array<double>, task string, y double").coalesce(partitions)


def persisted(spark: Any) -> int:
    return int(spark.sparkContext._jsc.getPersistentRDDs().size())


def test_classification_losses_with_a_working_set_on_spark_match_memory(spark: Any) -> None:
    # a pass per loss evaluation: full passes between working sets, restricted passes (jobs on the working
    # set's columns, persisted once per working set and dropped after) in the inner solves. A strong penalty
    # and tol=1e-2 keep the fit to about 30 passes (the iterates are those of the in-memory fit, so the
    # solutions agree at any tolerance); test_wide_form_with_missing_labels_on_spark fits without one.
    frame, features = sparse_frame(loss="logistic")
    table = SparkTable.long(vector_frame(spark, frame, features), "features", "y", "task", spark=spark)
    loss = {"a": "logistic", "b": "squared_hinge", "c": "logistic"}
    params = {"alpha": 0.2, "loss": loss, "tol": 1e-2, "working_set": True}
    a = in_memory(make("lasso", **params), frame, features=features)
    before = persisted(spark)
    b = fit_spark(make("lasso", **params), table)
    assert_same_fit(a, b)
    assert b.spark_restricted_passes_ > b.spark_passes_ > 1
    assert persisted(spark) == before


def test_auto_working_set_on_spark_with_sufficient_statistics(spark: Any) -> None:
    # squared loss on 500 features: "auto" turns the working set on, restricted on the driver, one pass
    frame, features = sparse_frame(n=200, d=500)
    table = SparkTable.long(vector_frame(spark, frame, features), "features", "y", "task", spark=spark)
    a = in_memory(make("l21", alpha=0.05), frame, features=features)
    b = fit_spark(make("l21", alpha=0.05), table)
    assert_same_fit(a, b)
    assert b.spark_passes_ == 1 and b.spark_restricted_passes_ == 0 < b.n_restricted_passes_


def test_wide_form_with_missing_labels_on_spark(spark: Any) -> None:
    frame = wide_frame()
    losses = ["squared", "squared", "logistic"]
    table = SparkTable.wide(spark_frame(spark, frame, 2), FEATURES, ["r1", "r2", "c"], spark=spark)
    a = in_memory(make("mtrl", loss=losses, alpha=1.0, beta=1.0, tol=1e-3), frame, ["r1", "r2", "c"])
    b = fit_spark(make("mtrl", loss=losses, alpha=1.0, beta=1.0, tol=1e-3), table)
    assert_same_fit(a, b)
    assert b.spark_passes_ > 1 and b.spark_restricted_passes_ == 0  # a pass per evaluation of the logistic task


def test_task_in_some_partitions_and_empty_partitions(spark: Any) -> None:
    frame = long_frame().sort_values("task", kind="stable")  # each task in one or two partitions only
    df = spark_frame(spark, frame, 4).union(spark_frame(spark, frame.iloc[:0], 1))
    table = SparkTable.long(df.repartitionByRange(6, "task"), FEATURES, "y", "task", spark=spark)
    assert table.frame.rdd.glom().map(len).collect().count(0) >= 1  # an empty partition
    a = in_memory(make("dirty"), frame)
    b = fit_spark(make("dirty"), table)
    assert_same_fit(a, b)


def test_vector_column_and_parquet_path(spark: Any, tmp_path: Path) -> None:
    from pyspark.ml.feature import VectorAssembler

    frame = long_frame()
    df = VectorAssembler(inputCols=FEATURES, outputCol="features").transform(spark_frame(spark, frame))
    a = in_memory(make("lasso", alpha=0.01), frame)
    b = fit_spark(make("lasso", alpha=0.01), SparkTable.long(df, "features", "y", "task", spark=spark))
    assert_same_fit(a, b)
    frame.to_parquet(tmp_path / "data.parquet")
    c = fit_spark(make("lasso", alpha=0.01), SparkTable.long(str(tmp_path / "data.parquet"), FEATURES, "y", "task",
                                                             spark=spark))
    assert_same_fit(a, c)


# ---- bad input --------------------------------------------------------------------------------------------------
def test_missing_column_is_named(spark: Any) -> None:
    df = spark_frame(spark, long_frame())
    with pytest.raises(DataError, match="no column 'x9' \\(a feature\\)"):
        SparkTable.long(df, ["x0", "x9"], "y", "task", spark=spark)
    with pytest.raises(DataError, match="no column 'group' \\(the task column\\)"):
        SparkTable.long(df, FEATURES, "y", "group", spark=spark)


def test_null_task_id_is_an_error(spark: Any) -> None:
    frame = long_frame()
    frame.loc[7, "task"] = None
    table = SparkTable.long(spark_frame(spark, frame), FEATURES, "y", "task", spark=spark)
    with pytest.raises(DataError, match="column 'task' \\(task id\\) is null in 1 rows"):
        fit_spark(make("lasso"), table)


def test_parquet_files_with_different_schemas(spark: Any, tmp_path: Path) -> None:
    folder = tmp_path / "parts"
    folder.mkdir()
    frame = long_frame()
    frame.iloc[:100].to_parquet(folder / "part-0.parquet")
    bad = frame.iloc[100:].copy()
    bad["x1"] = bad["x1"].astype(str)
    bad.to_parquet(folder / "part-1.parquet")
    with pytest.raises(DataError, match=r"part-1.parquet: column 'x1' is (large_)?string here but double in .*part-0.parquet"):
        SparkTable.long(str(folder), FEATURES, "y", "task", spark=spark)


def test_corrupted_parquet_file_is_named(spark: Any, tmp_path: Path) -> None:
    path = tmp_path / "data.parquet"
    path.write_bytes(b"PAR1 this is not parquet")
    with pytest.raises(DataError, match=r"data.parquet: not a readable Parquet file"):
        SparkTable.long(str(path), FEATURES, "y", "task", spark=spark)


def test_corrupted_row_group_is_named(spark: Any, tmp_path: Path) -> None:
    import pyarrow.parquet as pq

    path = tmp_path / "data.parquet"
    long_frame(n=2000).to_parquet(path, row_group_size=500)
    chunk = pq.ParquetFile(path).metadata.row_group(2).column(1)
    raw = bytearray(path.read_bytes())
    raw[chunk.data_page_offset:chunk.data_page_offset + 64] = b"\xff" * 64  # a page header of row group 2
    path.write_bytes(bytes(raw))
    table = SparkTable.long(str(path), FEATURES, "y", "task", spark=spark)  # the footer is intact
    with pytest.raises(DataError, match=r"data.parquet: row group 2 is corrupted"):
        fit_spark(make("lasso"), table)


# ---- the command line ---------------------------------------------------------------------------------------------
def run_cli(*args: str) -> int:
    return main([str(a) for a in args])


def test_cli_train_on_spark_predicts_in_memory_and_the_reverse(spark: Any, tmp_path: Path) -> None:
    frame = long_frame()
    frame["kind"] = np.where(frame["x0"] > 0, "hi", "lo")  # a string feature, one-hot encoded
    data = tmp_path / "data.parquet"
    frame.to_parquet(data)
    common = ["--data", data, "--task-column", "task", "--target", "y", "--model", "linear:l21",
              "--model-option", "alpha=0.001"]
    assert run_cli("train", *common, "--engine", "spark", "--out", tmp_path / "spark") == 0
    assert run_cli("train", *common, "--valid-fraction", "0.01", "--out", tmp_path / "memory") == 0
    spark_pre = json.loads((tmp_path / "spark" / "preprocessing.json").read_text())
    memory_pre = json.loads((tmp_path / "memory" / "preprocessing.json").read_text())
    assert spark_pre["sources"]["data"]["columns"][-1] == memory_pre["sources"]["data"]["columns"][-1]
    fit = json.loads((tmp_path / "spark" / "metrics.json").read_text())["fit"]
    assert fit["passes"] == 1
    # the Spark-trained run predicts in memory, and both runs predict on Spark (Parquet)
    assert run_cli("predict", "--run", tmp_path / "spark", "--data", data, "--output", tmp_path / "p.csv") == 0
    assert run_cli("predict", "--run", tmp_path / "spark", "--data", data, "--output", tmp_path / "p.parquet",
                   "--engine", "spark") == 0
    assert run_cli("predict", "--run", tmp_path / "memory", "--data", data, "--output", tmp_path / "q.parquet",
                   "--engine", "spark") == 0
    assert run_cli("predict", "--run", tmp_path / "memory", "--data", data, "--output", tmp_path / "q.csv") == 0
    on_memory = pd.read_csv(tmp_path / "p.csv")
    on_spark = pd.read_parquet(tmp_path / "p.parquet")
    assert list(on_spark.columns) == list(on_memory.columns) == ["task", "prediction"]
    np.testing.assert_allclose(on_spark["prediction"], on_memory["prediction"], rtol=1e-5)
    np.testing.assert_allclose(pd.read_parquet(tmp_path / "q.parquet")["prediction"],
                               pd.read_csv(tmp_path / "q.csv")["prediction"], rtol=1e-5)


def test_cli_wide_form_on_spark(spark: Any, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    frame = wide_frame()
    data = tmp_path / "wide.csv"
    frame.to_csv(data, index=False)
    assert run_cli("train", "--data", data, "--task", "r1:regression", "--task", "c:binary", "--features",
                   ",".join(FEATURES), "--model", "linear:independent", "--model-option", "alpha=1.0",
                   "--model-option", "tol=0.001", "--engine", "spark", "--out", tmp_path / "run") == 0
    assert run_cli("predict", "--run", tmp_path / "run", "--data", data, "--output", tmp_path / "w.parquet",
                   "--engine", "spark") == 0
    assert run_cli("predict", "--run", tmp_path / "run", "--data", data, "--output", tmp_path / "w.csv") == 0
    on_spark, on_memory = pd.read_parquet(tmp_path / "w.parquet"), pd.read_csv(tmp_path / "w.csv")
    assert list(on_spark.columns) == ["r1", "c"]
    np.testing.assert_allclose(on_spark.to_numpy(), on_memory.to_numpy(), rtol=1e-5)
    # an error raised on an executor names the file and the column
    frame.loc[5, "x2"] = np.nan
    frame.to_csv(tmp_path / "holes.csv", index=False)
    assert run_cli("predict", "--run", tmp_path / "run", "--data", tmp_path / "holes.csv", "--output",
                   tmp_path / "h.parquet", "--engine", "spark") == 2
    assert f"{tmp_path / 'holes.csv'}: feature column 'x2' is null, NaN or infinite in 1 rows" in capsys.readouterr().err


def test_cli_bad_input_exits_2_and_writes_nothing(spark: Any, tmp_path: Path,
                                                   capsys: pytest.CaptureFixture[str]) -> None:
    frame = long_frame()
    frame.loc[3, "task"] = None
    data = tmp_path / "nulls.parquet"
    frame.to_parquet(data)
    out = tmp_path / "run"
    assert run_cli("train", "--data", data, "--task-column", "task", "--target", "y", "--model", "linear:lasso",
                   "--engine", "spark", "--out", out) == 2
    err = capsys.readouterr().err
    assert err.startswith("multitask: error: ") and "'task' (task id) is null" in err and "Traceback" not in err
    assert not out.exists() or not any(out.iterdir())
    long_frame().to_parquet(data)
    assert run_cli("train", "--data", data, "--task-column", "task", "--target", "y", "--model", "linear:lasso",
                   "--engine", "spark", "--features", "x0,nope", "--out", out) == 2
    assert "no column 'nope'" in capsys.readouterr().err
    assert not out.exists() or not any(out.iterdir())
    # tasks are named, with their target column, not numbered
    frame = long_frame()
    frame.loc[frame.index[frame["task"] == "c"][:2], "y"] = np.inf
    frame.to_parquet(data)
    assert run_cli("train", "--data", data, "--task-column", "task", "--target", "y", "--model", "linear:lasso",
                   "--engine", "spark", "--out", out) == 2
    assert "task 'c' (regression): column 'y' is infinite in 2 rows" in capsys.readouterr().err
    assert not out.exists() or not any(out.iterdir())


def test_deep_models_are_refused_on_spark(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    from multitask.config import RunConfig

    with pytest.raises(ConfigError, match=r"engine.*spark trains linear models"):
        RunConfig(data="x.parquet", tasks=["y:regression"], model="hard-sharing", engine="spark")
    assert run_cli("train", "--data", tmp_path / "x.csv", "--task", "y:regression", "--engine", "spark",
                   "--out", tmp_path / "o") == 2
    assert "--engine: spark trains linear models" in capsys.readouterr().err


def test_other_verbs_do_not_train_in_memory_what_asks_for_spark(tmp_path: Path) -> None:
    from multitask.config import RunConfig
    from multitask.runs import train

    cfg = RunConfig(data=str(tmp_path / "x.csv"), tasks=["y:regression"], model="linear:lasso", engine="spark",
                    out=str(tmp_path / "run"))
    with pytest.raises(ConfigError, match="only `multitask train` fits on Spark"):
        train(cfg)
    assert not (tmp_path / "run").exists()


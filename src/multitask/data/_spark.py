"""Tables on Apache Spark: reading (a DataFrame, or a Parquet / CSV path), checks, and blocks of NumPy rows.

A :class:`SparkTable` is a Spark DataFrame with the roles of its columns: features (numeric columns, or one
vector / array column), and a target plus a task column (long form) or one target column per task (wide
form). :meth:`SparkTable.blocks` turns it, partition by partition, into blocks of a few thousand rows as
NumPy arrays (through Arrow, never row by row); an ``encoder`` decides how columns become numbers.

Bad input is a :class:`~multitask.errors.DataError` naming the file, column or row group: a column that is
not there, a Parquet folder whose files disagree on the schema, a file that is not Parquet, a row group that
cannot be decoded (found with pyarrow after Spark fails on it, for local paths).
"""

from __future__ import annotations

import os
import pickle
import re
import sys
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TypeVar

import numpy as np

from multitask.errors import DataError, MissingExtraError

Block = dict[str, Any]
T = TypeVar("T")
DEFAULT_MASTER = "local[2]"


def require_spark() -> None:
    """MissingExtraError naming the extra unless pyspark can be imported."""
    try:
        import pyspark  # noqa: F401
    except ImportError:
        raise MissingExtraError("the Spark engine needs pyspark: pip install 'multitask[spark]'") from None


def spark_session(master: str | None = None) -> Any:
    """The active Spark session, or a new one on ``master`` (default ``local[2]``), with its UI off.

    Under ``spark-submit`` (and no ``master``), the session it configured. With a local master the Python
    workers run this interpreter and see this copy of ``multitask``; on a cluster, ship it with
    ``spark-submit --py-files`` or install it on the executors (docs/spark.md).
    """
    require_spark()
    from pyspark.sql import SparkSession

    active = SparkSession.getActiveSession()
    if active is not None and (master is None or active.sparkContext.master == master):
        return active
    if master is None and "PYSPARK_GATEWAY_PORT" in os.environ:  # under spark-submit: its master and settings
        return SparkSession.builder.appName("multitask").getOrCreate()
    master = master or DEFAULT_MASTER
    builder = (SparkSession.builder.master(master).appName("multitask")
               .config("spark.ui.enabled", "false").config("spark.ui.showConsoleProgress", "false")
               .config("spark.sql.shuffle.partitions", "8"))
    if master.startswith("local"):
        root = str(Path(__file__).resolve().parents[2])
        paths = os.environ.get("PYTHONPATH", "").split(os.pathsep)
        if root not in paths:
            os.environ["PYTHONPATH"] = os.pathsep.join([root, *[p for p in paths if p]])
        os.environ.setdefault("PYSPARK_PYTHON", sys.executable)
    session = builder.getOrCreate()
    session.sparkContext.setLogLevel("ERROR")  # failures reach the user as one DataError, not as log lines
    return session


# ---- reading and checking -----------------------------------------------------------------------------------
def _data_files(path: Path) -> list[Path]:
    if path.is_file():
        return [path]
    return sorted(p for p in path.rglob("*") if p.is_file()
                  and not any(part.startswith(("_", ".")) for part in p.relative_to(path).parts))


def check_parquet(path: str) -> None:
    """Every file of a local Parquet path readable, with one schema: else a DataError naming the file."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    files = _data_files(Path(path))
    if not files:
        raise DataError(f"{path}: no Parquet files")
    first: tuple[Path, Any] | None = None
    for f in files:
        try:
            schema = pq.read_schema(f)
        except (pa.ArrowException, OSError) as e:
            raise DataError(f"{f}: not a readable Parquet file ({str(e).splitlines()[0]})") from None
        if first is None:
            first = (f, schema)
            continue
        ref_file, ref = first
        for name in ref.names:
            if name not in schema.names:
                raise DataError(f"{f}: no column {name!r}, which {ref_file} has (the files of {path} must share "
                                "one schema)")
            if schema.field(name).type != ref.field(name).type:
                raise DataError(f"{f}: column {name!r} is {schema.field(name).type} here but "
                                f"{ref.field(name).type} in {ref_file} (the files of {path} must share one schema)")
        extra = [n for n in schema.names if n not in ref.names]
        if extra:
            raise DataError(f"{f}: column {extra[0]!r} is not in {ref_file} (the files of {path} must share one schema)")


def _bad_row_group(path: str) -> str | None:
    """The first row group of a local Parquet path that pyarrow cannot decode, as ``FILE: row group K (why)``."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    if not Path(path).exists():
        return None
    for f in _data_files(Path(path)):
        try:
            pf = pq.ParquetFile(f)
        except (pa.ArrowException, OSError) as e:
            return f"{f}: not a readable Parquet file ({str(e).splitlines()[0]})"
        for k in range(pf.num_row_groups):
            try:
                pf.read_row_group(k)
            except (pa.ArrowException, OSError) as e:
                return f"{f}: row group {k} is corrupted ({str(e).splitlines()[0]})"
    return None


_OUR_ERROR = re.compile(r"multitask\.errors\.(?:DataError|ConfigError): (.+)")
_FILE = re.compile(r"(file:[^\s,'\"]+|/[^\s,'\"]+\.(?:parquet|csv))")


def spark_failure(error: BaseException, where: str, path: str | None) -> DataError:
    """A failed Spark job as one DataError: our own error raised on an executor, or what the data did wrong."""
    text = str(error)
    ours = _OUR_ERROR.search(text)
    if ours:  # raised by our code on an executor: about a column or a task, in this data
        message = ours.group(1).strip()
        return DataError(message if message.startswith(where) else f"{where}: {message}")
    if (path is not None and path.endswith(".parquet")) or (path is not None and Path(path).is_dir()):
        found = _bad_row_group(path)
        if found:
            return DataError(found)
    lines = [line.strip() for line in text.splitlines() if line.strip()]
    reason = next((line for line in lines if "Exception" in line or "Error" in line), lines[0] if lines else "")
    file = _FILE.search(text)
    at = f" ({file.group(1)})" if file else ""
    return DataError(f"{where}{at}: Spark could not read the data: {reason[:300]}")


def read_frame(spark: Any, source: Any, sep: str | None = None) -> tuple[Any, str, str | None]:
    """``(DataFrame, where, path)`` from a DataFrame, or a Parquet / CSV path (its files checked first)."""
    if not isinstance(source, str | Path):
        return source, "the DataFrame", None
    path = str(source)
    local = Path(path)
    if "://" not in path and not local.exists():
        raise DataError(f"{path}: no such file or folder")
    parquet = path.endswith(".parquet") or (local.is_dir() and any(f.suffix == ".parquet" for f in _data_files(local)))
    try:
        if parquet:
            if local.exists():
                check_parquet(path)
            frame = spark.read.parquet(path)
        elif path.endswith((".csv", ".tsv", ".txt")) or local.is_dir():
            frame = spark.read.csv(path, header=True, inferSchema=True, sep=sep or ("\t" if path.endswith(".tsv") else ","))
        else:
            raise DataError(f"{path}: the Spark engine reads Parquet (.parquet) or CSV (.csv) files")
    except DataError:
        raise
    except Exception as e:
        raise spark_failure(e, path, path) from None
    return frame, path, path


def check_columns(frame: Any, columns: Sequence[str], where: str, role: str) -> None:
    """DataError naming the first of ``columns`` that ``frame`` lacks."""
    for c in columns:
        if c not in frame.columns:
            raise DataError(f"{where}: no column {c!r} ({role}); columns: {', '.join(frame.columns[:20])}")


# ---- blocks of NumPy rows ---------------------------------------------------------------------------------
def floats(column: Any) -> np.ndarray:
    """An Arrow column as float64, null → NaN."""
    import pyarrow as pa
    import pyarrow.compute as pc

    return np.asarray(pc.cast(column, pa.float64()).to_numpy(zero_copy_only=False), dtype=np.float64)


def labels(column: Any) -> tuple[np.ndarray, np.ndarray]:
    """An Arrow column's values as NumPy (strings as objects) and where they are not null."""
    valid = ~np.asarray(column.is_null().to_numpy(zero_copy_only=False), dtype=bool)
    values = np.asarray(column.to_numpy(zero_copy_only=False))
    if not valid.all():
        values = values.astype(object)
        values[~valid] = None
    return values, valid


@dataclass(frozen=True)
class NumericEncoder:
    """Blocks from numeric feature columns (or one array column of ``width``), targets as they are."""

    features: tuple[str, ...]
    vector: bool
    width: int
    target: str | None = None
    task_column: str | None = None
    targets: tuple[str, ...] = ()

    def features_of(self, batch: Any) -> np.ndarray:
        n = batch.num_rows
        if self.vector:
            column = batch.column(self.features[0])
            if column.null_count:
                raise DataError(f"feature column {self.features[0]!r} is null in {column.null_count} rows")
            values = floats(column.flatten())
            if len(values) != n * self.width:
                raise DataError(f"feature column {self.features[0]!r}: vectors of different lengths "
                                f"(expected {self.width})")
            return values.reshape(n, self.width)
        if not self.features:
            return np.zeros((n, 0))
        return np.column_stack([floats(batch.column(c)) for c in self.features])

    def __call__(self, batch: Any) -> Block:
        X = self.features_of(batch)
        if self.task_column is None:
            return {"X": X, "Y": np.column_stack([floats(batch.column(c)) for c in self.targets])
                    if self.targets else np.zeros((len(X), 0))}
        task, valid = labels(batch.column(self.task_column))
        assert self.target is not None
        return {"X": X, "y": floats(batch.column(self.target)), "task": task, "task_valid": valid}


@dataclass
class SparkTable:
    """A Spark DataFrame and the roles of its columns; see :func:`SparkTable.long` and :func:`SparkTable.wide`.

    ``encoder`` turns an Arrow batch of ``columns`` into a block: ``X`` (n, width) and, in long form, ``y``,
    ``task`` and ``task_valid``; in wide form ``Y`` (n, T) with NaN for a missing label. ``task_names``: in
    long form, when the encoder gives each row's task as an index (0, 1, ...), the tasks' names in that order
    (what fitted models and messages call them).
    """

    frame: Any
    form: str  # "long" | "wide"
    columns: list[str]
    width: int
    encoder: Callable[[Any], Block]
    feature_names: list[str]
    where: str = "the DataFrame"
    path: str | None = None
    target: str | None = None
    task_column: str | None = None
    targets: list[str] = field(default_factory=list)
    task_names: list[str] | None = None

    @classmethod
    def long(cls, source: Any, features: Sequence[str] | str, target: str, task_column: str, *,
             spark: Any = None, sep: str | None = None) -> SparkTable:
        """Long form: each row's task in ``task_column``, its target in ``target`` (null: unlabelled)."""
        return cls._make(source, features, spark, sep, target=target, task_column=task_column)

    @classmethod
    def wide(cls, source: Any, features: Sequence[str] | str, targets: Sequence[str], *, spark: Any = None,
             sep: str | None = None) -> SparkTable:
        """Wide form: one target column per task (null or NaN: a missing label); tasks named by the columns."""
        return cls._make(source, features, spark, sep, targets=list(targets))

    @classmethod
    def _make(cls, source: Any, features: Sequence[str] | str, spark: Any, sep: str | None, *,
              target: str | None = None, task_column: str | None = None, targets: Sequence[str] = ()) -> SparkTable:
        require_spark()
        from pyspark.sql import functions as F

        spark = spark if spark is not None else spark_session()
        frame, where, path = read_frame(spark, source, sep)
        names = [features] if isinstance(features, str) else list(features)
        check_columns(frame, names, where, "a feature")
        if task_column is not None:
            check_columns(frame, [task_column], where, "the task column")
            check_columns(frame, [str(target)], where, "the target")
        check_columns(frame, list(targets), where, "a task's target")
        vector = isinstance(features, str)
        width = len(names)
        selected = [F.col(c) for c in names]
        if vector:
            from pyspark.ml.functions import vector_to_array
            from pyspark.ml.linalg import VectorUDT

            if isinstance(frame.schema[names[0]].dataType, VectorUDT):
                selected = [vector_to_array(F.col(names[0])).alias(names[0])]
            first = frame.select(F.size(selected[0]).alias("n")).first()
            width = int(first["n"]) if first is not None else 0
        extra = [F.col(c) for c in [target, task_column, *targets] if c is not None]
        frame = frame.select(*selected, *extra)
        encoder = NumericEncoder(tuple(names), vector, width, target, task_column, tuple(targets))
        feature_names = [f"{features}[{j}]" for j in range(width)] if vector else names
        return cls(frame, "long" if task_column is not None else "wide", frame.columns, width, encoder,
                   feature_names, where, path, target, task_column, list(targets))

    def feature_name(self, j: int) -> str:
        return self.feature_names[j] if j < len(self.feature_names) else f"feature {j}"

    def blocks(self) -> Any:
        """An RDD of blocks (dicts of NumPy arrays), one per Arrow batch of each partition."""
        encode = self.encoder

        def pack(batches: Iterator[Any]) -> Iterator[Any]:
            import pyarrow as pa

            for batch in batches:
                yield pa.RecordBatch.from_pydict({"block": [pickle.dumps(encode(batch), protocol=5)]})

        packed = self.frame.mapInArrow(pack, "block binary")
        return packed.rdd.map(lambda row: pickle.loads(row[0]))

    def run_job(self, job: Callable[[], T]) -> T:
        """Run a Spark job; its failure becomes a DataError naming the file, column or row group."""
        from py4j.protocol import Py4JJavaError
        from pyspark.errors import PySparkException

        try:
            return job()
        except (Py4JJavaError, PySparkException) as e:
            raise spark_failure(e, self.where, self.path) from None

    @staticmethod
    def storage_level() -> Any:
        from pyspark import StorageLevel

        return StorageLevel.MEMORY_AND_DISK

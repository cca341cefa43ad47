"""The model-family interface: what the run verbs, baselines, search, compare and ``--model auto`` talk to.

A family (deep, linear, GBDT, ...) is one class following :class:`Model`. Nothing outside ``multitask.models``
branches on which family a model belongs to.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, ClassVar, Protocol

import numpy as np

from multitask.data.arrays import Arrays
from multitask.data.preprocess import Preprocessor
from multitask.errors import DataError
from multitask.tasks import Task

if TYPE_CHECKING:
    from typing import Self

    from multitask.config import RunConfig

#: ``{task: prediction on every row of the task's source}``: the value (regression, standardized units),
#: the positive-class probability (binary), class or label probabilities ``(n, k)`` (multiclass, multilabel)
Predictions = dict[str, np.ndarray]


def name_tasks(error: DataError, tasks: Sequence[Task]) -> DataError:
    """``error`` with the estimators' "task j (column j of y)" replaced by the user's task name."""

    def name(match: re.Match[str]) -> str:
        j = int(match.group(1))
        return f"task {tasks[j].name!r}" if j < len(tasks) else match.group(0)

    return DataError(re.sub(r"task (\d+) \(column \d+ of y\)", name, str(error)))


def _same(value: Any) -> Any:
    return value


@dataclass(frozen=True)
class Param:
    """One searched option: its place in the run configuration and its range.

    ``path`` is ``"model_options.NAME"`` or ``"train.NAME"``; a numeric range is ``low``..``high`` (``log``:
    sampled on a log scale, ``integer``: whole numbers); ``choices`` lists the values of a categorical option.
    ``decode`` maps the sampled value to the option's value (e.g. a width and a depth to layer sizes).
    """

    path: str
    low: float | None = None
    high: float | None = None
    log: bool = False
    integer: bool = False
    choices: tuple[Any, ...] | None = None
    decode: Callable[[Any], Any] = field(default=_same, compare=False)


class Model(Protocol):
    """A multi-task model of one family.

    ``from_config`` only reads options (the scikit-learn contract: no work before ``fit``); ``fit`` returns
    the model; ``save``/``load`` need no pickle. ``uses_validation`` says whether ``fit`` learns anything
    from ``valid`` (early stopping, tuning): when it does not and a test part exists, the run gives the
    validation rows to training instead of wasting them.
    """

    family: ClassVar[str]
    uses_validation: ClassVar[bool]

    @classmethod
    def from_config(cls, cfg: RunConfig) -> Self: ...

    def check(self, tasks: Sequence[Task], pre: Preprocessor) -> None:
        """Raise ConfigError naming the task, kind or source that this model cannot fit."""

    def fit(
        self,
        tasks: Sequence[Task],
        pre: Preprocessor,
        train: Arrays,
        valid: Arrays,
        run_dir: Path | None = None,
        *,
        resume: bool = False,
    ) -> Self: ...

    def predict(self, data: Arrays) -> Predictions: ...

    def save(self, run_dir: Path) -> None: ...

    @classmethod
    def load(cls, name: str, run_dir: Path, tasks: Sequence[Task], pre: Preprocessor) -> Self: ...

    @classmethod
    def search_space(cls, name: str, tasks: Sequence[Task]) -> list[Param]: ...

    @classmethod
    def pooled(cls, name: str) -> str:
        """The name of this family's pooled model (all parameters shared but a per-task intercept)."""
        ...

"""The deep family: an architecture from :data:`multitask.registry.MODELS` trained by :func:`multitask.train.fit`.

Files in the run directory: ``model.json`` (the architecture and its arguments) and ``model.pt`` (the best
weights), written by the trainer, plus ``checkpoint.pt`` and ``log.jsonl`` while training.
"""

from __future__ import annotations

import inspect
import json
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any, ClassVar

import numpy as np
import torch
from torch import nn

from multitask.data.arrays import Arrays
from multitask.data.preprocess import Preprocessor
from multitask.errors import CheckpointError, ConfigError
from multitask.models._base import Param, Predictions
from multitask.registry import BALANCERS, MODELS
from multitask.tasks import Task
from multitask.train import (
    MODEL_CONFIG_FILE,
    MODEL_FILE,
    TrainConfig,
    fit,
    is_main_process,
    load_model,
    save_model,
)
from multitask.train._checkpoint import atomic_write_bytes

if TYPE_CHECKING:
    from typing import Self

    from multitask.config import RunConfig


#: where a learned-branching model's tree goes in its run directory
LEARNED_TREE_FILE = "learned_tree.json"

#: a search offers gradient-based balancing methods only up to this many tasks
MAX_GRADIENT_TASKS = 10
#: ``model_options`` read by the family itself (how categorical features reach the network), not passed on
#: to the architecture: ``categorical`` (``onehot``: the one-hot columns as they are; ``embedding``: each
#: categorical column embedded, see :class:`multitask.nn.InputSpec`) and ``embedding_sizes`` (``{column: size}``)
INPUT_OPTIONS = ("categorical", "embedding_sizes")
CATEGORICAL = ("onehot", "embedding")
#: the default of ``categorical``: the winner of benchmarks/categorical_embeddings.py on census-income
DEFAULT_CATEGORICAL = "onehot"


def _source_of(pre: Preprocessor, task: Task) -> str:
    """The source a task reads: its own for per-task data sets, else the one table."""
    return task.name if task.name in pre.sources else next(iter(pre.sources))


def _widened(shape: int | tuple[int, int, int], extra: int) -> int | tuple[int, int, int]:
    """``extra`` more columns of a tabular input, or channels of an image input."""
    if isinstance(shape, int):
        return shape + extra
    return (shape[0] + extra, shape[1], shape[2])


class Deep:
    """A deep multi-task network (an architecture of ``multitask.nn``) trained with early stopping."""

    family: ClassVar[str] = "deep"
    uses_validation: ClassVar[bool] = True

    def __init__(self, name: str, options: dict[str, Any] | None = None, train: TrainConfig | None = None) -> None:
        self.name = name
        self.options = dict(options or {})
        self.train = train if train is not None else TrainConfig()
        #: called after each epoch with its early-stopping score (what a search prunes trials on)
        self.on_epoch: Callable[[int, float | None], None] | None = None
        #: called with each epoch's log record (experiment tracking)
        self.on_record: Callable[[dict[str, Any]], None] | None = None

    @classmethod
    def from_config(cls, cfg: RunConfig) -> Self:
        return cls(cfg.model, cfg.model_options, cfg.train)

    def check(self, tasks: Sequence[Task], pre: Preprocessor) -> None:
        """Build the network once (options bound to the architecture's signature first): every option and
        every task's kind and size is checked before anything is trained or written."""
        names = [t.name for t in tasks]
        if self.train.primary is not None and self.train.primary not in names:
            raise ConfigError(f"train option 'primary': {self.train.primary!r} is not a task; tasks are: "
                              f"{', '.join(names[:10])}")
        cls = MODELS.get(self.name)
        try:
            inspect.signature(cls).bind(inputs=None, tasks=None, task_source=None, output_sizes=None,
                                        **self._architecture_options())
        except TypeError as e:
            raise ConfigError(f"model_options for {self.name!r}: {e}") from None
        self._build(tasks, pre, {t.name: _source_of(pre, t) for t in tasks})

    def _architecture_options(self) -> dict[str, Any]:
        return {k: v for k, v in self.options.items() if k not in INPUT_OPTIONS}

    def _build(self, tasks: Sequence[Task], pre: Preprocessor, task_source: dict[str, str],
               widen: int = 0) -> nn.Module:
        """The network; ``widen`` more input columns (tabular) or channels (images) per source, for inputs
        that a wrapper appends (a preference vector)."""
        from multitask.nn import InputSpec

        used = [s for s in pre.input_shapes() if s in set(task_source.values())]
        shapes = {s: _widened(pre.input_shapes()[s], widen) for s in used}
        categorical = self.options.get("categorical", DEFAULT_CATEGORICAL)
        if categorical not in CATEGORICAL:
            raise ConfigError(f"model_options: categorical must be one of {', '.join(CATEGORICAL)}, got {categorical!r}")
        columns = {s: pre.categorical_columns(s) for s in used} if categorical == "embedding" else {}
        sizes = pre.output_sizes()
        try:
            inputs = InputSpec.of_sources(shapes, columns,
                                          self.options.get("embedding_sizes"))
            net: nn.Module = MODELS.get(self.name)(
                inputs=inputs,
                tasks=list(tasks),
                task_source=task_source,
                output_sizes={t.name: sizes[t.name] for t in tasks},
                **self._architecture_options(),
            )
        except ConfigError as e:
            raise ConfigError(f"model_options for {self.name!r}: {e}") from None
        return net

    def fit(
        self,
        tasks: Sequence[Task],
        pre: Preprocessor,
        train: Arrays,
        valid: Arrays,
        run_dir: Path | None = None,
        *,
        resume: bool = False,
    ) -> Self:
        if resume and run_dir is not None and (run_dir / MODEL_FILE).exists() and (run_dir / MODEL_CONFIG_FILE).exists():
            self.net_: nn.Module = load_model(run_dir)
            self.tasks_ = list(tasks)
            return self
        torch.manual_seed(self.train.seed)
        net = self._build(tasks, pre, {t.name: train.task_source[t.name] for t in tasks})
        if run_dir is not None and is_main_process():
            run_dir.mkdir(parents=True, exist_ok=True)
        result = fit(net, list(tasks), train, valid, self.train, run_dir=run_dir, resume=resume, on_epoch=self.on_epoch,
                     on_record=self.on_record)
        self.net_ = result.model
        self.tasks_ = list(tasks)
        self.best_epoch_ = result.best_epoch
        learned = getattr(self.net_, "learned_tree", None)
        if callable(learned) and run_dir is not None and is_main_process():
            # the tree a learned-branching model found, as the `tree` option of the tree architecture
            text = json.dumps({"model": "tree", "tree": learned(), "hidden": list(getattr(self.net_, "hidden", []))},
                              indent=2, allow_nan=False)
            atomic_write_bytes(run_dir / LEARNED_TREE_FILE, (text + "\n").encode())
        return self

    @torch.no_grad()
    def predict(self, data: Arrays, batch_size: int = 4096) -> Predictions:
        """Every task's prediction (``Task.activate`` of the network output) on every row of its source."""
        model = self.net_
        model.eval()
        device = next(model.parameters()).device
        by_name = {t.name: t for t in self.tasks_}
        chunks: dict[str, list[np.ndarray]] = {t: [] for t in by_name}
        for source, x in data.inputs.items():
            wanted = [t for t in data.tasks_of(source) if t in by_name]
            for start in range(0, len(x), batch_size) if wanted else ():
                inputs = {
                    s: torch.from_numpy(np.ascontiguousarray(v[start : start + batch_size] if s == source else v[:0])).to(device)
                    for s, v in data.inputs.items()
                }
                outputs = model(inputs)
                for t in wanted:
                    chunks[t].append(by_name[t].activate(outputs[t]).float().cpu().numpy())
        return {t: np.concatenate(c) if c else np.zeros(0, dtype=np.float32) for t, c in chunks.items()}

    def save(self, run_dir: Path) -> None:
        save_model(self.net_, run_dir)

    @classmethod
    def load(cls, name: str, run_dir: Path, tasks: Sequence[Task], pre: Preprocessor) -> Self:
        model = cls(name)
        model.net_ = load_model(run_dir)
        model.tasks_ = list(tasks)
        described = {t.name: int(k) for t, k in zip(tasks, [pre.output_sizes()[t.name] for t in tasks], strict=True)}
        sizes = getattr(model.net_, "output_sizes", described)
        if sizes != described:
            raise CheckpointError(
                f"{run_dir / MODEL_CONFIG_FILE}: field 'output_sizes' {dict(list(sizes.items())[:3])}… does not match "
                "the run's tasks in preprocessing.json"
            )
        return model

    @classmethod
    def search_space(cls, name: str, tasks: Sequence[Task]) -> list[Param]:
        """Learning rate, weight decay, width and depth of the hidden layers and dropout (where the architecture
        has these options), the architecture's own ``tuned`` options (experts, say), and the balancing method (gradient-based methods only up to 10 tasks: they cost
        one backward pass per task and step)."""
        balancers = [b for b in BALANCERS.names()
                     if len(tasks) <= MAX_GRADIENT_TASKS or getattr(BALANCERS.get(b), "needs", "losses") == "losses"]
        takes = inspect.signature(MODELS.get(name)).parameters
        return [
            Param("train.lr", 1e-4, 1e-2, log=True),
            Param("train.weight_decay", 1e-6, 1e-2, log=True),
            *(
                [Param("model_options.hidden", choices=("64", "128", "256", "128,64", "256,128", "256,128,64"),
                       decode=lambda s: [int(w) for w in str(s).split(",")])]
                if "hidden" in takes else []
            ),
            *([Param("model_options.dropout", 0.0, 0.5)] if "dropout" in takes else []),
            *(Param(f"model_options.{option}", choices=tuple(choices))
              for option, choices in getattr(MODELS.get(name), "tuned", {}).items()),
            Param("train.balancer", choices=tuple(balancers)),
        ]

    @classmethod
    def pooled(cls, name: str) -> str:
        return "pooled-mlp"

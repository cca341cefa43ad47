"""Training options: one frozen record with commented defaults, validated against the registries.

Integer options take ints only (not ``true``, not ``2.0``); float options must be finite.
"""

from __future__ import annotations

import inspect
import math
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, StrictInt, ValidationError, field_validator, model_validator

from multitask.errors import ConfigError
from multitask.registry import BALANCERS, OPTIMIZERS, SAMPLERS, SCHEDULES, Registry

#: the largest value of an int option that torch and numpy take as a 32-bit integer
INT32_MAX = 2**31 - 1
#: seeds are 32-bit: what numpy's legacy seeding takes (torch.manual_seed and SeedSequence take more)
SEED_MAX = 2**32 - 1
EPOCHS_MAX = 10**6


def _check_name(registry: Registry, value: str) -> str:
    if value not in registry:
        raise ValueError(f"unknown {registry.kind} {value!r}; choose one of: {', '.join(registry)}")
    return value


#: the most torch CPU threads a run may ask for (more only exhausts the OpenMP runtime)
MAX_THREADS = 1024


class TrainConfig(BaseModel):
    """How to train a deep model. ``TrainConfig(epochs=50, lr=3e-4)``; invalid options raise ConfigError."""

    model_config = ConfigDict(extra="forbid", frozen=True, use_attribute_docstrings=True)

    epochs: StrictInt = 20
    """Passes over the training data (see multitask.data.sampling for "an epoch"); at most 10**6."""
    batch_size: StrictInt = 256
    """Rows per step, over all tasks together (the global batch under torchrun)."""
    accumulate: StrictInt = 1
    """Micro-batches per step: each forwarded and backpropagated alone, for less memory; the same update."""
    optimizer: str = "adam"
    """A name in multitask.registry.OPTIMIZERS."""
    lr: float = 1e-3
    """Learning rate at the start of the schedule."""
    weight_decay: float = 0.0
    """L2 penalty of the optimizer (decoupled for adamw)."""
    momentum: float = 0.0
    """Momentum of sgd (the other optimizers have none)."""
    schedule: str = "constant"
    """Learning-rate schedule per epoch, a name in multitask.registry.SCHEDULES."""
    sampling: str = "proportional"
    """How batches mix tasks, a name in multitask.registry.SAMPLERS."""
    temperature: float = 2.0
    """Tau of sampling="temperature": p_t ∝ n_t^(1/tau)."""
    patience: StrictInt | None = 5
    """Stop after this many epochs without a better validation loss; None: never."""
    seed: StrictInt = 0
    """Batches, dropout and (by the caller) initial weights follow from it; 0 to 2**32 - 1."""
    threads: StrictInt | None = None
    """Torch CPU threads; None: torch's default."""
    progress: bool = True
    """A progress bar on stderr (only when it is a terminal, and only on rank 0)."""
    monitor: str | None = None
    """Early stopping and the kept weights follow this task's validation loss; None: the weighted total."""
    primary: str | None = None
    """The one task the run is for; the others are auxiliary: monitor defaults to it, balancer to auto-lambda."""
    balancer: str = "static"
    """How task losses are combined each step, a name in multitask.registry.BALANCERS (static: task weights)."""
    balancer_options: dict[str, Any] = {}
    """Options of the balancer's constructor, e.g. {"temperature": 2.0} for dwa."""
    precision: Literal["fp32", "bf16"] = "fp32"
    """fp32, or bf16: forward passes under torch.autocast in bfloat16 (weights, losses and updates stay float32)."""
    stream: bool = False
    """Read the data file (or folder of files) piece by piece instead of into memory (docs/training.md)."""
    shuffle_buffer: StrictInt = 65536
    """Streaming: rows per window that the sampler shuffles and draws batches from."""
    checkpoint_every: StrictInt | None = None
    """Also checkpoint every this many steps within an epoch (--resume continues from that step); None: per epoch."""

    def __init__(self, **options: Any) -> None:
        try:
            super().__init__(**options)
        except ValidationError as e:
            raise ConfigError(describe_validation_error(e)) from None

    @model_validator(mode="before")
    @classmethod
    def _primary_defaults(cls, data: Any) -> Any:
        """``primary``: ``monitor`` is that task, the balancer auto-lambda unless one is named (``make_balancer``
        tells a balancer with a ``primary`` option which task it is)."""
        if not isinstance(data, dict) or not isinstance(data.get("primary"), str):
            return data
        primary, out = data["primary"], dict(data)
        if out.get("monitor") is None:
            out["monitor"] = primary
        elif out["monitor"] != primary:
            raise ValueError(f"monitor {out['monitor']!r} and primary {primary!r} name different tasks; "
                             "with a primary task, early stopping follows it")
        if out.get("balancer") is None:
            out["balancer"] = "auto-lambda"
        options = out.get("balancer_options") or {}
        if isinstance(options, dict) and options.get("primary", primary) not in (primary, [primary]):
            raise ValueError(f"balancer_options primary {options['primary']!r} differs from primary {primary!r}")
        return out

    @field_validator("optimizer")
    @classmethod
    def _optimizer(cls, v: str) -> str:
        return _check_name(OPTIMIZERS, v)

    @field_validator("schedule")
    @classmethod
    def _schedule(cls, v: str) -> str:
        return _check_name(SCHEDULES, v)

    @field_validator("sampling")
    @classmethod
    def _sampling(cls, v: str) -> str:
        return _check_name(SAMPLERS, v)

    @field_validator("balancer")
    @classmethod
    def _balancer(cls, v: str) -> str:
        return _check_name(BALANCERS, v)

    @field_validator("lr", "weight_decay", "momentum", "temperature", mode="before")
    @classmethod
    def _number_not_bool(cls, v: Any) -> Any:
        if isinstance(v, bool):  # pydantic takes true as 1.0
            raise ValueError(f"must be a number, got {v!r}")
        return v

    @field_validator(
        "epochs", "batch_size", "accumulate", "patience", "seed", "threads", "shuffle_buffer", "checkpoint_every",
        mode="before",
    )
    @classmethod
    def _int_not_bool(cls, v: Any) -> Any:
        if isinstance(v, bool) or not isinstance(v, int | None):  # ints only: no true, 2.0 or "2"
            raise ValueError(f"must be an integer, got {v!r}")
        return v

    @field_validator("epochs")
    @classmethod
    def _epochs(cls, v: int) -> int:
        return _in_range(v, 1, EPOCHS_MAX)

    @field_validator("batch_size")
    @classmethod
    def _batch_size(cls, v: int) -> int:
        return _in_range(v, 1, INT32_MAX)

    @field_validator("shuffle_buffer")
    @classmethod
    def _shuffle_buffer(cls, v: int) -> int:
        return _in_range(v, 1, INT32_MAX)

    @field_validator("accumulate")
    @classmethod
    def _accumulate(cls, v: int) -> int:
        return _in_range(v, 1, 65536)

    @field_validator("patience")
    @classmethod
    def _positive_or_none(cls, v: int | None) -> int | None:
        if v is not None and not 1 <= v <= INT32_MAX:
            raise ValueError(f"must be None or an integer in [1, {INT32_MAX}], got {v}")
        return v

    @field_validator("checkpoint_every")
    @classmethod
    def _checkpoint_every(cls, v: int | None) -> int | None:
        if v is not None and not 1 <= v <= INT32_MAX:
            raise ValueError(f"must be None or an integer in [1, {INT32_MAX}], got {v}")
        return v

    @field_validator("threads")
    @classmethod
    def _threads(cls, v: int | None) -> int | None:
        if v is not None and not 1 <= v <= MAX_THREADS:
            raise ValueError(f"must be None or a number of threads in [1, {MAX_THREADS}], got {v}")
        return v

    @field_validator("seed")
    @classmethod
    def _seed(cls, v: int) -> int:
        return _in_range(v, 0, SEED_MAX)

    @field_validator("lr", "temperature")
    @classmethod
    def _positive_float(cls, v: float) -> float:
        if not (math.isfinite(v) and v > 0):
            raise ValueError(f"must be finite and > 0, got {v}")
        return v

    @field_validator("weight_decay")
    @classmethod
    def _non_negative(cls, v: float) -> float:
        if not (math.isfinite(v) and v >= 0):
            raise ValueError(f"must be finite and >= 0, got {v}")
        return v

    @field_validator("momentum")
    @classmethod
    def _momentum(cls, v: float) -> float:
        if not 0 <= v < 1:
            raise ValueError(f"must be in [0, 1), got {v}")
        return v

    @model_validator(mode="after")
    def _balancer_options_known(self) -> TrainConfig:
        known = balancer_option_names(self.balancer)
        unknown = sorted(k for k in self.balancer_options if k not in known)
        if unknown:
            accepted = ", ".join(known) or "none"
            raise ValueError(
                f"balancer {self.balancer!r} takes no {unknown[0]!r}; its options are: {accepted}"
            )
        return self

    @model_validator(mode="after")
    def _accumulate_within_batch(self) -> TrainConfig:
        if self.accumulate > self.batch_size:
            raise ValueError(
                f"accumulate ({self.accumulate}) splits a batch into micro-batches: at most batch_size "
                f"({self.batch_size})"
            )
        return self

    @model_validator(mode="after")
    def _momentum_needs_sgd(self) -> TrainConfig:
        if self.momentum and self.optimizer != "sgd":
            raise ValueError(f"momentum only applies to optimizer 'sgd', not {self.optimizer!r}")
        return self


def without_primary(config: TrainConfig) -> TrainConfig:
    """The same options for a model of other tasks (a single-task baseline): no primary task, no monitor, and
    static weights where ``primary`` had chosen auto-lambda."""
    if config.primary is None:
        return config
    options = config.model_dump()
    options.update(primary=None, monitor=None)
    if config.balancer == "auto-lambda":
        options.update(balancer="static", balancer_options={})
    return TrainConfig(**options)


def balancer_option_names(name: str) -> list[str]:
    """The options of balancer ``name``: its constructor's parameters after ``tasks``."""
    parameters = list(inspect.signature(BALANCERS.get(name)).parameters.values())[1:]
    return [p.name for p in parameters if p.kind in (p.POSITIONAL_OR_KEYWORD, p.KEYWORD_ONLY)]


def _in_range(v: int, low: int, high: int) -> int:
    if not low <= v <= high:
        raise ValueError(f"must be an integer in [{low}, {high}], got {v}")
    return v


def describe_validation_error(error: ValidationError) -> str:
    """One line per problem, each naming the option: ``train option 'lr': must be finite and > 0, got -1.0``."""
    lines = []
    for err in error.errors():
        option = ".".join(str(part) for part in err["loc"]) or "(config)"
        if err["type"] == "extra_forbidden":
            known = ", ".join(TrainConfig.model_fields)
            lines.append(f"unknown train option {option!r}; options are: {known}")
        else:
            message = str(err["msg"]).removeprefix("Value error, ")
            lines.append(f"train option {option!r}: {message}" if err["loc"] else f"train options: {message}")
    return "; ".join(lines)

"""TensorBoard: per-epoch and final scalars as event files, and the parameters as text."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from multitask.errors import ConfigError


class TensorBoardTracker:
    """TensorBoard event files (``pip install multitask[tracking]``) in ``RUN_DIR/tensorboard``."""

    def __init__(self, run_dir: Path) -> None:
        try:
            from torch.utils.tensorboard import SummaryWriter
        except ImportError:
            raise ConfigError("--track tensorboard needs TensorBoard: pip install 'multitask[tracking]'") from None
        self._writer_class = SummaryWriter
        self.folder = Path(run_dir) / "tensorboard"
        self.writer: Any = None

    def start(self, name: str, params: dict[str, str]) -> None:
        self.writer = self._writer_class(log_dir=str(self.folder))
        table = "\n".join(f"| {k} | {v} |" for k, v in params.items())
        self.writer.add_text("parameters", "| option | value |\n|---|---|\n" + table, 0)

    def log(self, values: dict[str, float], step: int) -> None:
        for name, value in values.items():
            self.writer.add_scalar(name, value, step)
        self.writer.flush()

    def finish(self, run_dir: Path | None, failed: bool = False) -> None:
        if self.writer is not None:
            self.writer.close()

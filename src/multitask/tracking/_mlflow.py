"""MLflow: parameters, per-epoch and final metrics, and the run directory as artifacts."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from multitask.errors import ConfigError

_EXPERIMENT = "multitask"


class MLflowTracker:
    """MLflow tracking (``pip install multitask[tracking]``): a local store by default, any tracking URI by option."""

    def __init__(self, run_dir: Path, uri: str | None = None, experiment: str = _EXPERIMENT) -> None:
        try:
            from mlflow.tracking import MlflowClient
        except ImportError:
            raise ConfigError("--track mlflow needs MLflow: pip install 'multitask[tracking]'") from None
        self.client = MlflowClient(tracking_uri=uri) if uri is not None else MlflowClient()
        self.experiment = experiment
        self.run_id: str | None = None

    def start(self, name: str, params: dict[str, str]) -> None:
        found = self.client.get_experiment_by_name(self.experiment)
        experiment_id = found.experiment_id if found is not None else self.client.create_experiment(self.experiment)
        run = self.client.create_run(experiment_id, run_name=name, tags={"multitask.run": name})
        self.run_id = run.info.run_id
        from mlflow.entities import Param

        items = list(params.items())
        for i in range(0, len(items), 100):  # MLflow takes at most 100 parameters per batch
            self.client.log_batch(self.run_id, params=[Param(k, v) for k, v in items[i:i + 100]])

    def log(self, values: dict[str, float], step: int) -> None:
        import time

        from mlflow.entities import Metric

        assert self.run_id is not None, "start() first"
        now = int(time.time() * 1000)
        metrics: list[Any] = [Metric(k, v, now, step) for k, v in values.items()]
        for i in range(0, len(metrics), 1000):  # MLflow's batch limit
            self.client.log_batch(self.run_id, metrics=metrics[i:i + 1000])

    def finish(self, run_dir: Path | None, failed: bool = False) -> None:
        if self.run_id is None:
            return
        if run_dir is not None and not failed:
            self.client.log_artifacts(self.run_id, str(run_dir), artifact_path="run")
        self.client.set_terminated(self.run_id, status="FAILED" if failed else "FINISHED")

"""Per-step RL metrics (docs/algorithm.md §7): summary of the rollouts, the update's stats and timings;
written to ``metrics.jsonl`` (and MLflow when a tracking URI is set: ``MlflowCurve``, which SFT uses
too), printed as one progress line, and watched by the mode-collapse alarm.

Values that do not exist at a step (accuracy of a mode nobody chose, KL without a reference) are
``None`` in the JSON lines and left out of MLflow.
"""

from __future__ import annotations

import json
import logging
import time
from pathlib import Path
from typing import Any

import torch
import torch.distributed as td
from torch import Tensor

from hipo.config import RunConfig, mlflow_tracking_uri
from hipo.train import algorithm as alg
from hipo.train.rollout import RolloutBatch

log = logging.getLogger(__name__)


def gather_rows(batch: RolloutBatch) -> dict[str, Tensor]:
    """Per-rollout columns of every rank's batch, concatenated (every rank gets all of them)."""
    cols = {
        "reward": batch.rewards,
        "correct": batch.correct.float(),
        "format_ok": batch.format_ok.float(),
        "mode": batch.modes,
        "length": batch.lengths,
        "difficulty": batch.difficulty,
    }
    if not (td.is_available() and td.is_initialized()) or td.get_world_size() == 1:
        return cols
    parts: list[Any] = [None] * td.get_world_size()
    td.all_gather_object(parts, cols)
    return {k: torch.cat([p[k] for p in parts]) for k in cols}


def _mean(values: Tensor) -> float | None:
    return float(values.float().mean()) if values.numel() else None


def summarize(rows: dict[str, Tensor]) -> dict[str, float | None]:
    """Reward, accuracy, thinking rate (overall and per difficulty), length and accuracy per mode."""
    on, off = rows["mode"] == alg.MODE_ON, rows["mode"] == alg.MODE_OFF
    out: dict[str, float | None] = {
        "reward_mean": _mean(rows["reward"]),
        "reward_std": float(rows["reward"].float().std(unbiased=False)),
        "accuracy": _mean(rows["correct"]),
        "format_fail_rate": 1.0 - float(rows["format_ok"].mean()),
        "think_rate": _mean(on),
        "length_mean": _mean(rows["length"]),
        "length_on": _mean(rows["length"][on]),
        "length_off": _mean(rows["length"][off]),
        "accuracy_on": _mean(rows["correct"][on]),
        "accuracy_off": _mean(rows["correct"][off]),
        "response_tokens": float(rows["length"].sum()),
    }
    for level in sorted(set(rows["difficulty"].tolist()) - {-1}):
        out[f"think_rate_d{level}"] = _mean(on[rows["difficulty"] == level])
    return out


def tracking_uri(config: RunConfig) -> str | None:
    """Where training curves go: registry.tracking_uri, else MLFLOW_TRACKING_URI; None: MLflow off."""
    return config.registry.tracking_uri or mlflow_tracking_uri()


class MlflowCurve:
    """One training stage as an MLflow run: its parameters once, then every logged step's numeric
    metrics, so the MLflow UI draws the curves. Under `hipo run` the run nests under the pipeline
    run's. Nothing is logged without a tracking URI; the run is created at the first step."""

    def __init__(self, config: RunConfig, name: str, params: dict[str, Any], run_id: str | None = None):
        self.uri = tracking_uri(config)
        self.experiment = config.registry.experiment
        self.name = name
        self.params = params
        self.run_id = run_id  # set when a resumed stage continues its run
        self._client: Any = None

    def log(self, step: int, metrics: dict[str, Any]) -> None:
        if self.uri is None:
            return
        from mlflow.entities import Metric, Param

        from hipo.registry.client import connect, experiment_id, nested_tags

        if self._client is None:
            self._client = connect(self.uri)
        if self.run_id is None:
            experiment = experiment_id(self._client, self.experiment)
            run = self._client.create_run(experiment, run_name=self.name, tags=nested_tags())
            self.run_id = run.info.run_id
            params = [Param(k, str(v)[:6000]) for k, v in self.params.items()]
            self._client.log_batch(self.run_id, params=params)
        stamp = int(time.time() * 1000)
        values = [
            Metric(k, float(v), stamp, step)
            for k, v in metrics.items()
            if k != "step" and isinstance(v, int | float) and not isinstance(v, bool)
        ]
        self._client.log_batch(self.run_id, metrics=values)

    def close(self, status: str = "FINISHED") -> None:
        if self._client is not None and self.run_id is not None:
            self._client.set_terminated(self.run_id, status)


def rl_run_name(algorithm: str, cold_start: str = "") -> str:
    """The MLflow run of an RL stage: ``rl (grpo from on)``; with ``--arms all`` GRPO trains from
    each cold start, and its two runs sit side by side under the pipeline run."""
    return f"rl ({algorithm} from {cold_start})" if cold_start else f"rl ({algorithm})"


class MetricsTracker:
    """Writes each step's metrics (main rank only) and keeps the collapse alarm (on every rank).
    ``run_name``: the MLflow run's, by default ``rl_run_name`` of the configured algorithm."""

    def __init__(
        self, out_dir: Path, config: RunConfig, main: bool, params: dict[str, Any], run_name: str = ""
    ) -> None:
        self.path = out_dir / "metrics.jsonl"
        self.total = config.rl.steps
        self.alarm_steps = config.rl.collapse_alarm_steps
        self.main = main
        self.collapsed_for = 0  # consecutive steps with thinking rate exactly 0 or 1
        self.mlflow = MlflowCurve(config, run_name or rl_run_name(config.rl.algorithm), params)
        self._started = time.perf_counter()
        self._first_step: int | None = None

    @property
    def collapsed(self) -> bool:
        return self.collapsed_for >= self.alarm_steps

    def state_dict(self) -> dict[str, Any]:
        """Alarm counter, MLflow run and the metrics written so far (a resumed run rewinds the file)."""
        lines = self.path.read_text(encoding="utf-8") if self.main and self.path.exists() else ""
        return {"collapsed_for": self.collapsed_for, "mlflow_run_id": self.mlflow.run_id, "jsonl": lines}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.collapsed_for = state["collapsed_for"]
        self.mlflow.run_id = state["mlflow_run_id"]
        if self.main:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            self.path.write_text(state["jsonl"], encoding="utf-8")

    def log(self, step: int, metrics: dict[str, Any]) -> None:
        rate = metrics["think_rate"]
        self.collapsed_for = self.collapsed_for + 1 if rate in (0.0, 1.0) else 0
        metrics = {"step": step, **metrics, "collapse_steps": self.collapsed_for}
        if self.collapsed_for == self.alarm_steps:
            log.warning(
                "mode collapse: thinking rate has been %s for %d consecutive steps (step %d)",
                rate, self.collapsed_for, step,
            )  # fmt: skip
        if not self.main:
            return
        self.path.parent.mkdir(parents=True, exist_ok=True)
        with self.path.open("a", encoding="utf-8") as out:
            out.write(json.dumps(metrics) + "\n")
        self.mlflow.log(step, metrics)
        print(self._progress(step, metrics), flush=True)

    def _progress(self, step: int, m: dict[str, Any]) -> str:
        if self._first_step is None:
            self._first_step, self._started = step, time.perf_counter() - m["time_step"]
        per_step = (time.perf_counter() - self._started) / (step - self._first_step + 1)
        eta = int(per_step * (self.total - step))
        return (
            f"rl step {step}/{self.total}  reward {m['reward_mean']:.3f}  acc {m['accuracy']:.3f}  "
            f"think {m['think_rate']:.2f}  tokens {int(m['response_tokens'])}  {per_step:.2f} s/step  "
            f"ETA {eta // 60}m{eta % 60:02d}s"
        )

    @property
    def mlflow_run_id(self) -> str | None:
        return self.mlflow.run_id

    def close(self, status: str = "FINISHED") -> None:
        self.mlflow.close(status)

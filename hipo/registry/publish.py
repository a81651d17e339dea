"""Publishing a trained policy: one MLflow run (params, metrics, reports, dataset lineage, the model), a new
version of the registered model tagged with its lineage and key metrics, alias ``challenger``, the gate.

The model is logged with the transformers flavor straight from the checkpoint directory, task
``llm/v1/chat``: nothing is loaded or run while logging and the signature is the fixed chat schema.
``mlflow.pyfunc.load_model("models:/NAME@champion").predict({"messages": [...]})`` answers in the
OpenAI chat format through the checkpoint's chat template; ``mlflow.transformers.load_model`` gives a
text-generation pipeline.
"""

from __future__ import annotations

import json
import tempfile
import time
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from hipo import storage
from hipo.config import RunConfig
from hipo.registry.champion import GATE_BASELINES, GATE_DECISION, TAG_VALUE_LIMIT, apply_gate
from hipo.registry.client import (
    CHALLENGER,
    METRIC_TAG,
    RUN_TAG,
    RegistryError,
    connect,
    experiment_id,
    get_version,
    mlflow_errors,
    nested_tags,
    resolve_uri,
)
from hipo.registry.gate import GateDecision, gate_metrics

if TYPE_CHECKING:
    from mlflow import MlflowClient
    from mlflow.entities.model_registry import ModelVersion

MODEL_ARTIFACT = "model"
_DIGEST_LIMIT = 36  # mlflow's maximum dataset digest length


@dataclass(frozen=True)
class Registration:
    name: str
    version: str
    run_id: str
    created: bool  # False when this pipeline run id had already been registered
    gate: GateDecision


def _flatten(tree: Mapping[str, Any], prefix: str = "") -> dict[str, str]:
    """``{"rl": {"omega": 0.05}}`` -> ``{"rl.omega": "0.05"}``; non-strings are written as JSON."""
    flat: dict[str, str] = {}
    for key, value in tree.items():
        if isinstance(value, Mapping):
            flat.update(_flatten(value, f"{prefix}{key}."))
        else:
            flat[f"{prefix}{key}"] = value if isinstance(value, str) else json.dumps(value)
    return flat


def _floats(metrics: Mapping[str, Any]) -> dict[str, float]:
    try:
        return {key: float(value) for key, value in metrics.items()}
    except (TypeError, ValueError) as error:
        raise RegistryError(f"metrics must be numbers: {error}") from None


@contextmanager
def _checkpoint(model_dir: str | Path) -> Iterator[Path]:
    """A local copy of the checkpoint (downloaded when ``model_dir`` is an s3:// prefix)."""
    with tempfile.TemporaryDirectory(prefix="hipo-checkpoint-") as tmp:
        local = Path(model_dir)
        if str(model_dir).startswith("s3://"):
            local = Path(tmp)
            storage.download_prefix(str(model_dir), local)
        if not (local / "config.json").is_file():
            raise RegistryError(f"{model_dir} is not a transformers checkpoint directory (no config.json)")
        yield local


def _requirements() -> list[str]:
    """Explicit pins: the flavor's defaults would add torchvision."""
    from importlib.metadata import version

    return [f"{package}=={version(package).split('+')[0]}" for package in ("torch", "transformers")]


def _log_dataset(data_uri: str, data_hash: str) -> None:
    import mlflow
    from mlflow.data.dataset_source_registry import resolve_dataset_source
    from mlflow.data.meta_dataset import MetaDataset

    name = data_uri.rstrip("/").rsplit("/", 1)[-1] or "data"
    digest = data_hash[:_DIGEST_LIMIT] or None
    dataset = MetaDataset(resolve_dataset_source(data_uri), name=name, digest=digest)
    mlflow.log_input(dataset, context="training")


@contextmanager
def _tracking(uri: str) -> Iterator[None]:
    """mlflow's fluent API (runs, log_model) reads a process-wide tracking URI: set it for the block only."""
    import mlflow

    if mlflow.get_tracking_uri() == uri:  # the usual case: MLFLOW_TRACKING_URI names it; change nothing
        yield
        return
    previous = mlflow.get_tracking_uri() if mlflow.is_tracking_uri_set() else None
    mlflow.set_tracking_uri(uri)
    try:
        yield
    finally:
        mlflow.set_tracking_uri(previous)


def _publish(
    client: MlflowClient,
    config: RunConfig,
    metrics: dict[str, float],
    checkpoint: Path,
    lineage: dict[str, str],
    reports: Sequence[str | Path],
    baselines: Mapping[str, Mapping[str, float]],
) -> ModelVersion:
    """Log the run and the model; register the model as a new version with the lineage tags (and the
    baselines' gated metrics, for the gate)."""
    import mlflow
    from huggingface_hub import ModelCard

    experiment = experiment_id(client, config.registry.experiment)
    nested = nested_tags()  # under the pipeline run's MLflow run: "register" beside "sft (mix)", "rl (hipo)"
    name = "register" if nested else lineage[RUN_TAG]
    with mlflow.start_run(experiment_id=experiment, run_name=name, tags={**lineage, **nested}):
        mlflow.log_params(_flatten(config.to_dict()))
        mlflow.log_metrics(metrics)
        mlflow.log_text(config.to_yaml(), "config.yaml")
        for report in map(Path, reports):
            if report.is_dir():
                mlflow.log_artifacts(str(report), "report")
            else:
                mlflow.log_artifact(str(report), "report")
        if lineage.get("data_uri"):
            _log_dataset(lineage["data_uri"], lineage.get("data_hash", ""))
        card_lines = [f"# {config.registry.model_name}", "", *(f"- {k}: {v}" for k, v in lineage.items())]
        info = mlflow.transformers.log_model(
            str(checkpoint),
            name=MODEL_ARTIFACT,
            task="llm/v1/chat",
            pip_requirements=_requirements(),
            model_card=ModelCard("\n".join(card_lines)),
        )
    tags = {**lineage, **{METRIC_TAG + k: repr(v) for k, v in gate_metrics(metrics).items()}}
    if baselines:
        tags[GATE_BASELINES] = _baselines_tag(baselines)
    return mlflow.register_model(info.model_uri, config.registry.model_name, tags=tags)


def _baselines_tag(baselines: Mapping[str, Mapping[str, float]]) -> str:
    text = json.dumps({name: gate_metrics(_floats(m)) for name, m in baselines.items()}, sort_keys=True)
    if len(text) > TAG_VALUE_LIMIT:
        raise RegistryError(
            f"the baselines' gated metrics take {len(text)} characters, over {TAG_VALUE_LIMIT}"
        )
    return text


def register(
    config: RunConfig,
    metrics: Mapping[str, float],
    model_dir: str | Path,
    *,
    pipeline_run_id: str,
    git_commit: str = "",
    data_uri: str = "",
    data_hash: str = "",
    reports: Sequence[str | Path] = (),
    tracking_uri: str | None = None,
    promote: bool = True,
    baselines: Mapping[str, Mapping[str, float]] | None = None,
) -> Registration:
    """Log a run, register ``model_dir`` as a new version (alias ``challenger``), apply the promotion gate
    (``promote=False``: record the decision only; the pipeline promotes in a step of its own).
    ``baselines``: ``{display name: metrics}`` of the run's cold starts, which the gate holds a first
    champion against.

    Idempotent per ``pipeline_run_id``: a second call finds the version the first registered (by its
    tag), logs nothing new and returns the recorded gate decision (or finishes an interrupted gate).
    """
    if not pipeline_run_id or "'" in pipeline_run_id:
        raise RegistryError(f"pipeline_run_id must be non-empty and without quotes, got {pipeline_run_id!r}")
    name = config.registry.model_name
    client = connect(tracking_uri)
    lineage = {
        RUN_TAG: pipeline_run_id,
        "git_commit": git_commit,
        "data_uri": data_uri,
        "data_hash": data_hash,
        "config_hash": config.config_hash(),
    }
    lineage = {key: value for key, value in lineage.items() if value}
    with mlflow_errors(f"register a version of {name!r} for pipeline run {pipeline_run_id}"):
        found = client.search_model_versions(f"name = '{name}' and tags.{RUN_TAG} = '{pipeline_run_id}'")
        if found:
            version = min(found, key=lambda v: int(v.version))
        else:
            with _checkpoint(model_dir) as checkpoint, _tracking(resolve_uri(tracking_uri)):
                version = _publish(
                    client, config, _floats(metrics), checkpoint, lineage, reports, baselines or {}
                )
        if not found or GATE_DECISION not in version.tags:
            client.set_registered_model_alias(name, CHALLENGER, version.version)
        decision = apply_gate(client, name, version.version, config.registry, promote)
    return Registration(name, str(version.version), version.run_id, not found, decision)


def attach_to_version(
    name: str,
    version: str | int,
    metrics: Mapping[str, float],
    files: Sequence[str | Path],
    *,
    artifact_path: str,
    tracking_uri: str | None = None,
) -> str:
    """Log ``metrics`` and ``files`` (under ``artifact_path``) to the MLflow run that registered
    ``version``: results that finish after the registration, such as the five-arm comparison.
    Returns that run's id."""
    from mlflow.entities import Metric

    client = connect(tracking_uri)
    with mlflow_errors(f"attach {artifact_path} to {name!r} version {version}"):
        run_id = get_version(client, name, version).run_id
        if not run_id:
            raise RegistryError(f"{name!r} version {version} has no MLflow run to attach {artifact_path} to")
        stamp = int(time.time() * 1000)
        client.log_batch(run_id, metrics=[Metric(k, v, stamp, 0) for k, v in _floats(metrics).items()])
        for path in files:
            client.log_artifact(run_id, str(path), artifact_path)
    return run_id

"""Connecting to MLflow: the tracking URI, a fail-fast reachability probe, lookups with clear errors.

mlflow is imported inside functions (like boto3 in hipo/storage/) so that `hipo` starts quickly.
"""

from __future__ import annotations

import urllib.error
import urllib.request
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING

from hipo.config import mlflow_parent_run_id, mlflow_tracking_uri

if TYPE_CHECKING:
    from mlflow import MlflowClient
    from mlflow.entities.model_registry import ModelVersion, RegisteredModel

PROBE_TIMEOUT_S = 5.0
HTTP_MAX_RETRIES = 2  # mlflow's defaults (7 retries, backoff factor 2) wait minutes on a dead server
HTTP_BACKOFF_FACTOR = 1
CHAMPION, CHALLENGER = "champion", "challenger"
RUN_TAG = "pipeline_run_id"  # version tag: the pipeline run that registered it (idempotency key)
METRIC_TAG = "metric."  # version tags "metric.<key>" carry the gated metrics for `hipo models`
LOCAL_REGISTRY = Path("runs") / "mlflow.db"  # in the working directory, beside `make demo`'s runs/demo


class RegistryError(RuntimeError):
    """An MLflow registry operation that cannot proceed; the message says what to check."""


def local_registry_uri() -> str:
    """The registry of local runs when no tracking server is set: ``runs/mlflow.db`` in the working
    directory, shared by every `hipo run` there (so the gate compares a run with the runs before it)."""
    return f"sqlite:///{LOCAL_REGISTRY.resolve()}"


def resolve_uri(tracking_uri: str | None = None) -> str:
    """The given URI, else MLFLOW_TRACKING_URI, else the local registry (``local_registry_uri``)."""
    return tracking_uri or mlflow_tracking_uri() or local_registry_uri()


def sqlite_path(uri: str) -> Path | None:
    """The database file of a ``sqlite:///`` URI (None for other stores)."""
    return Path(uri.removeprefix("sqlite:///")) if uri.startswith("sqlite:///") else None


def require_registry(uri: str) -> None:
    """Raise a RegistryError when a SQLite registry file does not exist, instead of creating an empty one."""
    path = sqlite_path(uri)
    if path is not None and not path.is_file():
        raise RegistryError(
            f"no MLflow registry at {path}: `hipo run` creates it in runs/ of the directory it runs in; "
            "run this command there, or set MLFLOW_TRACKING_URI (or --tracking-uri) to your registry"
        )


def _limit_http_retries() -> None:
    """Fewer, shorter retries than mlflow's defaults, unless the user set their own."""
    from mlflow.environment_variables import (
        MLFLOW_HTTP_REQUEST_BACKOFF_FACTOR,
        MLFLOW_HTTP_REQUEST_MAX_RETRIES,
    )

    for variable, value in (
        (MLFLOW_HTTP_REQUEST_MAX_RETRIES, HTTP_MAX_RETRIES),
        (MLFLOW_HTTP_REQUEST_BACKOFF_FACTOR, HTTP_BACKOFF_FACTOR),
    ):
        if not variable.is_set():
            variable.set(value)


def _probe(uri: str) -> None:
    """Fail fast when nothing answers at an http(s) tracking URI (any HTTP answer counts as reachable)."""
    try:
        urllib.request.urlopen(f"{uri.rstrip('/')}/health", timeout=PROBE_TIMEOUT_S).close()
    except urllib.error.HTTPError:
        return
    except (OSError, ValueError) as error:
        raise RegistryError(
            f"MLflow tracking server at {uri} is not reachable ({getattr(error, 'reason', error)}): "
            "start it or set MLFLOW_TRACKING_URI"
        ) from None


def connect(tracking_uri: str | None = None) -> MlflowClient:
    """An MlflowClient for the tracking (and registry) URI, after checking that a server answers."""
    from mlflow import MlflowClient

    uri = resolve_uri(tracking_uri)
    _limit_http_retries()
    if uri.startswith(("http://", "https://")):
        _probe(uri)
    if (path := sqlite_path(uri)) is not None:
        path.parent.mkdir(parents=True, exist_ok=True)
    return MlflowClient(tracking_uri=uri, registry_uri=uri)


def nested_tags() -> dict[str, str]:
    """Tags that nest a new run under the pipeline run's MLflow run, when `hipo run` started one."""
    parent = mlflow_parent_run_id()
    return {"mlflow.parentRunId": parent} if parent else {}


def experiment_id(client: MlflowClient, name: str) -> str:
    """The experiment's id, created if missing. With a SQLite store (the local default) its artifacts
    go beside the database file, not into the working directory."""
    experiment = client.get_experiment_by_name(name)
    if experiment:
        return experiment.experiment_id
    path = sqlite_path(client.tracking_uri)
    location = (path.parent / "mlartifacts" / name).resolve().as_uri() if path is not None else None
    return client.create_experiment(name, artifact_location=location)


@contextmanager
def mlflow_errors(action: str) -> Iterator[None]:
    """Turn any MlflowException escaping the block into a RegistryError saying what was being done."""
    from mlflow.exceptions import MlflowException

    try:
        yield
    except MlflowException as error:
        raise RegistryError(f"MLflow could not {action}: {error.message}") from error


def _not_found(error: Exception) -> bool:
    return getattr(error, "error_code", None) == "RESOURCE_DOES_NOT_EXIST"


def get_model(client: MlflowClient, name: str) -> RegisteredModel:
    """A registered model, or a RegistryError naming the registered ones."""
    from mlflow.exceptions import MlflowException

    try:
        return client.get_registered_model(name)
    except MlflowException as error:
        if not _not_found(error):
            raise
        known = sorted(m.name for m in client.search_registered_models(max_results=50))
        raise RegistryError(
            f"no registered model {name!r} in the MLflow registry; registered: {', '.join(known) or 'none'}"
        ) from None


def get_version(client: MlflowClient, name: str, version: str | int) -> ModelVersion:
    """One model version, or a RegistryError naming the model's versions."""
    from mlflow.exceptions import MlflowException

    get_model(client, name)
    try:
        return client.get_model_version(name, str(version))
    except MlflowException as error:
        if not _not_found(error):
            raise
        versions = sorted(int(v.version) for v in client.search_model_versions(f"name = '{name}'"))
        raise RegistryError(
            f"model {name!r} has no version {version}; versions: {', '.join(map(str, versions)) or 'none'}"
        ) from None


def alias_version(client: MlflowClient, name: str, alias: str) -> ModelVersion | None:
    """The version an alias of a registered model points at, or None when the alias is not set."""
    version = client.get_registered_model(name).aliases.get(alias)
    return None if version is None else client.get_model_version(name, str(version))


def tagged_metrics(tags: dict[str, str]) -> dict[str, float]:
    """The ``metric.<key>`` version tags as a metrics dict."""
    return {k.removeprefix(METRIC_TAG): float(v) for k, v in tags.items() if k.startswith(METRIC_TAG)}


def version_metrics(client: MlflowClient, version: ModelVersion) -> dict[str, float]:
    """A version's metrics: its run's, else the ``metric.*`` tags it was registered with."""
    if version.run_id:
        return dict(client.get_run(version.run_id).data.metrics)
    return tagged_metrics(version.tags)

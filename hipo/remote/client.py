"""Runs and recurring runs on a Kubeflow Pipelines 2.x server, through ``kfp.Client``.

``kfp.Client`` speaks HTTP/JSON to ``/apis/v2beta1``. Two of its habits are guarded here: it probes
``healthz`` on construction and retries a failing probe for ~25 s, and its REST layer has no timeout.
So every session starts with a short probe of our own (a clear error naming the host within seconds),
and every later call is bounded by a connect and a read timeout.
"""

from __future__ import annotations

import contextlib
import io
import json
import re
import urllib.error
import urllib.request
import warnings
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any

import kfp_server_api
import urllib3

from hipo.remote.package import DEFAULT_PACKAGE, RemoteError, check_cron, parse_params, read_package

DEFAULT_EXPERIMENT = "hipo"
TIMEOUTS = (5.0, 60.0)  # seconds: connect (and the first probe), read


@dataclass(frozen=True)
class Submitted:
    run_id: str
    experiment_id: str
    url: str


@dataclass(frozen=True)
class RunInfo:
    run_id: str
    name: str
    state: str
    created: datetime | None
    finished: datetime | None


@dataclass(frozen=True)
class RecurringRunInfo:
    recurring_run_id: str
    name: str
    schedule: str  # the cron, or "every N s"
    enabled: bool
    max_concurrency: int
    no_catchup: bool


# ---------------------------------------------------------------- connection


class _BoundedRest(kfp_server_api.rest.RESTClientObject):
    """The generated REST client, with a default timeout on every request (it has none)."""

    def __init__(self, configuration: kfp_server_api.Configuration, timeout: tuple[float, float]) -> None:
        super().__init__(configuration)
        self.timeout = timeout

    def request(self, *args: Any, _request_timeout: Any = None, **kwargs: Any) -> Any:
        return super().request(*args, _request_timeout=_request_timeout or self.timeout, **kwargs)


def _normalise_host(host: str) -> str:
    if not re.match(r"^https?://[^/\s]+", host or ""):
        raise RemoteError(
            f"--host {host!r} must be the KFP API address with its scheme, e.g. http://localhost:8080 "
            "(kubectl port-forward -n kubeflow svc/ml-pipeline-ui 8080:80)"
        )
    return host.rstrip("/")


def _auth_hint(status: int) -> str:
    if status in (401, 403):
        return " (set KFP_TOKEN to a bearer token the KFP API accepts, or check its permissions)"
    return ""


def _probe(host: str, token: str | None, timeout_s: float) -> None:
    """GET /apis/v2beta1/healthz with a short timeout: unreachable hosts fail fast and by name."""
    request = urllib.request.Request(f"{host}/apis/v2beta1/healthz")
    if token:
        request.add_header("Authorization", f"Bearer {token}")
    try:
        urllib.request.urlopen(request, timeout=timeout_s).close()
    except urllib.error.HTTPError as error:
        raise RemoteError(
            f"KFP API at {host} answered {error.code} {error.reason} to GET /apis/v2beta1/healthz"
            + (_auth_hint(error.code) or "; is --host the KFP API (or UI) address?")
        ) from None
    except (urllib.error.URLError, OSError) as error:
        reason = getattr(error, "reason", error)
        if isinstance(reason, TimeoutError):
            reason = f"no answer within {timeout_s:g} s"
        raise RemoteError(
            f"cannot reach the KFP API at {host}: {reason}. "
            "Check --host and that the server is up, e.g. "
            "kubectl port-forward -n kubeflow svc/ml-pipeline-ui 8080:80"
        ) from None


def _api_message(error: kfp_server_api.ApiException) -> str:
    try:
        body = json.loads(error.body or "")
        return str(body.get("message") or body.get("error") or error.body)
    except (ValueError, AttributeError):
        return str(error.body or "").strip()[:500]


@contextlib.contextmanager
def _calls(host: str, what: str) -> Iterator[None]:
    """Translate kfp / urllib3 failures into RemoteError; silence kfp's "details:" prints and warnings."""
    try:
        with contextlib.redirect_stdout(io.StringIO()), warnings.catch_warnings():
            warnings.simplefilter("ignore", FutureWarning)
            yield
    except kfp_server_api.ApiException as error:
        raise RemoteError(
            f"KFP API at {host} refused to {what}: {error.status} {error.reason}: {_api_message(error)}"
            + _auth_hint(error.status)
            + (
                " (multi-user KFP: pass --namespace, your profile namespace)"
                if "namespace" in _api_message(error).lower()
                else ""
            )
        ) from None
    except urllib3.exceptions.HTTPError as error:
        raise RemoteError(f"KFP API at {host} failed to {what}: {error}") from None


class Session:
    """A ``kfp.Client`` on one host (bearer token from KFP_TOKEN), probed first, every request bounded
    by ``timeouts`` (connect, read) in seconds."""

    def __init__(
        self, host: str, timeouts: tuple[float, float] = TIMEOUTS, namespace: str | None = None
    ) -> None:
        import kfp

        from hipo.config import kfp_token

        connect_s, read_s = timeouts
        token = kfp_token()
        self.host = _normalise_host(host)
        _probe(self.host, token, connect_s)
        with _calls(self.host, "connect"):
            # multi-user KFP: experiments live in a profile namespace (kfp.Client's own default otherwise)
            extra = {"namespace": namespace} if namespace else {}
            self.client = kfp.Client(host=self.host, existing_token=token, **extra)
        # kfp.Client has no timeout option: all its service APIs share one ApiClient; bound its REST layer.
        config = self.client._existing_config
        config.retries = urllib3.Retry(total=2, read=0, backoff_factor=0.2)
        self.client._run_api.api_client.rest_client = _BoundedRest(config, (connect_s, read_s))

    def experiment_id(self, name: str, create: bool) -> str:
        with _calls(self.host, f"find experiment '{name}'"):
            try:
                if create:  # kfp gets the experiment by name, or creates it
                    return self.client.create_experiment(name=name).experiment_id
                return self.client.get_experiment(experiment_name=name).experiment_id
            except ValueError as error:  # none (when not creating), or several with this name
                raise RemoteError(f"KFP at {self.host}: {error}") from None

    def recurring_runs(self, experiment_id: str | None = None, limit: int | None = None) -> list[Any]:
        found: list[Any] = []
        token = ""
        with _calls(self.host, "list recurring runs"):
            while limit is None or len(found) < limit:
                page = self.client.list_recurring_runs(
                    page_token=token, page_size=min(100, limit or 100), sort_by="created_at desc",
                    experiment_id=experiment_id,
                )  # fmt: skip
                found.extend(page.recurring_runs or [])
                token = page.next_page_token or ""
                if not token:
                    break
        return found[:limit] if limit else found


def _recurring_info(rr: Any) -> RecurringRunInfo:
    trigger = rr.trigger
    if trigger and trigger.cron_schedule and trigger.cron_schedule.cron:
        schedule = trigger.cron_schedule.cron
    elif trigger and trigger.periodic_schedule:
        schedule = f"every {trigger.periodic_schedule.interval_second} s"
    else:
        schedule = "-"
    unknown = rr.status in (None, "STATUS_UNSPECIFIED")
    enabled = rr.status == "ENABLED" or (unknown and rr.mode == "ENABLE")
    return RecurringRunInfo(
        rr.recurring_run_id, rr.display_name or "", schedule, enabled,
        int(rr.max_concurrency or 0), bool(rr.no_catchup),
    )  # fmt: skip


def _when(value: datetime | None) -> datetime | None:
    """KFP reports "not yet" as the Unix epoch."""
    return value if value is not None and value.year > 1970 else None


# ---------------------------------------------------------------- operations


def submit(
    host: str,
    package: str | Path = DEFAULT_PACKAGE,
    params: Sequence[str] = (),
    experiment: str = DEFAULT_EXPERIMENT,
    run_name: str | None = None,
    timeouts: tuple[float, float] = TIMEOUTS,
    namespace: str | None = None,
) -> Submitted:
    """Create a run of the compiled package in ``experiment`` (created if missing; in ``namespace``,
    the Kubeflow profile, with multi-user KFP)."""
    spec = read_package(package)
    arguments = parse_params(spec, params)
    session = Session(host, timeouts, namespace)
    name = run_name or f"{spec['pipelineInfo']['name']} {datetime.now():%Y-%m-%d %H:%M:%S}"
    experiment_id = session.experiment_id(experiment, create=True)
    with _calls(session.host, "create the run"):
        result = session.client.create_run_from_pipeline_package(
            str(package), arguments=arguments, run_name=name, experiment_id=experiment_id
        )
    run_id = result.run_info.run_id
    return Submitted(run_id, experiment_id, f"{session.host}/#/runs/details/{run_id}")


def schedule(
    host: str,
    cron: str,
    package: str | Path = DEFAULT_PACKAGE,
    params: Sequence[str] = (),
    name: str | None = None,
    experiment: str = DEFAULT_EXPERIMENT,
    max_concurrency: int = 1,
    no_catchup: bool = False,
    timeouts: tuple[float, float] = TIMEOUTS,
    namespace: str | None = None,
) -> RecurringRunInfo:
    """Create an enabled recurring run; a name already taken in the experiment is refused."""
    cron = check_cron(cron)
    if not 1 <= max_concurrency <= 10:
        raise RemoteError(f"--max-concurrency must be between 1 and 10 (KFP's limit), got {max_concurrency}")
    spec = read_package(package)
    arguments = parse_params(spec, params)
    name = name or spec["pipelineInfo"]["name"]
    session = Session(host, timeouts, namespace)
    experiment_id = session.experiment_id(experiment, create=True)
    taken = [rr.recurring_run_id for rr in session.recurring_runs(experiment_id) if rr.display_name == name]
    if taken:
        raise RemoteError(
            f"a recurring run named '{name}' already exists in experiment '{experiment}' "
            f"({', '.join(taken)}): choose another --name or `hipo unschedule` it first"
        )
    with _calls(session.host, "create the recurring run"):
        created = session.client.create_recurring_run(
            experiment_id, name, cron_expression=cron, max_concurrency=max_concurrency,
            no_catchup=no_catchup, params=arguments, pipeline_package_path=str(package),
        )  # fmt: skip
    return _recurring_info(created)


def list_runs(
    host: str,
    experiment: str | None = None,
    limit: int = 20,
    timeouts: tuple[float, float] = TIMEOUTS,
    namespace: str | None = None,
) -> tuple[list[RunInfo], list[RecurringRunInfo]]:
    """The newest ``limit`` runs and recurring runs (of one experiment, or all)."""
    if limit < 1:
        raise RemoteError(f"--limit must be at least 1, got {limit}")
    session = Session(host, timeouts, namespace)
    experiment_id = session.experiment_id(experiment, create=False) if experiment else None
    with _calls(session.host, "list runs"):
        page = session.client.list_runs(
            page_size=limit, sort_by="created_at desc", experiment_id=experiment_id
        )
    runs = [
        RunInfo(r.run_id, r.display_name or "", r.state or "-", _when(r.created_at), _when(r.finished_at))
        for r in page.runs or []
    ]
    return runs, [_recurring_info(rr) for rr in session.recurring_runs(experiment_id, limit)]


def unschedule(
    host: str, name_or_id: str, timeouts: tuple[float, float] = TIMEOUTS, namespace: str | None = None
) -> RecurringRunInfo:
    """Disable, then delete, the recurring run with this id or (unique) display name."""
    session = Session(host, timeouts, namespace)
    every = session.recurring_runs()
    matches = [rr for rr in every if rr.recurring_run_id == name_or_id] or [
        rr for rr in every if rr.display_name == name_or_id
    ]
    if not matches:
        known = ", ".join(f"{rr.display_name} ({rr.recurring_run_id})" for rr in every) or "none"
        raise RemoteError(
            f"no recurring run with id or name '{name_or_id}' on {session.host}; there are: {known}"
        )
    if len(matches) > 1:
        ids = ", ".join(rr.recurring_run_id for rr in matches)
        raise RemoteError(f"{len(matches)} recurring runs are named '{name_or_id}': pass one id ({ids})")
    target = matches[0]
    with _calls(session.host, f"disable recurring run {target.recurring_run_id}"):
        session.client.disable_recurring_run(target.recurring_run_id)
    with _calls(session.host, f"delete recurring run {target.recurring_run_id}"):
        session.client.delete_recurring_run(target.recurring_run_id)
    return _recurring_info(target)

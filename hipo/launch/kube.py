"""Run one training job on a cluster: create it (or re-attach to it), watch it to the end, explain failures.

The watch survives dropped connections (it resumes from the last resourceVersion it saw) and expired
history (410 Gone: it lists the job again and watches from the list's resourceVersion). A deadline
bounds the whole wait. When the deadline passes, or the user cancels (Ctrl-C, or a SIGTERM that
``hipo.launch.run_state`` traces to a terminated run), the job is deleted so it does not hold GPUs; a
SIGTERM from an eviction or a node drain leaves it running for the retried step to reattach to. The
watch is read in a daemon thread while the main thread waits on it in short steps, so a cancel or the
deadline is acted on within a second even when no event comes. Only the API calls in
``hipo.launch.permissions.LAUNCHER_RULES`` are made.
"""

from __future__ import annotations

import contextlib
import json
import queue
import signal
import sys
import threading
import time
from collections import Counter
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any

from hipo.config import KubeEnv, kube_env
from hipo.launch.manifests import DIGEST_LABEL, JOB_LABEL, PYTORCH_CONTAINER, REPLICATED_JOB
from hipo.launch.run_state import Stop, pod_namespace, why_stopped

LOG_TAIL_LINES = 50
MAX_EVENTS = 10
WATCH_TIMEOUT_S = 300  # server-side end of one watch request; the loop then resumes it
API_TIMEOUT_S = 30.0  # a short API call (create, get, list, delete, log) that takes longer has failed
_RECONNECT_BACKOFF_S = (0.2, 0.5, 1.0, 2.0, 5.0)
_POLL_S = 0.5  # how long the main thread waits for a watch event before it looks at cancel and deadline
POD_CHECK_S = 15.0  # between watch events, how often the job's pods are looked at (image pulls)
PULL_GRACE_S = 300.0  # how long a pod may wait on its image before the step fails
# container waiting reasons that do not resolve themselves (ErrImagePull may: it gets the grace)
_STUCK = (
    "ErrImagePull",
    "ImagePullBackOff",
    "InvalidImageName",
    "ErrImageNeverPull",
    "CreateContainerConfigError",
)


class LaunchError(RuntimeError):
    """A training job could not be created, failed, or ran out of time; the message says why."""


class StuckPod(Exception):
    """A pod of the job waits on something that will not come by itself (an image it cannot pull)."""

    def __init__(self, pod: str, reason: str, message: str) -> None:
        super().__init__(f"{pod}: {reason}: {message}")
        self.pod, self.reason, self.message = pod, reason, message


class StepCancelled(BaseException):
    """The step was asked to stop (SIGTERM); a BaseException so that no ``except Exception`` eats it."""


@dataclass(frozen=True)
class JobKind:
    group: str
    version: str
    plural: str
    kind: str
    container: str  # the training container, for logs


TRAINJOB = JobKind("trainer.kubeflow.org", "v1alpha1", "trainjobs", "TrainJob", REPLICATED_JOB)
PYTORCHJOB = JobKind("kubeflow.org", "v1", "pytorchjobs", "PyTorchJob", PYTORCH_CONTAINER)
JOB_KINDS = {"trainjob": TRAINJOB, "pytorchjob": PYTORCHJOB}


@dataclass(frozen=True)
class JobState:
    phase: str  # Succeeded, Failed, or the latest non-terminal condition (Created, Running, ...)
    reason: str = ""
    message: str = ""

    @property
    def finished(self) -> bool:
        return self.phase in ("Succeeded", "Failed")


def job_state(obj: dict[str, Any]) -> JobState:
    """The phase of a TrainJob (conditions Complete/Failed/Suspended, child jobs in jobsStatus) or a
    PyTorchJob (conditions Created/Running/Restarting/Succeeded/Failed)."""
    status = obj.get("status") or {}
    true = [c for c in status.get("conditions") or [] if c.get("status") == "True"]
    by_type = {c.get("type"): c for c in true}
    for kind, phase in (("Failed", "Failed"), ("Complete", "Succeeded"), ("Succeeded", "Succeeded")):
        if kind in by_type:
            c = by_type[kind]
            return JobState(phase, c.get("reason", ""), c.get("message", ""))
    if "Suspended" in by_type:
        return JobState("Suspended", by_type["Suspended"].get("reason", ""))
    if any(j.get("active") or j.get("ready") for j in status.get("jobsStatus") or []):
        return JobState("Running")
    if true:
        return JobState(true[-1].get("type", "Created"), true[-1].get("reason", ""))
    return JobState("Created")


def api_client(env: KubeEnv | None = None) -> Any:
    """A kubernetes ApiClient: the pod's service account in a cluster, else the kubeconfig."""
    from kubernetes import client, config

    env = env or kube_env()
    configuration = client.Configuration()
    try:
        if env.in_cluster:
            config.load_incluster_config(client_configuration=configuration)
        else:
            config.load_kube_config(config_file=env.kubeconfig, client_configuration=configuration)
    except (config.ConfigException, OSError) as error:
        where = "the pod's service account" if env.in_cluster else (env.kubeconfig or "~/.kube/config")
        raise LaunchError(
            f"cannot load Kubernetes credentials from {where}: {error}. Set KUBECONFIG to a kubeconfig for "
            "the cluster, or set launch.backend=local to train in this process"
        ) from None
    return client.ApiClient(configuration)


def default_namespace(env: KubeEnv | None = None) -> str:
    """Where jobs go when ``launch.namespace`` is empty: in a pod, the pod's own namespace (with
    multi-user Kubeflow, the profile namespace the step runs in); elsewhere the kubeconfig context's."""
    from kubernetes import config

    env = env or kube_env()
    if env.in_cluster:
        namespace = pod_namespace()
        if not namespace:
            raise LaunchError(
                "running in a pod, but its service-account namespace file is missing: set "
                "launch.namespace to the namespace the training jobs should run in"
            )
        return namespace
    try:
        _, active = config.list_kube_config_contexts(config_file=env.kubeconfig)
    except (config.ConfigException, OSError):
        return "default"
    return (active.get("context") or {}).get("namespace") or "default"


_sigterm = threading.Event()  # set by cancel_on_sigterm's handler, polled by raise_if_cancelled


@contextlib.contextmanager
def cancel_on_sigterm() -> Iterator[None]:
    """Turn SIGTERM into ``StepCancelled`` in the main thread while the block runs (KFP cancels a step
    by terminating its pod); elsewhere a no-op.

    Raising from the handler is not enough: when the signal lands while the main thread runs a
    finalizer (an urllib3 response that the kubernetes client drops is closed in ``IOBase.__del__``),
    CPython discards the exception. So the handler also sets a flag, which ``raise_if_cancelled``
    turns into ``StepCancelled`` at the next check."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return

    def handler(signum: int, frame: Any) -> None:
        _sigterm.set()
        raise StepCancelled(f"received signal {signum}")

    _sigterm.clear()
    previous = signal.signal(signal.SIGTERM, handler)
    try:
        yield
    finally:
        signal.signal(signal.SIGTERM, previous)
        _sigterm.clear()


def raise_if_cancelled() -> None:
    """``StepCancelled`` if SIGTERM came inside ``cancel_on_sigterm``, even if its own raise was lost."""
    if _sigterm.is_set():
        raise StepCancelled(f"received signal {signal.SIGTERM.value}")


def _say(line: str) -> None:
    print(line, file=sys.stderr, flush=True)


def _no_answer() -> tuple[type[Exception], ...]:
    """What a call raises when the API server sent no HTTP answer (timeout, refused or dropped)."""
    import urllib3

    return (urllib3.exceptions.HTTPError, ConnectionError)


def _api_problem(error: Any, action: str) -> str:
    if not hasattr(error, "status"):  # no HTTP answer: a timeout or a dropped connection
        return f"{action} failed: {type(error).__name__}: {error}"
    reason = getattr(error, "reason", "") or ""
    body = getattr(error, "body", "") or ""
    with contextlib.suppress(ValueError, TypeError, AttributeError):
        body = json.loads(body).get("message") or body  # the Status the API server sent: its message
    hint = {
        401: "the credentials were refused: refresh the kubeconfig or the service-account token",
        403: "the step's service account lacks this permission: apply the Role hipo-launcher to this "
        "namespace (kubectl apply -k manifests/overlays/profile for a Kubeflow profile namespace, "
        "docs/deploy.md)",
        404: "this API is not served: its CRD is not installed. Install Kubeflow Trainer v2 for "
        "launch.backend=trainjob or the Training Operator v1 for pytorchjob (docs/deploy.md)",
        422: "the request was refused as invalid: for a TrainJob the usual cause is a runtimeRef to a "
        "ClusterTrainingRuntime that does not exist; install it (kubectl apply -k manifests/overlays/"
        "<dev|prod>) or set launch.runtime to one that does (kubectl get clustertrainingruntimes)",
    }.get(getattr(error, "status", 0), "")
    return f"{action} failed: HTTP {getattr(error, 'status', '?')} {reason} {body}".strip() + (
        f" ({hint})" if hint else ""
    )


class JobRunner:
    """Creates, watches and (on cancel or deadline) deletes one training job of ``kind``."""

    def __init__(
        self,
        api: Any,
        kind: JobKind,
        namespace: str,
        deadline_s: float,
        say: Callable[[str], None] = _say,
        watch_timeout_s: int = WATCH_TIMEOUT_S,
        api_timeout_s: float = API_TIMEOUT_S,
        pull_grace_s: float = PULL_GRACE_S,
        pod_check_s: float = POD_CHECK_S,
    ) -> None:
        from kubernetes import client

        self.api = api
        self.custom = client.CustomObjectsApi(api)
        self.core = client.CoreV1Api(api)
        self.host = api.configuration.host
        self.kind, self.namespace, self.deadline_s = kind, namespace, deadline_s
        self.say, self.watch_timeout_s = say, watch_timeout_s
        self.api_timeout_s = api_timeout_s
        self._timeout = {"_request_timeout": (min(10.0, api_timeout_s), api_timeout_s)}
        self.pull_grace_s, self.pod_check_s = pull_grace_s, pod_check_s
        self._last_phase: str | None = None
        self._last_pods: str | None = None
        self._stuck_since: float | None = None

    def _ref(self) -> dict[str, str]:
        k = self.kind
        return {"group": k.group, "version": k.version, "namespace": self.namespace, "plural": k.plural}

    def _unreachable(self, name: str, error: Exception) -> LaunchError:
        return LaunchError(
            f"{self.kind.kind} {self.namespace}/{name}: the Kubernetes API at {self.host} did not answer "
            f"(within {self.api_timeout_s:g} s per request; {type(error).__name__}: {error}). Check the "
            "network path to the API server and its health; a job already created keeps running, and "
            "retrying the step attaches to it"
        )

    def run(self, body: dict[str, Any]) -> dict[str, Any]:
        """Create ``body`` (or attach to the job of that name) and return it once it has succeeded."""
        from kubernetes.client.rest import ApiException

        name = body["metadata"]["name"]
        deadline = time.monotonic() + self.deadline_s
        try:
            obj = self._create_or_attach(body, deadline)
            return self._wait(name, obj, deadline)
        except KeyboardInterrupt:
            self.say(f"{self.kind.kind} {name}: step cancelled (interrupted), deleting the job")
            self.delete(name)
            raise
        except StepCancelled:
            self._stopped(name)
            raise
        except StuckPod as stuck:
            self.delete(name)
            raise LaunchError(
                f"{self.kind.kind} {self.namespace}/{name}: pod {stuck.pod} cannot start ({stuck.reason}: "
                f"{stuck.message}); the job was deleted. Check that the image exists and was pushed (make "
                "images; docker push), that the nodes may pull it (imagePullSecrets: hipo compile "
                "--image-pull-secret), and that the Secrets it reads exist in this namespace"
            ) from None
        except TimeoutError:
            self.delete(name)
            raise LaunchError(
                f"{self.kind.kind} {self.namespace}/{name} did not finish within {self.deadline_s:g} s "
                f"(launch.deadline_s; last phase {self._last_phase}): the job was deleted. Raise the "
                "deadline or reduce the training steps"
            ) from None
        except ApiException as error:
            raise LaunchError(
                f"{self.kind.kind} {self.namespace}/{name}: {_api_problem(error, 'a call')}"
            ) from None
        except _no_answer() as error:
            raise self._unreachable(name, error) from None

    def _stopped(self, name: str) -> None:
        """SIGTERM: delete the job on a user's cancel only; an evicted or drained step leaves it running."""
        stop, why = why_stopped(self.api, pod_namespace() or self.namespace)
        if stop is Stop.CANCELLED:
            self.say(f"{self.kind.kind} {name}: step cancelled ({why}), deleting the job")
            self.delete(name)
            return
        self.say(
            f"{self.kind.kind} {self.namespace}/{name}: the step got SIGTERM but {stop.value} ({why}): "
            "the job keeps running and the retried step reattaches to it. To stop it, terminate the run "
            f"in KFP or: kubectl delete {self.kind.plural} {name} -n {self.namespace}"
        )

    def delete(self, name: str) -> None:
        """Delete the job and (foreground) its pods; a job that is already gone is fine."""
        from kubernetes.client.rest import ApiException

        try:
            self.custom.delete_namespaced_custom_object(
                **self._ref(), name=name, body={"propagationPolicy": "Foreground"}, **self._timeout
            )
            self.say(f"{self.kind.kind} {name}: deleted")
        except ApiException as error:
            if error.status != 404:
                self.say(f"{self.kind.kind} {name}: could not delete it: {_api_problem(error, 'delete')}")
        except _no_answer() as error:
            self.say(f"{self.kind.kind} {name}: could not delete it: {self._unreachable(name, error)}")

    def _create_or_attach(self, body: dict[str, Any], deadline: float) -> dict[str, Any]:
        from kubernetes.client.rest import ApiException

        name = body["metadata"]["name"]
        try:
            obj = self.custom.create_namespaced_custom_object(**self._ref(), body=body, **self._timeout)
            self.say(f"{self.kind.kind} {self.namespace}/{name}: created")
            return obj
        except ApiException as error:
            if error.status != 409:
                raise LaunchError(
                    f"creating {self.kind.kind} {name}: {_api_problem(error, 'create')}"
                ) from None
        existing = self.custom.get_namespaced_custom_object(**self._ref(), name=name, **self._timeout)
        self._check_same_task(body, existing)
        state = job_state(existing)
        if state.phase != "Failed":
            self.say(f"{self.kind.kind} {name}: already exists ({state.phase}), attaching to it")
            return existing
        self.say(f"{self.kind.kind} {name}: a previous attempt failed ({state.reason}); replacing it")
        self.delete(name)
        self._wait_gone(name, deadline)
        return self._create_or_attach(body, deadline)

    def _check_same_task(self, body: dict[str, Any], existing: dict[str, Any]) -> None:
        """Attach only to a job made for this very task (a retry of this step): same digest label."""
        wanted = (body["metadata"].get("labels") or {}).get(DIGEST_LABEL)
        found = (existing["metadata"].get("labels") or {}).get(DIGEST_LABEL)
        if wanted != found:
            name = body["metadata"]["name"]
            raise LaunchError(
                f"{self.kind.kind} {self.namespace}/{name} already exists but was made for another task "
                f"or other inputs (its {DIGEST_LABEL} is {found!r}, this step's {wanted!r}); it is left "
                f"alone. Delete it if it is stale (kubectl delete {self.kind.plural} {name} -n "
                f"{self.namespace}) or start a new run"
            )

    def _wait_gone(self, name: str, deadline: float) -> None:
        from kubernetes.client.rest import ApiException

        while True:
            raise_if_cancelled()
            try:
                self.custom.get_namespaced_custom_object(**self._ref(), name=name, **self._timeout)
            except ApiException as error:
                if error.status == 404:
                    return
                raise
            if time.monotonic() > deadline:
                raise TimeoutError
            time.sleep(0.5)

    def _relist(self, name: str) -> tuple[dict[str, Any], str]:
        listed = self.custom.list_namespaced_custom_object(
            **self._ref(), field_selector=f"metadata.name={name}", **self._timeout
        )
        if not listed.get("items"):
            raise LaunchError(f"{self.kind.kind} {self.namespace}/{name} was deleted while the step waited")
        return listed["items"][0], listed["metadata"]["resourceVersion"]

    def _wait(self, name: str, obj: dict[str, Any], deadline: float) -> dict[str, Any]:
        """Watch ``name`` from ``obj``'s resourceVersion until it finishes; resumes dropped watches."""
        from kubernetes import watch
        from kubernetes.client.rest import ApiException

        rv = obj["metadata"]["resourceVersion"]
        failures = 0
        while True:
            raise_if_cancelled()
            if self._observe(name, obj):
                return obj
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                raise TimeoutError
            window = max(1, min(int(remaining) + 1, self.watch_timeout_s))
            stream = watch.Watch().stream(
                self.custom.list_namespaced_custom_object, **self._ref(),
                field_selector=f"metadata.name={name}", resource_version=rv, allow_watch_bookmarks=True,
                timeout_seconds=window, _request_timeout=(10, window + 30),
            )  # fmt: skip
            try:
                with contextlib.closing(_read_in_thread(stream, deadline, self.pod_check_s)) as events:
                    for event in events:
                        if event is None:  # no event for pod_check_s: look at the pods anyway
                            if self._observe(name, obj):
                                return obj
                            continue
                        failures = 0
                        rv = event["raw_object"]["metadata"]["resourceVersion"]
                        if event["type"] == "DELETED":
                            raise LaunchError(
                                f"{self.kind.kind} {self.namespace}/{name} was deleted by someone else"
                            )
                        if event["type"] != "BOOKMARK":
                            obj = event["raw_object"]
                            if self._observe(name, obj):
                                return obj
            except ApiException as error:
                if error.status != 410:
                    raise
                self.say(f"{self.kind.kind} {name}: watch history expired (410 Gone), listing again")
                obj, rv = self._relist(name)
            except _no_answer() as error:
                pause = _RECONNECT_BACKOFF_S[min(failures, len(_RECONNECT_BACKOFF_S) - 1)]
                failures += 1
                self.say(f"{self.kind.kind} {name}: watch connection lost ({type(error).__name__}), resuming")
                time.sleep(min(pause, max(0.0, deadline - time.monotonic())))

    def _observe(self, name: str, obj: dict[str, Any]) -> bool:
        """Report phase and pod changes; True when the job succeeded, LaunchError when it failed."""
        state = job_state(obj)
        if state.phase != self._last_phase:
            detail = f" ({state.reason}: {state.message})" if state.reason or state.message else ""
            self.say(f"{self.kind.kind} {name}: {state.phase}{detail}")
            self._last_phase = state.phase
        pods = self._pods(name)
        counts = ", ".join(f"{n} {p}" for p, n in sorted(Counter(p.status.phase for p in pods).items()))
        if counts and counts != self._last_pods:
            self.say(f"{self.kind.kind} {name}: pods {counts}")
            self._last_pods = counts
        if state.phase == "Failed":
            raise LaunchError(self._explain_failure(name, state, pods))
        if state.phase != "Succeeded":
            self._check_stuck(pods)
        return state.phase == "Succeeded"

    def _check_stuck(self, pods: list[Any]) -> None:
        """StuckPod once a pod has waited on an image (or a missing Secret) for ``pull_grace_s``."""
        stuck = [
            (pod.metadata.name, s.state.waiting)
            for pod in pods
            for s in pod.status.container_statuses or []
            if s.state and s.state.waiting and s.state.waiting.reason in _STUCK
        ]
        if not stuck:
            self._stuck_since = None
            return
        now = time.monotonic()
        self._stuck_since = self._stuck_since or now
        if now - self._stuck_since >= self.pull_grace_s:
            pod, waiting = stuck[0]
            raise StuckPod(pod, waiting.reason, waiting.message or "")

    def _pods(self, name: str) -> list[Any]:
        return self.core.list_namespaced_pod(
            self.namespace, label_selector=f"{JOB_LABEL}={name}", **self._timeout
        ).items

    def _explain_failure(self, name: str, state: JobState, pods: list[Any]) -> str:
        """The job's failure condition, the log tail of its failed pods, and recent events."""
        from kubernetes.client.rest import ApiException

        unanswered = (ApiException, *_no_answer())

        lines = [f"{self.kind.kind} {self.namespace}/{name} failed: {state.reason}: {state.message}"]
        failed = [p for p in pods if _pod_failed(p)] or pods
        for pod in failed[:2]:
            try:
                log = self.core.read_namespaced_pod_log(
                    pod.metadata.name,
                    self.namespace,
                    container=self.kind.container,
                    tail_lines=LOG_TAIL_LINES,
                    **self._timeout,
                )
            except unanswered as error:
                log = f"(no log: {_api_problem(error, 'reading the log')})"
            lines += [f"--- last {LOG_TAIL_LINES} log lines of pod {pod.metadata.name} ---", log.rstrip()]
        events = []
        for involved in (name, *(p.metadata.name for p in failed[:2])):
            try:
                selector = f"involvedObject.name={involved}"
                events += self.core.list_namespaced_event(
                    self.namespace, field_selector=selector, **self._timeout
                ).items
            except unanswered as error:
                lines.append(f"(events unavailable: {_api_problem(error, 'listing events')})")
                break
        if events:
            events.sort(key=_event_time)
            lines.append("--- recent events ---")
            lines += [
                f"{e.type} {e.reason} {e.involved_object.kind}/{e.involved_object.name}: {e.message}"
                for e in events[-MAX_EVENTS:]
            ]
        return "\n".join(lines)


def _read_in_thread(
    stream: Iterator[dict[str, Any]], deadline: float, tick_s: float
) -> Iterator[dict[str, Any] | None]:
    """The events of ``stream``, read by a daemon thread; its errors are raised here; ``None`` after
    ``tick_s`` without an event. Meanwhile this thread waits in ``_POLL_S`` steps: SIGTERM interrupts
    the wait, and a cancel whose raise was lost (see ``cancel_on_sigterm``) or the deadline ends it
    without waiting for the next event. Once this
    generator is closed the reader stops after its next event (the deletion of the job, on cancel and
    deadline) or at the end of the watch request."""
    items: queue.Queue[tuple[str, Any]] = queue.Queue()
    stop = threading.Event()

    def read() -> None:
        try:
            for event in stream:
                items.put(("event", event))
                if stop.is_set():
                    return
        except Exception as error:  # urllib3 and API errors go to the waiting thread, which handles them
            items.put(("error", error))
        else:
            items.put(("end", None))

    threading.Thread(target=read, name="kube-watch", daemon=True).start()
    last = time.monotonic()
    try:
        while True:
            raise_if_cancelled()
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                raise TimeoutError
            try:
                kind, item = items.get(timeout=min(_POLL_S, remaining))
            except queue.Empty:
                if time.monotonic() - last >= tick_s:
                    last = time.monotonic()
                    yield None
                continue
            last = time.monotonic()
            if kind == "end":
                return
            if kind == "error":
                raise item
            yield item
    finally:
        stop.set()


def _pod_failed(pod: Any) -> bool:
    if pod.status.phase == "Failed":
        return True
    statuses = pod.status.container_statuses or []
    return any(s.state and s.state.terminated and s.state.terminated.exit_code for s in statuses)


def _event_time(event: Any) -> str:
    when = event.last_timestamp or event.event_time or event.metadata.creation_timestamp
    return when.isoformat() if when else ""

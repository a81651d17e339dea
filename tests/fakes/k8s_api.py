"""A faithful protocol-level fake of the Kubernetes API server, for the launcher's tests on loopback.

Real HTTP (``ThreadingHTTPServer`` on a free 127.0.0.1 port, bearer-token auth) with the API's JSON
shapes for what the launcher touches:

- custom objects under ``/apis/<group>/<version>/namespaces/<ns>/<plural>`` (trainjobs, pytorchjobs):
  create (201; 409 ``AlreadyExists``), get (404 ``NotFound``), list (``fieldSelector=metadata.name=``,
  list ``resourceVersion``), delete (``propagationPolicy``; pods owned by the job go with it), and
  ``?watch=true``: newline-delimited ``{"type", "object"}`` events after ``resourceVersion`` over a
  chunked response that ends after ``timeoutSeconds``; BOOKMARK events when asked for; a version
  older than the compacted history gets an ``ERROR`` event holding a 410 ``Expired`` Status;
- ``/api/v1/namespaces/<ns>/pods`` (``labelSelector`` with ``k=v`` terms), ``pods/<name>`` (get),
  ``pods/<name>/log`` (``container``, ``tailLines``), ``events`` (``fieldSelector=involvedObject.name=``);
- Argo ``workflows`` (what KFP runs a pipeline run as), created by the test with ``create``.

Like the real server it can refuse: with ``grants`` (the (group, resource, verb) triples of the caller's
Role) any other call is 403 ``Forbidden``; a resource not in ``served`` (its CRD not installed) is 404;
with ``runtimes`` a TrainJob whose ``runtimeRef`` names another ClusterTrainingRuntime is denied by the
Trainer's admission webhook (422 ``Invalid``, as Trainer v2.3.0's validator words it).

Every request is recorded in ``calls`` as the RBAC verb, API group and resource the real server
would authorise it against. Job lifecycles are scripted (``script``): a list of steps, each applied
once the client has received the job's previous version (so every phase is observed in order).
``drop_next_watch`` cuts the next watch stream mid-response (no chunk terminator), optionally after
compacting the history so that resuming hits 410 Gone. ``stall_next`` holds one request for a while
before serving it (a server that accepted the connection and does not answer in time).
"""

from __future__ import annotations

import copy
import json
import re
import socket
import threading
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlparse

KINDS = {"trainjobs": "TrainJob", "pytorchjobs": "PyTorchJob", "workflows": "Workflow"}
_CUSTOM = re.compile(r"^/apis/([^/]+)/([^/]+)/namespaces/([^/]+)/([^/]+)(?:/([^/]+))?$")
_CORE = re.compile(r"^/api/v1/namespaces/([^/]+)/(pods|events)(?:/([^/]+))?(?:/(log))?$")


def _now() -> str:
    return datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def status(code: int, reason: str, message: str) -> dict[str, Any]:
    """A ``meta/v1 Status`` failure object, as the API server sends with an error."""
    return {
        "kind": "Status",
        "apiVersion": "v1",
        "metadata": {},
        "status": "Failure",
        "message": message,
        "reason": reason,
        "code": code,
    }


@dataclass(frozen=True)
class Call:
    verb: str
    group: str
    resource: str
    name: str = ""


@dataclass
class _Fault:
    after_events: int
    compact: bool


JobKey = tuple[str, str, str, str]  # (group, namespace, plural, name)
Step = Callable[["FakeKubeAPI", JobKey], None]


@dataclass
class _State:
    rv: int = 0
    compacted: int = 0
    objects: dict[JobKey, dict[str, Any]] = field(default_factory=dict)
    history: list[tuple[int, str, JobKey, dict[str, Any]]] = field(default_factory=list)
    delivered: dict[JobKey, int] = field(default_factory=dict)
    pods: dict[tuple[str, str], dict[str, Any]] = field(default_factory=dict)
    logs: dict[tuple[str, str, str], str] = field(default_factory=dict)
    events: list[dict[str, Any]] = field(default_factory=list)


class FakeKubeAPI:
    def __init__(
        self,
        token: str = "fake-token",
        grants: set[tuple[str, str, str]] | None = None,
        served: set[str] | None = None,
        runtimes: set[str] | None = None,
        user: str = "system:serviceaccount:team-a:default-editor",
    ) -> None:
        self.token = token
        self.grants, self.user = grants, user
        self.served = set(KINDS) if served is None else served
        self.runtimes = runtimes
        self.calls: list[Call] = []
        self.created: list[dict[str, Any]] = []  # bodies as the client sent them
        self.deletes: list[tuple[str, dict[str, Any]]] = []  # (name, DeleteOptions body)
        self._state = _State()
        self._changed = threading.Condition()
        self._scripts: dict[str, list[list[Step]]] = {}
        self.default_script: list[Step] = []  # for a created job that no script() names
        self._faults: list[_Fault] = []
        self._stalls: list[tuple[str, str, float]] = []  # (method, resource, seconds)
        self._stopping = threading.Event()
        self._server = ThreadingHTTPServer(("127.0.0.1", 0), _handler(self))
        self._server.daemon_threads = True
        self._thread = threading.Thread(target=self._server.serve_forever, daemon=True)

    # ------------------------------------------------------------------ lifecycle of the fake
    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self._server.server_address[1]}"

    def start(self) -> FakeKubeAPI:
        self._thread.start()
        return self

    def stop(self) -> None:
        self._stopping.set()
        with self._changed:
            self._changed.notify_all()
        self._server.shutdown()
        self._server.server_close()

    def write_kubeconfig(self, path: Path, namespace: str = "default") -> Path:
        cluster = {"name": "fake", "cluster": {"server": self.url}}
        context = {"name": "fake", "context": {"cluster": "fake", "user": "fake", "namespace": namespace}}
        config = {
            "apiVersion": "v1",
            "kind": "Config",
            "clusters": [cluster],
            "contexts": [context],
            "users": [{"name": "fake", "user": {"token": self.token}}],
            "current-context": "fake",
        }
        path.write_text(json.dumps(config))  # JSON is YAML
        return path

    # ------------------------------------------------------------------ scripting
    def script(self, name: str, steps: list[Step]) -> None:
        """Steps for the next creation of the job ``name``, applied one by one after it is created
        (each call scripts one more creation of that name)."""
        self._scripts.setdefault(name, []).append(list(steps))

    def drop_next_watch(self, after_events: int = 1, compact: bool = False) -> None:
        """Cut the next watch stream after ``after_events`` events; ``compact``: forget the history first."""
        self._faults.append(_Fault(after_events, compact))

    def stall_next(self, method: str, resource: str, seconds: float) -> None:
        """Hold the next ``method`` request on ``resource`` (``trainjobs``, ``pods``, ...) for ``seconds``,
        then serve it as usual (so a create the client gave up on still creates the job)."""
        self._stalls.append((method, resource, seconds))

    def _stall(self, method: str, path: str) -> None:
        with self._changed:
            match = next((s for s in self._stalls if s[0] == method and f"/{s[1]}" in path), None)
            if match:
                self._stalls.remove(match)
        if match:
            self._stopping.wait(match[2])

    def job(self, plural: str, name: str, namespace: str = "default") -> dict[str, Any] | None:
        with self._changed:
            return next(
                (
                    copy.deepcopy(o)
                    for k, o in self._state.objects.items()
                    if k[2] == plural and k[3] == name and k[1] == namespace
                ),
                None,
            )

    def wait_for(self, predicate: Callable[[], bool], timeout: float = 30.0) -> bool:
        with self._changed:
            return self._changed.wait_for(predicate, timeout)

    def set_job_status(self, key: JobKey, job_status: dict[str, Any]) -> None:
        with self._changed:
            obj = self._state.objects[key]
            obj["status"] = job_status
            self._record("MODIFIED", key, obj)

    def add_pod(
        self,
        key: JobKey,
        name: str,
        phase: str,
        log: str = "",
        exit_code: int | None = None,
        waiting: tuple[str, str] | None = None,
    ) -> None:
        """A pod of job ``key`` with the labels of the job's pod template and the controller's own;
        ``waiting``: the (reason, message) its container waits with (e.g. an image it cannot pull)."""
        with self._changed:
            job = self._state.objects[key]
            container = "node" if key[2] == "trainjobs" else "pytorch"
            labels = {**_template_labels(job), _controller_label(key): key[3]}
            state: dict[str, Any] = {"running": {"startedAt": _now()}}
            if exit_code is not None:
                state = {
                    "terminated": {"exitCode": exit_code, "reason": "Error" if exit_code else "Completed"}
                }
            if waiting is not None:
                state = {"waiting": {"reason": waiting[0], "message": waiting[1]}}
            pod = {
                "apiVersion": "v1",
                "kind": "Pod",
                "metadata": {
                    "name": name,
                    "namespace": key[1],
                    "labels": labels,
                    "uid": str(uuid.uuid4()),
                    "ownerReferences": [
                        {
                            "apiVersion": job["apiVersion"],
                            "kind": job["kind"],
                            "name": key[3],
                            "uid": job["metadata"]["uid"],
                        }
                    ],
                    "creationTimestamp": _now(),
                },
                "spec": {"containers": [{"name": container, "image": "train"}]},
                "status": {
                    "phase": phase,
                    "containerStatuses": [
                        {
                            "name": container,
                            "ready": phase == "Running",
                            "restartCount": 0,
                            "image": "train",
                            "imageID": "",
                            "state": state,
                        }
                    ],
                },
            }
            self._state.pods[(key[1], name)] = pod
            self._state.logs[(key[1], name, container)] = log
            self._changed.notify_all()

    def add_step_pod(self, namespace: str, name: str, labels: dict[str, str]) -> None:
        """A pipeline step's own pod (what KFP and Argo create; the launcher reads its labels)."""
        with self._changed:
            self._state.pods[(namespace, name)] = {
                "apiVersion": "v1",
                "kind": "Pod",
                "metadata": {
                    "name": name,
                    "namespace": namespace,
                    "labels": labels,
                    "uid": str(uuid.uuid4()),
                },
                "spec": {"containers": [{"name": "main", "image": "step"}]},
                "status": {"phase": "Running"},
            }

    def add_event(
        self, namespace: str, kind: str, name: str, reason: str, message: str, type_: str = "Warning"
    ) -> None:
        with self._changed:
            self._state.events.append(
                {
                    "apiVersion": "v1",
                    "kind": "Event",
                    "metadata": {"name": f"{name}.{uuid.uuid4().hex[:8]}", "namespace": namespace},
                    "involvedObject": {"kind": kind, "name": name, "namespace": namespace},
                    "reason": reason,
                    "message": message,
                    "type": type_,
                    "count": 1,
                    "firstTimestamp": _now(),
                    "lastTimestamp": _now(),
                    "source": {"component": "fake"},
                }
            )

    # ------------------------------------------------------------------ store internals (lock held)
    def _record(self, kind: str, key: JobKey, obj: dict[str, Any]) -> None:
        self._state.rv += 1
        obj["metadata"]["resourceVersion"] = str(self._state.rv)
        self._state.history.append((self._state.rv, kind, key, copy.deepcopy(obj)))
        self._changed.notify_all()

    def _delivered(self, key: JobKey, rv: str) -> None:
        with self._changed:
            self._state.delivered[key] = max(self._state.delivered.get(key, 0), int(rv))
            self._changed.notify_all()

    def _run_script(self, key: JobKey, steps: list[Step]) -> None:
        for step in steps:
            with self._changed:
                obj = self._state.objects.get(key)
                if obj is None:
                    return
                rv = int(obj["metadata"]["resourceVersion"])
                self._changed.wait_for(
                    lambda rv=rv: self._stopping.is_set()
                    or self._state.delivered.get(key, 0) >= rv
                    or key not in self._state.objects
                )
                if self._stopping.is_set() or key not in self._state.objects:
                    return
            step(self, key)

    def create(self, group: str, version: str, ns: str, plural: str, body: dict[str, Any]) -> tuple[int, Any]:
        name = (body.get("metadata") or {}).get("name", "")
        expected = (f"{group}/{version}", KINDS.get(plural))
        if (body.get("apiVersion"), body.get("kind")) != expected or not name:
            return 422, status(
                422,
                "Invalid",
                f"{plural}: expected {expected} with metadata.name, got "
                f"{(body.get('apiVersion'), body.get('kind'))} named {name!r}",
            )
        if body["metadata"].get("namespace", ns) != ns:
            return 400, status(
                400, "BadRequest", "the namespace of the object does not match the namespace of the URL"
            )
        runtime = ((body.get("spec") or {}).get("runtimeRef") or {}).get("name")
        if plural == "trainjobs" and self.runtimes is not None and runtime not in self.runtimes:
            message = (
                f'admission webhook "validator.trainjob.trainer.kubeflow.org" denied the request: '
                f"spec.RuntimeRef: Invalid value: {runtime!r}: clustertrainingruntimes.trainer.kubeflow.org "
                f'"{runtime}" not found: specified clusterTrainingRuntime must be created before the '
                "TrainJob is created"
            )
            return 422, status(422, "Invalid", message)
        key = (group, ns, plural, name)
        with self._changed:
            if key in self._state.objects:
                return 409, status(409, "AlreadyExists", f'{plural}.{group} "{name}" already exists')
            self.created.append(copy.deepcopy(body))
            obj = copy.deepcopy(body)
            obj["metadata"].update(
                namespace=ns, uid=str(uuid.uuid4()), generation=1, creationTimestamp=_now()
            )
            self._state.objects[key] = obj
            self._record("ADDED", key, obj)
            created = copy.deepcopy(obj)
        steps = self._scripts[name].pop(0) if self._scripts.get(name) else list(self.default_script)
        if steps:
            threading.Thread(target=self._run_script, args=(key, steps), daemon=True).start()
        return 201, created

    def delete(self, key: JobKey) -> tuple[int, Any]:
        with self._changed:
            obj = self._state.objects.pop(key, None)
            if obj is None:
                return 404, status(404, "NotFound", f'{key[2]}.{key[0]} "{key[3]}" not found')
            self._record("DELETED", key, obj)
            uid = obj["metadata"]["uid"]
            for pod_key, pod in list(self._state.pods.items()):
                if any(o["uid"] == uid for o in pod["metadata"]["ownerReferences"]):
                    del self._state.pods[pod_key]
            return 200, {
                "kind": "Status",
                "apiVersion": "v1",
                "metadata": {},
                "status": "Success",
                "details": {"name": key[3], "group": key[0], "kind": key[2], "uid": uid},
            }


def _template_labels(job: dict[str, Any]) -> dict[str, str]:
    spec = job.get("spec") or {}
    if job["kind"] == "PyTorchJob":
        return spec["pytorchReplicaSpecs"]["Master"]["template"]["metadata"].get("labels", {})
    labels: dict[str, str] = {}
    for patch in spec.get("runtimePatches") or []:
        for replicated in patch["trainingRuntimeSpec"]["template"]["spec"]["replicatedJobs"]:
            labels.update(replicated["template"]["spec"]["template"].get("metadata", {}).get("labels", {}))
    return labels


def _controller_label(key: JobKey) -> str:
    return "jobset.sigs.k8s.io/jobset-name" if key[2] == "trainjobs" else "training.kubeflow.org/job-name"


def _selector(text: str) -> dict[str, str]:
    """Equality terms ``a=b,c==d``; anything else is refused (the launcher uses nothing else)."""
    terms = {}
    for term in filter(None, text.split(",")):
        match = re.fullmatch(r"([^=!]+)(==|=)(.*)", term)
        if match is None:
            raise ValueError(f"unsupported selector term {term!r}: this fake serves equality terms only")
        terms[match.group(1)] = match.group(3)
    return terms


def _handler(api: FakeKubeAPI) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def log_message(self, *args: Any) -> None:
            pass

        def _send(self, code: int, body: Any, content_type: str = "application/json") -> None:
            data = body.encode() if isinstance(body, str) else json.dumps(body).encode()
            self.send_response(code)
            self.send_header("Content-Type", content_type)
            self.send_header("Content-Length", str(len(data)))
            self.send_header("Connection", "close")
            self.end_headers()
            self.wfile.write(data)
            self.close_connection = True

        def _authorised(self) -> bool:
            if self.headers.get("Authorization") == f"Bearer {api.token}":
                return True
            self._send(401, status(401, "Unauthorized", "Unauthorized"))
            return False

        def _allowed(self, call: Call, ns: str) -> bool:
            """Record ``call``; False (after a 403 like the real authorizer's) when the Role lacks it."""
            api.calls.append(call)
            if api.grants is None or (call.group, call.resource, call.verb) in api.grants:
                return True
            resource = f"{call.resource}.{call.group}" if call.group else call.resource
            message = (
                f'{resource} is forbidden: User "{api.user}" cannot {call.verb} resource '
                f'"{call.resource}" in API group "{call.group}" in the namespace "{ns}"'
            )
            self._send(403, status(403, "Forbidden", message))
            return False

        def _route(self, method: str) -> None:
            if not self._authorised():
                return
            url = urlparse(self.path)
            query = {k: v[-1] for k, v in parse_qs(url.query).items()}
            api._stall(method, url.path)
            try:
                if m := _CUSTOM.match(url.path):
                    self._custom(method, *m.groups(), query)
                elif m := _CORE.match(url.path):
                    self._core(method, *m.groups(), query)
                else:
                    self._send(404, status(404, "NotFound", f"the server could not find {url.path}"))
            except ValueError as error:
                self._send(400, status(400, "BadRequest", str(error)))

        def do_GET(self) -> None:
            self._route("GET")

        def do_POST(self) -> None:
            self._route("POST")

        def do_DELETE(self) -> None:
            self._route("DELETE")

        def _body(self) -> Any:
            length = int(self.headers.get("Content-Length") or 0)
            return json.loads(self.rfile.read(length) or b"{}")

        def _custom(
            self,
            method: str,
            group: str,
            version: str,
            ns: str,
            plural: str,
            name: str | None,
            query: dict[str, str],
        ) -> None:
            if plural not in KINDS or plural not in api.served:  # no CRD: the API group is not served
                self._send(404, status(404, "NotFound", "the server could not find the requested resource"))
                return
            key = (group, ns, plural, name or "")
            watching = query.get("watch", "").lower() in ("true", "1")
            verb = {"POST": "create", "DELETE": "delete"}.get(method) or (
                "get" if name else "watch" if watching else "list"
            )
            if not self._allowed(Call(verb, group, plural, name or ""), ns):
                return
            if method == "POST" and not name:
                code, body = api.create(group, version, ns, plural, self._body())
                self._send(code, body)
                if code == 201:
                    api._delivered(
                        (group, ns, plural, body["metadata"]["name"]), body["metadata"]["resourceVersion"]
                    )
            elif method == "DELETE" and name:
                api.deletes.append((name, self._body()))
                self._send(*api.delete(key))
            elif method == "GET" and name:
                with api._changed:
                    obj = copy.deepcopy(api._state.objects.get(key))
                if obj is None:
                    self._send(404, status(404, "NotFound", f'{plural}.{group} "{name}" not found'))
                    return
                self._send(200, obj)
                api._delivered(key, obj["metadata"]["resourceVersion"])
            elif method == "GET" and watching:
                self._watch(group, ns, plural, query)
            elif method == "GET":
                wanted = _selector(query.get("fieldSelector", "")).get("metadata.name")
                with api._changed:
                    items = [
                        copy.deepcopy(o)
                        for k, o in api._state.objects.items()
                        if k[:3] == (group, ns, plural) and wanted in (None, k[3])
                    ]
                    rv = str(api._state.rv)
                self._send(
                    200,
                    {
                        "apiVersion": f"{group}/{version}",
                        "kind": f"{KINDS[plural]}List",
                        "metadata": {"resourceVersion": rv},
                        "items": items,
                    },
                )
                for item in items:
                    api._delivered(
                        (group, ns, plural, item["metadata"]["name"]), item["metadata"]["resourceVersion"]
                    )
            else:
                self._send(405, status(405, "MethodNotAllowed", f"{method} is not supported here"))

        def _chunk(self, line: dict[str, Any]) -> None:
            data = json.dumps(line).encode() + b"\n"
            self.wfile.write(f"{len(data):x}\r\n".encode() + data + b"\r\n")
            self.wfile.flush()

        def _watch(self, group: str, ns: str, plural: str, query: dict[str, str]) -> None:
            wanted = _selector(query.get("fieldSelector", "")).get("metadata.name")
            since = int(query.get("resourceVersion") or 0)
            timeout = float(query.get("timeoutSeconds") or 1800)
            bookmarks = query.get("allowWatchBookmarks", "").lower() in ("true", "1")
            fault = api._faults.pop(0) if api._faults else None
            self.send_response(200)
            self.send_header("Content-Type", "application/json")
            self.send_header("Transfer-Encoding", "chunked")
            self.end_headers()
            self.close_connection = True
            with api._changed:
                expired = since and since < api._state.compacted
            if expired:
                message = f"too old resource version: {since} ({api._state.compacted})"
                self._chunk({"type": "ERROR", "object": status(410, "Expired", message)})
                self.wfile.write(b"0\r\n\r\n")
                return
            sent, end = 0, time.monotonic() + timeout
            with api._changed:
                if not since:  # no resourceVersion: the current objects first, as ADDED events
                    for key, obj in api._state.objects.items():
                        if key[:3] == (group, ns, plural) and wanted in (None, key[3]):
                            self._chunk({"type": "ADDED", "object": obj})
                    since = api._state.rv
            try:
                while time.monotonic() < end and not api._stopping.is_set():
                    with api._changed:
                        pending = [
                            (rv, kind, key, obj)
                            for rv, kind, key, obj in api._state.history
                            if rv > since and key[:3] == (group, ns, plural) and wanted in (None, key[3])
                        ]
                        if not pending:
                            api._changed.wait(min(0.2, max(0.0, end - time.monotonic())))
                            continue
                    for rv, kind, key, obj in pending:
                        if fault and sent >= fault.after_events:
                            if fault.compact:
                                with api._changed:
                                    api._state.compacted = api._state.rv
                            self.wfile.flush()
                            self.connection.shutdown(socket.SHUT_RDWR)  # dropped: no chunk terminator
                            return
                        self._chunk({"type": kind, "object": obj})
                        api._delivered(key, str(rv))
                        since, sent = rv, sent + 1
                if bookmarks:
                    with api._changed:
                        mark = str(api._state.rv)
                    self._chunk(
                        {
                            "type": "BOOKMARK",
                            "object": {
                                "kind": KINDS[plural],
                                "apiVersion": group,
                                "metadata": {"resourceVersion": mark},
                            },
                        }
                    )
                self.wfile.write(b"0\r\n\r\n")
            except (BrokenPipeError, ConnectionResetError):
                return

        def _core(
            self,
            method: str,
            ns: str,
            resource: str,
            name: str | None,
            sub: str | None,
            query: dict[str, str],
        ) -> None:
            if method != "GET":
                self._send(405, status(405, "MethodNotAllowed", f"{method} is not supported here"))
                return
            verb = "get" if name else "list"
            if not self._allowed(Call(verb, "", f"{resource}/{sub}" if sub else resource, name or ""), ns):
                return
            if resource == "pods" and name and sub == "log":
                self._log(ns, name, query)
            elif resource == "pods" and name:
                with api._changed:
                    pod = copy.deepcopy(api._state.pods.get((ns, name)))
                if pod is None:
                    self._send(404, status(404, "NotFound", f'pods "{name}" not found'))
                else:
                    self._send(200, pod)
            elif resource == "pods":
                wanted = _selector(query.get("labelSelector", ""))
                with api._changed:
                    items = [
                        copy.deepcopy(p)
                        for (pns, _), p in api._state.pods.items()
                        if pns == ns and all(p["metadata"]["labels"].get(k) == v for k, v in wanted.items())
                    ]
                self._send(
                    200,
                    {
                        "apiVersion": "v1",
                        "kind": "PodList",
                        "metadata": {"resourceVersion": str(api._state.rv)},
                        "items": items,
                    },
                )
            elif resource == "events" and not name:
                wanted = _selector(query.get("fieldSelector", "")).get("involvedObject.name")
                with api._changed:
                    items = [
                        copy.deepcopy(e)
                        for e in api._state.events
                        if e["metadata"]["namespace"] == ns and wanted in (None, e["involvedObject"]["name"])
                    ]
                self._send(200, {"apiVersion": "v1", "kind": "EventList", "metadata": {}, "items": items})
            else:
                self._send(404, status(404, "NotFound", f"the server could not find {self.path}"))

        def _log(self, ns: str, name: str, query: dict[str, str]) -> None:
            with api._changed:
                pod = api._state.pods.get((ns, name))
                if pod is None:
                    self._send(404, status(404, "NotFound", f'pods "{name}" not found'))
                    return
                names = [c["name"] for c in pod["spec"]["containers"]]
                container = query.get("container") or names[0]
                if container not in names:
                    self._send(
                        400, status(400, "BadRequest", f"container {container} is not valid for pod {name}")
                    )
                    return
                text = api._state.logs.get((ns, name, container), "")
            lines = text.splitlines(keepends=True)
            if "tailLines" in query:
                lines = lines[-int(query["tailLines"]) :] if int(query["tailLines"]) > 0 else []
            self._send(200, "".join(lines), "text/plain")

    return Handler


# ---------------------------------------------------------------------------- lifecycle steps


def _condition(type_: str, reason: str, message: str) -> dict[str, Any]:
    return {
        "type": type_,
        "status": "True",
        "reason": reason,
        "message": message,
        "lastTransitionTime": _now(),
        "lastUpdateTime": _now(),
    }


def _pod_names(key: JobKey, pods: int) -> list[str]:
    if key[2] == "trainjobs":
        return [f"{key[3]}-node-0-{i}-{uuid.uuid4().hex[:5]}" for i in range(pods)]
    return [f"{key[3]}-master-0", *(f"{key[3]}-worker-{i}" for i in range(pods - 1))]


def running(pods: int = 1, log: str = "step 1 loss 2.0\n") -> Step:
    """The job's pods start and run: TrainJob reports an active child job, PyTorchJob a Running condition."""

    def step(api: FakeKubeAPI, key: JobKey) -> None:
        for name in _pod_names(key, pods):
            api.add_pod(key, name, "Running", log)
        if key[2] == "trainjobs":
            child = {"name": "node", "active": 1, "ready": 1, "succeeded": 0, "failed": 0, "suspended": 0}
            api.set_job_status(key, {"jobsStatus": [child]})
        else:
            created = _condition("Created", "PyTorchJobCreated", "PyTorchJob is created.")
            running_ = _condition("Running", "PyTorchJobRunning", "PyTorchJob is running.")
            api.set_job_status(key, {"conditions": [created, running_]})

    return step


def image_pull_fails(image: str = "ghcr.io/hipo-pipelines/hipo-train:missing") -> Step:
    """The node pod cannot pull its image: Pending, its container waiting in ImagePullBackOff (the
    TrainJob itself reports nothing: the controller only sees a pod that does not start)."""

    def step(api: FakeKubeAPI, key: JobKey) -> None:
        [pod] = _pod_names(key, 1)
        message = f'Back-off pulling image "{image}": ErrImagePull: {image}: not found'
        api.add_pod(key, pod, "Pending", waiting=("ImagePullBackOff", message))
        api.add_event(key[1], "Pod", pod, "Failed", f'Failed to pull image "{image}": not found')

    return step


def succeeded(before: Callable[[FakeKubeAPI, JobKey], None] | None = None) -> Step:
    """``before`` runs first (what the pods leave behind, e.g. a checkpoint); then the job completes."""

    def step(api: FakeKubeAPI, key: JobKey) -> None:
        if before is not None:
            before(api, key)
        if key[2] == "trainjobs":
            cond = _condition("Complete", "JobSetCompleted", "jobset completed successfully")
        else:
            cond = _condition(
                "Succeeded", "PyTorchJobSucceeded", f"PyTorchJob {key[3]} is successfully completed."
            )
        api.set_job_status(key, {"conditions": [cond]})

    return step


def failed(reason: str, message: str, log: str, exit_code: int = 1) -> Step:
    """One pod exits with ``exit_code`` after writing ``log``; a Warning event; the job fails."""

    def step(api: FakeKubeAPI, key: JobKey) -> None:
        [pod] = _pod_names(key, 1)
        api.add_pod(key, pod, "Failed", log, exit_code)
        api.add_event(key[1], "Pod", pod, "BackOff", f"container exited with code {exit_code}")
        api.add_event(key[1], KINDS[key[2]], key[3], "JobFailed", message)
        api.set_job_status(key, {"conditions": [_condition("Failed", reason, message)]})

    return step

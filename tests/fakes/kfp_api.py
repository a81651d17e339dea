"""A faithful protocol-level fake of the Kubeflow Pipelines v2beta1 REST API, for tests on loopback.

Serves over real HTTP (``ThreadingHTTPServer`` on a free 127.0.0.1 port) the endpoints ``kfp.Client``
calls to run and schedule a compiled pipeline, with the KFP API server's JSON shapes (snake_case
fields, int64 as strings, ``recurringRuns`` in the recurring-run list, the epoch for "not finished",
google.rpc.Status errors ``{"error", "code", "message", "details"}`` with the matching HTTP status):

- ``GET  /apis/v2beta1/healthz``
- ``POST /apis/v2beta1/experiments``, ``GET /apis/v2beta1/experiments[/{id}]``
- ``POST /apis/v2beta1/runs``, ``GET /apis/v2beta1/runs[/{id}]``
- ``POST /apis/v2beta1/recurringruns``, ``GET /apis/v2beta1/recurringruns[/{id}]``,
  ``POST /apis/v2beta1/recurringruns/{id}:enable|:disable``, ``DELETE /apis/v2beta1/recurringruns/{id}``

Lists honour ``experiment_id``, ``page_size``/``page_token``, ``sort_by`` (``field [desc]``) and the
JSON ``filter`` (predicates with EQUALS / NOT_EQUALS / IS_SUBSTRING, operation by name or number).
Validation as the server does it: a known experiment, a pipeline spec or version reference, a
six-field cron (or ``@`` descriptor), max_concurrency within 1..10. Everything is stored as sent, so
tests can read ``experiments``, ``runs``, ``recurring_runs`` and ``requests``. ``token`` requires
``Authorization: Bearer <token>``; ``stall_s`` delays every answer except healthz (a hung server).
Timestamps come from a fake clock that advances one second per created object. With ``multi_user``
(Kubeflow profiles) experiments belong to a namespace: creating one needs it, names are unique within
it, and listing experiments takes the ``namespace`` query parameter, as the multi-user server does.
"""

from __future__ import annotations

import contextlib
import json
import threading
import time
import uuid
from datetime import UTC, datetime, timedelta
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qs, urlsplit

EPOCH = "1970-01-01T00:00:00Z"
_PREFIX = "/apis/v2beta1"
_OPERATIONS = {1: "EQUALS", 2: "NOT_EQUALS", 9: "IS_SUBSTRING"}
_GRPC = {400: 3, 401: 16, 404: 5, 409: 6, 500: 13}  # HTTP status -> google.rpc code


class ApiError(Exception):
    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status, self.message = status, message


class FakeKFP:
    def __init__(self, token: str | None = None, stall_s: float = 0.0, multi_user: bool = False) -> None:
        self.token, self.stall_s, self.multi_user = token, stall_s, multi_user
        self.experiments: dict[str, dict[str, Any]] = {}
        self.runs: dict[str, dict[str, Any]] = {}
        self.recurring_runs: dict[str, dict[str, Any]] = {}
        self.requests: list[tuple[str, str, dict[str, str], Any]] = []  # method, path, query, body
        self._clock = datetime(2025, 1, 6, 3, 0, 0, tzinfo=UTC)
        self._lock = threading.Lock()
        self._httpd: ThreadingHTTPServer | None = None

    @property
    def url(self) -> str:
        assert self._httpd is not None, "start() the server first"
        return f"http://127.0.0.1:{self._httpd.server_address[1]}"

    def start(self) -> FakeKFP:
        handler = type("Handler", (_Handler,), {"fake": self})
        self._httpd = ThreadingHTTPServer(("127.0.0.1", 0), handler)
        self._httpd.daemon_threads = True
        self._httpd.block_on_close = False
        threading.Thread(target=self._httpd.serve_forever, args=(0.05,), daemon=True).start()
        return self

    def stop(self) -> None:
        if self._httpd is not None:
            self._httpd.shutdown()
            self._httpd.server_close()
            self._httpd = None

    def finish(self, run_id: str, state: str = "SUCCEEDED") -> None:
        """What the backend does when a run ends: its state and finished_at change."""
        with self._lock:
            self.runs[run_id].update(state=state, finished_at=self._tick())

    def _tick(self) -> str:
        self._clock += timedelta(seconds=1)
        return self._clock.strftime("%Y-%m-%dT%H:%M:%SZ")

    # ------------------------------------------------------------ handlers (called under the lock)

    def create_experiment(self, body: dict[str, Any]) -> dict[str, Any]:
        name = body.get("display_name") or ""
        if not name.strip():
            raise ApiError(400, "Invalid input error: Experiment name is empty. Please specify a valid name")
        namespace = body.get("namespace") or ""
        if self.multi_user and not namespace:
            raise ApiError(
                400, "Invalid input error: In multi-user mode, experiment namespace must be specified"
            )
        if any(e["display_name"] == name and e["namespace"] == namespace for e in self.experiments.values()):
            raise ApiError(409, f"Failed to create an experiment: experiment with name {name} already exists")
        experiment = {
            "experiment_id": str(uuid.uuid4()),
            "display_name": name,
            "description": body.get("description") or "",
            "created_at": self._tick(),
            "namespace": body.get("namespace") or "",
            "storage_state": "AVAILABLE",
            "last_run_created_at": EPOCH,
        }
        self.experiments[experiment["experiment_id"]] = experiment
        return experiment

    def create_run(self, body: dict[str, Any]) -> dict[str, Any]:
        experiment = self._experiment_of(body)
        if not body.get("display_name"):
            raise ApiError(400, "Invalid input error: The run name is empty. Please specify a valid name")
        if not body.get("pipeline_spec") and not body.get("pipeline_version_reference"):
            raise ApiError(
                400, "Invalid input error: Neither pipeline spec nor pipeline version is specified"
            )
        now = self._tick()
        run = {
            **body,
            "run_id": str(uuid.uuid4()),
            "experiment_id": experiment["experiment_id"],
            "storage_state": "AVAILABLE",
            "created_at": now,
            "scheduled_at": now,
            "finished_at": EPOCH,
            "state": "PENDING",
            "state_history": [{"update_time": now, "state": "PENDING"}],
        }
        experiment["last_run_created_at"] = now
        self.runs[run["run_id"]] = run
        return run

    def create_recurring_run(self, body: dict[str, Any]) -> dict[str, Any]:
        experiment = self._experiment_of(body)
        if not body.get("display_name"):
            raise ApiError(400, "Invalid input error: The recurring run name is empty")
        if not body.get("pipeline_spec") and not body.get("pipeline_version_reference"):
            raise ApiError(
                400, "Invalid input error: Neither pipeline spec nor pipeline version is specified"
            )
        cron = ((body.get("trigger") or {}).get("cron_schedule") or {}).get("cron")
        periodic = (body.get("trigger") or {}).get("periodic_schedule")
        if not cron and not periodic:
            raise ApiError(400, "Invalid input error: Trigger must specify a cron or periodic schedule")
        if cron and not (cron.startswith("@") or len(cron.split()) == 6):
            raise ApiError(400, f"Invalid input error: Schedule cron is not a supported format: {cron}")
        concurrency = int(body.get("max_concurrency") or 1)
        if not 1 <= concurrency <= 10:
            raise ApiError(
                400, f"Invalid input error: Max concurrency of a pipeline is out of range. "
                f"Support 1-10. Received {concurrency}",
            )  # fmt: skip
        now = self._tick()
        mode = body.get("mode") or "ENABLE"
        recurring = {
            **body,
            "recurring_run_id": str(uuid.uuid4()),
            "experiment_id": experiment["experiment_id"],
            "max_concurrency": str(concurrency),
            "no_catchup": bool(body.get("no_catchup")),
            "mode": mode,
            "status": "ENABLED" if mode == "ENABLE" else "DISABLED",
            "namespace": experiment["namespace"],
            "created_at": now,
            "updated_at": now,
        }
        self.recurring_runs[recurring["recurring_run_id"]] = recurring
        return recurring

    def set_mode(self, recurring_run_id: str, enable: bool) -> dict[str, Any]:
        recurring = self._get(self.recurring_runs, recurring_run_id, "recurring run")
        recurring.update(
            mode="ENABLE" if enable else "DISABLE",
            status="ENABLED" if enable else "DISABLED",
            updated_at=self._tick(),
        )
        return {}

    def delete_recurring_run(self, recurring_run_id: str) -> dict[str, Any]:
        self._get(self.recurring_runs, recurring_run_id, "recurring run")
        del self.recurring_runs[recurring_run_id]
        return {}

    def _experiment_of(self, body: dict[str, Any]) -> dict[str, Any]:
        return self._get(self.experiments, body.get("experiment_id") or "", "experiment")

    @staticmethod
    def _get(store: dict[str, dict[str, Any]], key: str, kind: str) -> dict[str, Any]:
        if key not in store:
            raise ApiError(404, f"Failed to get {kind}: {kind} {key} not found: ResourceNotFoundError")
        return store[key]

    @staticmethod
    def listing(items: list[dict[str, Any]], query: dict[str, str], key: str) -> dict[str, Any]:
        if query.get("experiment_id"):
            items = [i for i in items if i.get("experiment_id") == query["experiment_id"]]
        items = [i for i in items if _matches(i, query.get("filter"))]
        field, _, order = (query.get("sort_by") or "created_at").partition(" ")
        items = sorted(items, key=lambda i: str(i.get(field, "")), reverse=order.strip() == "desc")
        start = int(query.get("page_token") or 0)
        size = int(query.get("page_size") or 10)
        page = items[start : start + size]
        more = start + size < len(items)
        response: dict[str, Any] = {
            "total_size": len(items),
            "next_page_token": str(start + size) if more else "",
        }
        if page:  # proto3 JSON leaves out empty repeated fields
            response[key] = page
        return response


def _matches(item: dict[str, Any], raw_filter: str | None) -> bool:
    if not raw_filter:
        return True
    try:
        predicates = json.loads(raw_filter).get("predicates", [])
    except (ValueError, AttributeError):
        raise ApiError(
            400, f"Invalid input error: filter {raw_filter!r} is not a valid JSON Filter"
        ) from None
    for predicate in predicates:
        operation = predicate.get("operation")
        operation = _OPERATIONS.get(operation, operation) if isinstance(operation, int) else operation
        value = predicate.get("stringValue", predicate.get("string_value"))
        actual = str(item.get(predicate.get("key"), ""))
        if operation == "EQUALS":
            ok = actual == value
        elif operation == "NOT_EQUALS":
            ok = actual != value
        elif operation == "IS_SUBSTRING":
            ok = value in actual
        else:
            raise ApiError(400, f"Invalid input error: unsupported filter operation {operation!r}")
        if not ok:
            return False
    return True


class _Handler(BaseHTTPRequestHandler):
    fake: FakeKFP
    protocol_version = "HTTP/1.1"

    def log_message(self, format: str, *args: Any) -> None:  # keep test output quiet
        pass

    def _send(self, status: int, payload: dict[str, Any]) -> None:
        data = json.dumps(payload).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        with contextlib.suppress(BrokenPipeError, ConnectionResetError):  # the client gave up (timeout)
            self.wfile.write(data)

    def _handle(self, method: str) -> None:
        parts = urlsplit(self.path)
        query = {k: v[-1] for k, v in parse_qs(parts.query).items()}
        length = int(self.headers.get("Content-Length") or 0)
        body = json.loads(self.rfile.read(length)) if length else None
        fake = self.fake
        if fake.token and self.headers.get("Authorization") != f"Bearer {fake.token}":
            message = "Unauthenticated: request has no valid bearer token"
            self._send(401, {"error": message, "code": 16, "message": message, "details": []})
            return
        if parts.path != f"{_PREFIX}/healthz" and fake.stall_s:
            time.sleep(fake.stall_s)
        try:
            with fake._lock:
                fake.requests.append((method, parts.path, query, body))
                status, payload = 200, self._route(method, parts.path, query, body or {})
        except ApiError as error:
            status, m = error.status, error.message
            payload = {"error": m, "code": _GRPC.get(status, 2), "message": m, "details": []}
        self._send(status, payload)

    def _route(self, method: str, path: str, query: dict[str, str], body: dict[str, Any]) -> dict[str, Any]:
        fake = self.fake
        if not path.startswith(_PREFIX + "/"):
            raise ApiError(404, f"Not Found: {path}")
        route = path[len(_PREFIX) + 1 :]
        collection, _, rest = route.partition("/")
        item, _, action = rest.partition(":")
        stores = {"experiments": fake.experiments, "runs": fake.runs, "recurringruns": fake.recurring_runs}
        creators = {
            "experiments": fake.create_experiment,
            "runs": fake.create_run,
            "recurringruns": fake.create_recurring_run,
        }
        keys = {"experiments": "experiments", "runs": "runs", "recurringruns": "recurringRuns"}
        if (method, route) == ("GET", "healthz"):
            return {"multi_user": fake.multi_user, "pipeline_store": "database"}
        if collection in stores and not item:
            if method == "POST":
                return creators[collection](body)
            if method == "GET":
                items = list(stores[collection].values())
                if collection == "experiments" and fake.multi_user:
                    items = [e for e in items if e["namespace"] == query.get("namespace")]
                return fake.listing(items, query, keys[collection])
        if collection in stores and item and not action and method == "GET":
            return fake._get(stores[collection], item, collection.rstrip("s"))
        if collection == "recurringruns" and item:
            if method == "POST" and action in ("enable", "disable"):
                return fake.set_mode(item, action == "enable")
            if method == "DELETE" and not action:
                return fake.delete_recurring_run(item)
        raise ApiError(404, f"Not Found: {method} {path}")

    def do_GET(self) -> None:
        self._handle("GET")

    def do_POST(self) -> None:
        self._handle("POST")

    def do_DELETE(self) -> None:
        self._handle("DELETE")

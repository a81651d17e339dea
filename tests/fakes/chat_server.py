"""A faithful protocol-level fake of an OpenAI-compatible chat-completions server, for tests on loopback.

It serves ``POST /v1/chat/completions`` over real HTTP (``http.server.ThreadingHTTPServer`` in a
background thread on a free 127.0.0.1 port) with the response shape of the OpenAI API: ``id``,
``object``, ``created``, ``model``, ``choices[].message{role, content}``, ``finish_reason`` and
``usage{prompt_tokens, completion_tokens, total_tokens}``; errors as ``{"error": {...}}`` with the
HTTP status. Answers are deterministic: a HiPO-format response to the "What is A + B?" in the last user
message. The mode comes from an assistant prefix (honoured, like vLLM, only with
``continue_final_message``; the content is then the continuation), else from a system-prompt line
"Mode for this query: Think-on|Think-off", else think-on iff the sum is at least 100. The judge text
names the request's ``seed``. Tokens are whitespace-separated words; ``max_tokens`` truncates
(finish_reason "length"). A request whose system prompt asks for a "judge rationale" (the data
pipeline's writer) gets a rationale instead, which leaks the answer on some queries (see
``_judge_rationale``) so the writer's leak check can be exercised.

Injectable faults, each counted down per request in arrival order: ``rate_limit_first`` 429s (with
``Retry-After: retry_after``), ``server_error_first`` 500s, ``slow_first`` answers delayed by ``slow_s``
(longer than a client timeout); ``unauthorized`` answers 401 always; ``fail_after`` answers 503 once
that many requests have been answered. ``delay_s`` delays every answer (to observe concurrency).
``garbage_first`` answers HTTP 200 with a body cut mid-JSON, ``not_json_first`` HTTP 200 with an HTML
page; ``empty_content`` answers every request with an empty message (a teacher that says nothing).
"""

from __future__ import annotations

import contextlib
import json
import re
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

_MODE_LINE = re.compile(r"Mode for this query: Think-(on|off)")


def _judge_rationale(messages: list[dict[str, Any]]) -> str:
    """A judge-rationale writer: leaks the sum when it is odd, until told not to (then complies),
    and always for a query containing "stubborn"; never for an even sum."""
    query = messages[1]["content"]
    numbers = [int(x) for x in re.findall(r"\d+", query.split("Chosen mode")[0])]
    total = sum(numbers)
    reminded = any(m["role"] == "assistant" for m in messages)
    if "stubborn" in query or (total % 2 == 1 and not reminded):
        return f"Adding these gives {total}, so it is simple."
    return f"Adding {len(numbers)} numbers needs attention to carries across columns."


def _answer(body: dict[str, Any]) -> tuple[str, str]:
    messages = body["messages"]
    if "judge rationale" in messages[0]["content"]:
        return _judge_rationale(messages), "stop"
    user = next(m["content"] for m in reversed(messages) if m["role"] == "user")
    numbers = [int(x) for x in re.findall(r"\d+", user)]
    total = sum(numbers)
    prefix = ""
    if messages[-1]["role"] == "assistant" and body.get("continue_final_message"):
        prefix = messages[-1]["content"]
    system = " ".join(m["content"] for m in messages if m["role"] == "system")
    instructed = _MODE_LINE.search(system)
    if "<think_on>" in prefix or "<think_off>" in prefix:
        mode = "on" if "<think_on>" in prefix else "off"
    else:
        mode = instructed.group(1) if instructed else ("on" if total >= 100 else "off")
    think = f"<think>\n{' + '.join(map(str, numbers))} = {total}\n</think>\n" if mode == "on" else ""
    rest = f"{think}<answer>\n{total}\n</answer>"
    if prefix:
        content = rest
    else:
        content = f"<judge>\nfake judge (seed {body.get('seed')})\n</judge>\n<think_{mode}>\n{rest}"
    words = content.split(" ")
    limit = body.get("max_tokens") or len(words)
    return (" ".join(words[:limit]), "length") if len(words) > limit else (content, "stop")


class FakeChatServer:
    def __init__(
        self,
        rate_limit_first: int = 0,
        retry_after: float | None = 0.05,
        server_error_first: int = 0,
        slow_first: int = 0,
        slow_s: float = 1.0,
        unauthorized: bool = False,
        fail_after: int | None = None,
        delay_s: float = 0.0,
        garbage_first: int = 0,
        not_json_first: int = 0,
        empty_content: bool = False,
    ) -> None:
        self.left = {
            "429": rate_limit_first,
            "500": server_error_first,
            "slow": slow_first,
            "garbage": garbage_first,
            "not_json": not_json_first,
        }
        self.empty_content = empty_content
        self.retry_after, self.slow_s, self.delay_s = retry_after, slow_s, delay_s
        self.unauthorized, self.fail_after = unauthorized, fail_after
        self.bodies: list[dict[str, Any]] = []  # every request received, in arrival order
        self.answered = 0  # requests answered in time (slow ones excluded)
        self.in_flight = 0
        self.max_in_flight = 0
        self._lock = threading.Lock()
        self._httpd: ThreadingHTTPServer | None = None

    @property
    def received(self) -> int:
        return len(self.bodies)

    @property
    def url(self) -> str:
        assert self._httpd is not None, "start() the server first"
        return f"http://127.0.0.1:{self._httpd.server_address[1]}/v1"

    def start(self) -> FakeChatServer:
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

    def decide(self, body: dict[str, Any]) -> str:
        """The fault (or "ok") for one request, under the lock so counts are exact under concurrency."""
        with self._lock:
            self.bodies.append(body)
            if self.unauthorized:
                return "401"
            for fault in self.left:
                if self.left[fault] > 0:
                    self.left[fault] -= 1
                    return fault
            if self.fail_after is not None and self.answered >= self.fail_after:
                return "503"
            self.answered += 1
            return "ok"


class _Handler(BaseHTTPRequestHandler):
    fake: FakeChatServer
    protocol_version = "HTTP/1.1"

    def log_message(self, format: str, *args: Any) -> None:  # keep test output quiet
        pass

    def _send(self, status: int, payload: dict[str, Any], headers: dict[str, str] | None = None) -> None:
        data = json.dumps(payload).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        for key, value in (headers or {}).items():
            self.send_header(key, value)
        self.end_headers()
        with contextlib.suppress(BrokenPipeError, ConnectionResetError):  # the client gave up (timeout)
            self.wfile.write(data)

    def _error(self, status: int, message: str, headers: dict[str, str] | None = None) -> None:
        self._send(status, {"error": {"message": message, "type": "fake_error", "code": status}}, headers)

    def do_POST(self) -> None:
        length = int(self.headers.get("Content-Length", 0))
        if self.path.rstrip("/") != "/v1/chat/completions":
            self._error(404, f"no route {self.path}")
            return
        body = json.loads(self.rfile.read(length))
        fake = self.fake
        with fake._lock:
            fake.in_flight += 1
            fake.max_in_flight = max(fake.max_in_flight, fake.in_flight)
        try:
            self._respond(fake, body)
        finally:
            with fake._lock:
                fake.in_flight -= 1

    def _respond(self, fake: FakeChatServer, body: dict[str, Any]) -> None:
        decision = fake.decide(body)
        if decision == "401":
            self._error(401, "Incorrect API key provided")
        elif decision == "429":
            headers = {"Retry-After": str(fake.retry_after)} if fake.retry_after is not None else {}
            self._error(429, "Rate limit reached", headers)
        elif decision in ("500", "503"):
            self._error(int(decision), "The server had an error while processing your request")
        elif decision in ("garbage", "not_json"):
            data = (
                b'{"id": "chatcmpl-cut", "choices": [{"index": 0, "mess'
                if decision == "garbage"
                else (b"<html><body>502 Bad Gateway</body></html>")
            )
            self.send_response(200)
            self.send_header("Content-Type", "application/json" if decision == "garbage" else "text/html")
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)
        else:
            time.sleep(fake.slow_s if decision == "slow" else fake.delay_s)
            content, finish = ("", "stop") if fake.empty_content else _answer(body)
            prompt_tokens = sum(len(m["content"].split()) for m in body["messages"])
            completion_tokens = len(content.split())
            self._send(
                200,
                {
                    "id": f"chatcmpl-fake-{len(fake.bodies)}",
                    "object": "chat.completion",
                    "created": int(time.time()),
                    "model": body["model"],
                    "choices": [
                        {
                            "index": 0,
                            "message": {"role": "assistant", "content": content},
                            "finish_reason": finish,
                            "logprobs": None,
                        }
                    ],
                    "usage": {
                        "prompt_tokens": prompt_tokens,
                        "completion_tokens": completion_tokens,
                        "total_tokens": prompt_tokens + completion_tokens,
                    },
                },
            )

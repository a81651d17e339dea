"""Time-bounded math answer grading with math-verify, safe from any thread and any process.

math-verify's own timeouts use ``signal.alarm`` and only work in the main thread, and a runaway sympy
call cannot be stopped inside a thread. So every check runs in a small pool of long-lived worker
processes (``_mv_worker.py``, started lazily with this interpreter): the caller waits at most
``timeout`` seconds, and a worker that overruns is killed (SIGKILL) and replaced; the check counts as
incorrect. Plain numbers on both sides are compared exactly in-process, without math-verify. A worker
belongs to the process that started it: after a fork the child starts its own.
"""

from __future__ import annotations

import atexit
import json
import logging
import os
import queue
import re
import select
import subprocess
import sys
import threading
import time
from fractions import Fraction
from pathlib import Path

log = logging.getLogger(__name__)

_WORKER = Path(__file__).with_name("_mv_worker.py")
_NUMBER = re.compile(r"[+-]?(?:(?:\d{1,3}(?:,\d{3})+|\d+)(?:\.\d+)?|\.\d+)", re.ASCII)


class GradingError(RuntimeError):
    """The grader itself is broken (the worker cannot start); not a verdict on an answer."""


def plain_number(text: str) -> Fraction | None:
    """The exact value of a plain decimal number ("1,234", "-0.5", "+3"), else None."""
    text = text.strip()
    return Fraction(text.replace(",", "")) if _NUMBER.fullmatch(text) else None


class _Worker:
    """One worker process; ``check`` returns None on timeout (after killing the process)."""

    def __init__(self) -> None:
        self.proc: subprocess.Popen[bytes] | None = None
        self.pid_owner = 0
        self._buf = b""

    def _start(self, startup_timeout: float) -> None:
        # -P: do not put the worker's folder on sys.path (hipo/tasks/math.py would shadow stdlib math)
        self.proc = subprocess.Popen(
            [sys.executable, "-P", str(_WORKER)],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=subprocess.DEVNULL,
        )
        self.pid_owner, self._buf = os.getpid(), b""
        if self._read_line(time.monotonic() + startup_timeout) != b'"ready"':
            self.kill()
            raise GradingError(f"math-verify worker did not start within {startup_timeout:.0f}s ({_WORKER})")

    def _read_line(self, deadline: float) -> bytes | None:
        assert self.proc is not None and self.proc.stdout is not None
        fd = self.proc.stdout.fileno()
        while b"\n" not in self._buf:
            left = deadline - time.monotonic()
            if left <= 0 or not select.select([fd], [], [], left)[0]:
                return None
            chunk = os.read(fd, 4096)
            if not chunk:
                return None  # the worker died
            self._buf += chunk
        line, _, self._buf = self._buf.partition(b"\n")
        return line

    def check(self, gold: str, predicted: str, timeout: float, startup_timeout: float) -> bool | None:
        if self.proc is None or self.pid_owner != os.getpid() or self.proc.poll() is not None:
            if self.pid_owner == os.getpid():
                self.kill()
            self._start(startup_timeout)
        assert self.proc is not None and self.proc.stdin is not None
        try:
            self.proc.stdin.write(json.dumps([gold, predicted]).encode() + b"\n")
            self.proc.stdin.flush()
        except OSError:
            self.kill()
            return False
        line = self._read_line(time.monotonic() + timeout)
        if line is None:
            self.kill()
            return None
        return line == b"true"

    def kill(self) -> None:
        if self.proc is not None and self.pid_owner == os.getpid():
            self.proc.kill()
            self.proc.wait()
            for stream in (self.proc.stdin, self.proc.stdout):
                if stream is not None:
                    stream.close()
        self.proc = None


class MathVerifier:
    """``verifier(gold, predicted) -> bool``: math-verify equivalence within ``timeout`` seconds.

    ``workers`` processes serve concurrent callers (threads wait for a free one). Timeouts and
    checks are counted in ``timeouts`` and ``checks``.
    """

    def __init__(self, timeout: float = 5.0, workers: int = 1, startup_timeout: float = 120.0) -> None:
        if timeout <= 0 or workers < 1:
            raise ValueError(f"need timeout > 0 and workers >= 1, got timeout={timeout}, workers={workers}")
        self.timeout = timeout
        self.startup_timeout = startup_timeout
        self._idle: queue.Queue[_Worker] = queue.Queue()
        self._all = [_Worker() for _ in range(workers)]
        for worker in self._all:
            self._idle.put(worker)
        self._count_lock = threading.Lock()
        self.checks = 0
        self.timeouts = 0

    def __call__(self, gold: str, predicted: str | None, timeout: float | None = None) -> bool:
        if not isinstance(predicted, str) or not predicted.strip() or not isinstance(gold, str):
            return False
        a, b = plain_number(gold), plain_number(predicted)
        if a is not None and b is not None:
            return a == b
        worker = self._idle.get()
        try:
            with self._count_lock:
                self.checks += 1
            verdict = worker.check(gold, predicted, timeout or self.timeout, self.startup_timeout)
        finally:
            self._idle.put(worker)
        if verdict is None:  # the worker was killed; log the inputs (cut) to find the culprit
            with self._count_lock:
                self.timeouts += 1
            limit = timeout or self.timeout
            log.warning(
                "math-verify gave no verdict in %.1fs, counted as incorrect: %r vs %r",
                limit,
                gold[:200],
                predicted[:200],
            )
            return False
        return verdict

    def close(self) -> None:
        """Stop the worker processes (they also exit on their own when this process ends)."""
        for worker in self._all:
            worker.kill()


_default: MathVerifier | None = None
_default_lock = threading.Lock()


def default_verifier() -> MathVerifier:
    """The process-wide verifier (one worker, 5 s per check), created on first use."""
    global _default
    with _default_lock:
        if _default is None:
            _default = MathVerifier()
            atexit.register(_default.close)
        return _default


def equivalent(gold: str, predicted: str | None, timeout: float | None = None) -> bool:
    """Whether ``predicted`` is mathematically equivalent to ``gold``; never hangs, never raises on input."""
    return default_verifier()(gold, predicted, timeout)

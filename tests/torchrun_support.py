"""torchrun from the tests: CPU ranks under ``--standalone``, and a hang that names where it hung.

A 2-rank run hung once in a full ``make test`` (2026-12-04) and passed when rerun alone. A plain
``subprocess.run(timeout=...)`` then kills torchrun alone, and reports nothing; torchrun's ranks
are not in its process group and keep running. Here every process of the launch runs with
faulthandler on, and on a timeout torchrun and then each of its descendants get SIGABRT, so each
one prints its Python stacks into the failure message.
"""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import sys
from pathlib import Path

import psutil
import pytest

TORCHRUN = Path(sys.executable).parent / "torchrun"


def torchrun(*args: object, timeout: float = 300) -> subprocess.CompletedProcess[str]:
    """``torchrun --standalone --nproc_per_node 2 ARGS``; fails the test on a non-zero exit or a hang."""
    env = {**os.environ, "OMP_NUM_THREADS": "1", "MLFLOW_DISABLE_TELEMETRY": "true"}
    env["PYTHONFAULTHANDLER"] = "1"  # SIGABRT prints the Python stacks of every thread
    env.pop("MLFLOW_TRACKING_URI", None)
    command = [str(TORCHRUN), "--standalone", "--nproc_per_node=2", *map(str, args)]
    pipe = subprocess.PIPE
    with subprocess.Popen(command, env=env, stdout=pipe, stderr=pipe, text=True) as launch:
        try:
            out, err = launch.communicate(timeout=timeout)
        except subprocess.TimeoutExpired:
            _abort_tree(launch.pid)
            out, err = launch.communicate()
            pytest.fail(f"torchrun hung for {timeout:.0f} s; the stacks of its processes:\n{err[-12000:]}")
    assert launch.returncode == 0, err[-4000:]
    return subprocess.CompletedProcess(command, launch.returncode, out, err)


def _abort_tree(pid: int, grace: float = 10) -> None:
    """SIGABRT to ``pid``, then to each of its descendants, one at a time so that their stacks do not
    interleave in the shared stderr; SIGKILL to any still alive ``grace`` s after its SIGABRT."""
    root = psutil.Process(pid)
    for process in [root, *root.children(recursive=True)]:
        with contextlib.suppress(psutil.NoSuchProcess):
            process.send_signal(signal.SIGABRT)
            try:
                process.wait(timeout=grace)
            except psutil.TimeoutExpired:
                process.kill()

"""torchrun from the tests: CPU ranks under ``--standalone``, and a hang that names where it hung.

A 2-rank run hung once in a full ``make test`` (2026-12-04) and passed when rerun alone. A plain
``subprocess.run(timeout=...)`` then kills torchrun alone, and reports nothing; torchrun's ranks
are not in its process group and keep running. Here every process of the launch runs with
faulthandler on, and on a timeout torchrun and each of its descendants get SIGABRT, so each one
prints its Python stacks into the failure message.
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


def torchrun(*args: object, procs: int = 2, timeout: float = 300) -> subprocess.CompletedProcess[str]:
    """``torchrun --standalone --nproc_per_node procs ARGS``; fails the test on a non-zero exit or a hang."""
    env = {**os.environ, "OMP_NUM_THREADS": "1", "MLFLOW_DISABLE_TELEMETRY": "true"}
    env["PYTHONFAULTHANDLER"] = "1"  # SIGABRT prints the Python stacks of every thread
    env.pop("MLFLOW_TRACKING_URI", None)
    command = [str(TORCHRUN), "--standalone", f"--nproc_per_node={procs}", *map(str, args)]
    pipes = {"stdout": subprocess.PIPE, "stderr": subprocess.PIPE, "text": True}
    with subprocess.Popen(command, env=env, **pipes) as launch:
        try:
            out, err = launch.communicate(timeout=timeout)
        except subprocess.TimeoutExpired:
            _abort_tree(launch.pid)
            out, err = launch.communicate()
            pytest.fail(f"torchrun hung for {timeout:.0f} s; the stacks of its processes:\n{err[-12000:]}")
    assert launch.returncode == 0, err[-4000:]
    return subprocess.CompletedProcess(command, launch.returncode, out, err)


def _abort_tree(pid: int, grace: float = 30) -> None:
    """SIGABRT to ``pid`` and every descendant (leaves first), SIGKILL to any alive ``grace`` s later."""
    root = psutil.Process(pid)
    tree = [*reversed(root.children(recursive=True)), root]
    for process in tree:
        with contextlib.suppress(psutil.NoSuchProcess):
            process.send_signal(signal.SIGABRT)
    _, alive = psutil.wait_procs(tree, timeout=grace)
    for process in alive:
        with contextlib.suppress(psutil.NoSuchProcess):
            process.kill()

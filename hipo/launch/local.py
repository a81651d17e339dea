"""The local backend: a training stage in this process, or under ``torchrun --standalone`` here.

One process calls ``hipo.train`` in process (no interpreter start, no model reload). More processes run
``python -m torch.distributed.run --standalone --nproc_per_node P -m hipo.launch.entry ...`` (gloo on
CPU) as a child whose output is streamed to stderr, with the configuration written once to a file; on
failure the error carries the exit code and the last lines; on cancel (SIGTERM, Ctrl-C) the child's
process group is terminated.
"""

from __future__ import annotations

import collections
import os
import signal
import subprocess
import sys
import tempfile
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING

from hipo.config import distributed_env
from hipo.launch.entry import SOURCE_OPTION, TrainStage, train_stage
from hipo.launch.kube import LaunchError, StepCancelled, cancel_on_sigterm, raise_if_cancelled

if TYPE_CHECKING:
    from hipo.config import RunConfig

LOG_TAIL_LINES = 50
_STOP_GRACE_S = 30


def torchrun_command(args: Sequence[str], procs: int) -> list[str]:
    return [
        sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node", str(procs),
        "-m", "hipo.launch.entry", *args,
    ]  # fmt: skip


def run_stage(
    stage: TrainStage,
    config: RunConfig,
    source: str,
    out: str | Path,
    cache_dir: str | None = None,
    run_name: str = "",
) -> None:
    """Train ``stage`` from ``source`` here: in this process, or under torchrun when the local backend
    asks for ``launch.procs_per_node`` > 1 and this process is not already one of its ranks (a cluster
    pod's configuration trains here, as one rank). LaunchError when torchrun fails. ``run_name``: an
    RL stage's MLflow run name."""
    launch = config.launch
    if launch.backend != "local" or launch.procs_per_node == 1 or distributed_env().is_distributed:
        train_stage(stage, config, source, out, cache_dir, run_name)
        return
    procs = launch.procs_per_node
    print(f"hipo: starting torchrun with {procs} processes (launch.procs_per_node)", file=sys.stderr)
    with tempfile.TemporaryDirectory(prefix="hipo-launch-") as tmp:
        config_path = Path(tmp) / "config.yaml"
        config_path.write_text(config.to_yaml(), encoding="utf-8")
        args = [stage, "--config-uri", str(config_path), "--out-uri", str(out), SOURCE_OPTION[stage], source]
        args += [
            *(["--cache-dir", cache_dir] if cache_dir else []),
            *(["--run-name", run_name] if run_name else []),
        ]
        _run_torchrun(args, procs)


def _run_torchrun(args: Sequence[str], procs: int) -> None:
    """``hipo.launch.entry ARGS`` under torchrun with ``procs`` processes; LaunchError when it fails."""
    command = torchrun_command(args, procs)
    tail: collections.deque[str] = collections.deque(maxlen=LOG_TAIL_LINES)
    child = subprocess.Popen(
        command, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, bufsize=1,
        start_new_session=True,  # its own group; torchrun stops the workers (each in a session of its own)
    )  # fmt: skip
    try:
        with cancel_on_sigterm():
            assert child.stdout is not None
            for line in child.stdout:
                raise_if_cancelled()  # a SIGTERM whose own raise was lost (see cancel_on_sigterm)
                sys.stderr.write(line)
                tail.append(line.rstrip("\n"))
            code = child.wait()
            raise_if_cancelled()
    except (StepCancelled, KeyboardInterrupt):
        _stop(child)
        raise
    if code != 0:
        raise LaunchError(
            f"torchrun with {procs} processes exited with code {code}: {' '.join(command)}\n"
            f"--- last {len(tail)} lines ---\n" + "\n".join(tail)
        )


def _stop(child: subprocess.Popen[str]) -> None:
    """SIGTERM to the child's process group (torchrun passes it on to the workers), then SIGKILL."""
    for sig, wait in ((signal.SIGTERM, _STOP_GRACE_S), (signal.SIGKILL, None)):
        try:
            os.killpg(child.pid, sig)
        except ProcessLookupError:
            return
        try:
            child.wait(timeout=wait)
            return
        except subprocess.TimeoutExpired:
            continue

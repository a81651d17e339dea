"""The local backend: ``hipo ...`` in this process, or under ``torchrun --standalone`` on this machine.

One process calls the CLI entry in process (no interpreter start, no model reload). More processes run
``python -m torch.distributed.run --standalone --nproc_per_node P -m hipo.cli ...`` (gloo on CPU) as
a child whose output is streamed to stderr; on failure the error carries the exit code and the last
lines; on cancel (SIGTERM, Ctrl-C) the child's process group is terminated.
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

from hipo.launch.kube import LaunchError, StepCancelled, cancel_on_sigterm, raise_if_cancelled

if TYPE_CHECKING:
    from hipo.config import RunConfig

LOG_TAIL_LINES = 50
_STOP_GRACE_S = 30


def torchrun_command(args: Sequence[str], procs: int) -> list[str]:
    return [
        sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node", str(procs),
        "-m", "hipo.cli", *args,
    ]  # fmt: skip


def run_stage(stage: str, cli_args: Sequence[str], config: RunConfig, out: str | Path) -> None:
    """``hipo train STAGE`` with ``config`` (passed as a temporary file) in ``launch.procs_per_node``
    processes."""
    with tempfile.TemporaryDirectory(prefix="hipo-launch-") as tmp:
        config_path = Path(tmp) / "config.yaml"
        config_path.write_text(config.to_yaml(), encoding="utf-8")
        args = ["train", stage, "--config", str(config_path), *cli_args, "--out", str(out)]
        run_local(args, config.launch.procs_per_node)


def run_local(args: Sequence[str], procs: int = 1) -> None:
    """Run ``hipo ARGS`` with ``procs`` processes; LaunchError when it fails."""
    if procs == 1:
        from hipo.cli import main

        code = main(list(args))
        if code != 0:
            raise LaunchError(f"`hipo {' '.join(args)}` failed with exit code {code} (its message is above)")
        return
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

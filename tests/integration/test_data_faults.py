"""``hipo data generate`` under faults: resumes with other settings, a teacher that says nothing, kill -9.

The teacher and judge endpoints are the loopback fake OpenAI-protocol server (tests/fakes/chat_server.py).
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pandas as pd
import pytest

from hipo.cli import main

SMALL = ["--set", "task.train_size=20", "--set", "task.eval_size=5", "--batch-size", "8"]


def generate(out: Path, *sets: str) -> int:
    return main(["data", "generate", "--out", str(out), *SMALL, *(x for s in sets for x in ("--set", s))])


def test_resume_with_other_sample_settings_is_refused(tmp_path, capsys):
    out = tmp_path / "data"
    assert generate(out, "data.samples_per_mode=2") == 0
    samples = (out / "samples.jsonl").read_bytes()
    assert generate(out, "data.samples_per_mode=6") == 2
    err = capsys.readouterr().err
    assert "holds teacher samples made with other settings" in err
    assert "samples_per_mode: 2 there, 6 now" in err and "new output folder" in err
    assert (out / "samples.jsonl").read_bytes() == samples  # nothing added or relabelled
    assert generate(out, "data.samples_per_mode=2") == 0  # the same settings resume
    assert generate(out, "data.samples_per_mode=2", "rollout_sampling.temperature=0.5") == 2
    assert "sampling: {" in capsys.readouterr().err
    assert generate(out, "data.samples_per_mode=2", "data.seed=3") == 2
    assert "data.seed: 0 there, 3 now" in capsys.readouterr().err


def test_the_rows_of_a_resumed_run_are_those_of_one_run(tmp_path):
    """A run killed after its samples and resumed writes the dataset one uninterrupted run writes."""
    once, twice = tmp_path / "once", tmp_path / "twice"
    assert generate(once, "data.samples_per_mode=2") == 0
    assert generate(twice, "data.samples_per_mode=2") == 0
    (twice / "mix" / "train.parquet").unlink()
    assert generate(twice, "data.samples_per_mode=2") == 0
    pd.testing.assert_frame_equal(
        pd.read_parquet(once / "mix" / "train.parquet"), pd.read_parquet(twice / "mix" / "train.parquet")
    )


@pytest.mark.parametrize("share", [0.1, 0.0])
def test_a_teacher_that_answers_nothing_fails_with_counts(chat_server_factory, tmp_path, capsys, share):
    server = chat_server_factory(empty_content=True)
    out = tmp_path / "data"
    code = generate(
        out,
        "data.teacher=openai",
        f"data.teacher_endpoint.base_url={server.url}",
        "data.teacher_endpoint.model=silent",
        "data.samples_per_mode=2",
        f"data.min_kept_share={share}",
    )
    err = [line for line in capsys.readouterr().err.splitlines() if line.startswith("hipo:")]
    assert code == 2 and len(err) == 1
    assert "teacher openai:silent: only 0 of 25 queries (0%)" in err[0]
    assert "100 of 100 samples were empty" in err[0] and "samples.jsonl" in err[0]
    assert not (out / "mix" / "train.parquet").exists()  # no empty dataset left behind


def test_a_teacher_below_the_kept_share_fails(tmp_path, capsys):
    out = tmp_path / "data"
    assert generate(out, "data.samples_per_mode=1", "data.min_kept_share=1.0") == 2
    assert "below data.min_kept_share=1.0" in capsys.readouterr().err


@pytest.mark.slow  # two hipo processes: about 30 s on a busy 2-core machine
def test_kill_9_repays_at_most_the_requests_in_flight(chat_server_factory, tmp_path):
    """Each answer is recorded before its thread sends the next request: after a kill -9 the rerun
    pays again only for what was in flight (at most max_concurrency requests) and pays nothing twice."""
    server = chat_server_factory(delay_s=0.03)
    out, concurrency = tmp_path / "data", 3
    args = [
        *("data", "generate", "--out", str(out), *SMALL),
        *("--set", "data.teacher=openai", "--set", f"data.teacher_endpoint.base_url={server.url}"),
        *("--set", "data.teacher_endpoint.model=t", "--set", "data.samples_per_mode=2"),
        *("--set", f"data.teacher_endpoint.max_concurrency={concurrency}"),
    ]
    command = [sys.executable, "-c", "import sys; from hipo.cli import main; sys.exit(main(sys.argv[1:]))"]
    env = {**os.environ, "PYTHONPATH": str(Path(__file__).resolve().parents[2])}
    first = subprocess.Popen([*command, *args], env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.monotonic() + 120
    while server.answered < 40 and first.poll() is None and time.monotonic() < deadline:
        time.sleep(0.005)
    first.send_signal(signal.SIGKILL)
    first.wait()
    assert first.returncode == -signal.SIGKILL, "the first run ended before it was killed"
    rerun = subprocess.run([*command, *args], env=env, capture_output=True, text=True, timeout=300)
    assert rerun.returncode == 0, rerun.stderr[-2000:]
    keys = [json.dumps([b["messages"], b["seed"]], sort_keys=True) for b in server.bodies]
    assert len(set(keys)) == 25 * 2 * 2  # queries x modes x samples, each paid for
    assert len(keys) - len(set(keys)) <= concurrency

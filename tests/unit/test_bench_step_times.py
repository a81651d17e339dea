"""bench/step_times.py: step wall times from a kfp.local console log, on hand-written logs."""

import json

import pytest

from bench.step_times import main, step_times

CYAN, GREEN, RESET = "\x1b[96m", "\x1b[92m", "\x1b[0m"
LOG = f"""\
23:59:00.000 - INFO - Executing task {CYAN}'sft'{RESET}
    sft step 40 · loss 0.3
23:59:30.500 - INFO - Task {CYAN}'sft'{RESET} finished with status {GREEN}SUCCESS{RESET}
23:59:30.501 - INFO - Executing task {CYAN}'hipo-rl'{RESET}
    rl step 1/2  reward 0.188  acc 0.062  think 0.81  tokens 1335  131.46 s/step  ETA 2m11s
    rl step 2/2  reward 0.663  acc 0.500  think 0.25  tokens 565  106.09 s/step  ETA 0m00s
00:03:30.501 - INFO - Task {CYAN}'hipo-rl'{RESET} finished with status {GREEN}SUCCESS{RESET}
"""


def test_steps_are_timed_across_midnight():
    times = step_times(LOG)
    assert times.step_wall_s == {"sft": 30.5, "hipo-rl": 240.0}  # 23:59:30.501 to 00:03:30.501
    assert times.total_s == 270.5


def test_a_log_without_finished_tasks_is_refused_with_the_fix():
    with pytest.raises(ValueError, match="console output of `hipo run`"):
        step_times("00:00:01.000 - INFO - Executing task 'sft'\n")


def test_cli_prints_the_table_and_writes_json(tmp_path, capsys):
    log, out = tmp_path / "run.log", tmp_path / "times.json"
    log.write_text(LOG, encoding="utf-8")
    assert main([str(log), "--json", str(out)]) == 0
    assert "| hipo-rl | 240 |" in capsys.readouterr().out
    assert json.loads(out.read_text(encoding="utf-8"))["total_s"] == 270.5
    assert main([str(tmp_path / "missing.log")]) == 2

"""The `hipo` command line and the current demo, run as a user would."""

import json
import subprocess
import sys

from hipo.cli import main
from hipo.config import build_config
from hipo.train.signal_table import run_signal_table


def test_config_prints_effective_yaml(tmp_path, capsys):
    path = tmp_path / "run.yaml"
    path.write_text("rl:\n  omega: 0.1\n")
    assert main(["config", "-c", str(path), "--set", "rl.gamma=0.5"]) == 0
    out = capsys.readouterr().out
    assert "omega: 0.1" in out and "gamma: 0.5" in out


def test_bad_config_exits_2_with_the_field_named(tmp_path, capsys):
    path = tmp_path / "run.yaml"
    path.write_text("rl:\n  omgea: 0.1\n")
    assert main(["config", "-c", str(path)]) == 2
    assert "field 'rl.omgea': unknown key" in capsys.readouterr().err


def test_sample_prints_parsable_json_lines():
    out = subprocess.run(
        [sys.executable, "-m", "hipo.cli", "sample", "--n", "2"], capture_output=True, text=True, check=True
    ).stdout
    rows = [json.loads(line) for line in out.splitlines()]
    assert len(rows) == 4 and {r["mode"] for r in rows} == {"on", "off"}


def test_demo_signal_points_easy_to_off_and_hard_to_on(tmp_path, capsys):
    config = build_config({"task": {"train_size": 200, "eval_size": 50}})
    rows = run_signal_table(config, tmp_path, problems_per_level=100)
    assert (tmp_path / "data" / "mix" / "train.parquet").is_file()
    assert (tmp_path / "quality" / "report.html").is_file()
    by_level = {r.difficulty: r for r in rows}
    assert by_level[1].hipo_prefers == "off" and by_level[5].hipo_prefers == "on"
    assert by_level[5].pass_on > by_level[5].pass_off
    # GRPO gives no mode signal where both modes pass equally often; HiPO's bias does
    assert abs(by_level[1].grpo_adv_off) < 0.1 < by_level[1].hipo_judge_off
    assert "pushes" in capsys.readouterr().out


def test_data_generate_then_validate(tmp_path, capsys):
    out = tmp_path / "data"
    sizes = ["--set", "task.train_size=100", "--set", "task.eval_size=30"]
    assert main(["data", "generate", "--out", str(out), *sizes]) == 0
    assert main(["data", "validate", str(out / "mix"), "--report", str(tmp_path / "report")]) == 0
    assert (tmp_path / "report" / "report.html").is_file()
    assert main(["data", "validate", str(out / "on")]) == 1
    assert "think_on_share:train" in capsys.readouterr().err
    assert main(["data", "validate", str(tmp_path / "missing")]) == 2

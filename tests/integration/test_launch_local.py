"""The local backend of run_training: the CLI entry in process, or torchrun with 2 CPU processes."""

import pytest

from hipo.config import build_config
from hipo.data.pipeline import generate_dataset
from hipo.data.rationale import TemplateRationaleWriter
from hipo.engines.scripted import ScriptedEngine
from hipo.launch import LaunchError, run_training
from hipo.tasks import get_task

MODEL = {"tiny_hidden": 32, "tiny_layers": 1, "tiny_heads": 2}
SFT = {"steps": 2, "batch_size": 8, "eval_every": 2, "optim": {"micro_batch_size": 4}}
RL = {"steps": 1, "prompts_per_step": 2, "group_size": 2, "optim": {"micro_batch_size": 4}}


def local(procs: int = 1, **sections):
    return build_config({"model": MODEL, "sft": SFT, "launch": {"procs_per_node": procs}, **sections})


@pytest.fixture(scope="module")
def sft_data(tmp_path_factory):
    out = tmp_path_factory.mktemp("local-launch-data")
    config = build_config({"task": {"train_size": 40, "eval_size": 16}})
    generate_dataset(config, get_task("arithmetic"), ScriptedEngine(seed=0), TemplateRationaleWriter(), out)
    return out / "mix"


def test_sft_then_rl_in_process(sft_data, tmp_path):
    sft = run_training("sft", ["--data", str(sft_data)], local(), tmp_path / "sft", "run-1")
    assert sft == tmp_path / "sft" and (sft / "config.json").is_file() and (sft / "metrics.jsonl").is_file()
    config = local(rl=RL, rollout_sampling={"max_new_tokens": 16})
    final = run_training("rl", ["--policy", str(sft)], config, tmp_path / "rl", "run-1")
    assert final == tmp_path / "rl" / "final" and (final / "config.json").is_file()


def test_in_process_failure_names_the_exit_code(tmp_path, capsys):
    with pytest.raises(LaunchError, match=r"`hipo train sft .*` failed with exit code 2"):
        run_training("sft", ["--data", str(tmp_path / "missing")], local(), tmp_path / "out", "run-1")
    assert "missing" in capsys.readouterr().err


@pytest.mark.slow  # about 2.5 minutes on 2 shared cores: two torchrun launches of two ranks each
def test_torchrun_with_two_processes(sft_data, tmp_path, capfd):
    out = run_training("sft", ["--data", str(sft_data)], local(procs=2), tmp_path / "sft", "run-1")
    assert (out / "config.json").is_file()
    assert '"world_size": 2' in capfd.readouterr().err  # rank 0's metrics, streamed from the child
    with pytest.raises(LaunchError) as caught:
        run_training("sft", ["--data", str(tmp_path / "missing")], local(procs=2), tmp_path / "bad", "run-1")
    assert "torchrun with 2 processes exited with code" in str(caught.value)
    assert "missing" in str(caught.value).split("--- last")[1]  # the log tail carries the child's message

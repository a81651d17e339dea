"""The local backend of run_training: hipo.train in process, or torchrun with 2 CPU processes."""

import pytest

from hipo.cli import main
from hipo.config import build_config
from hipo.data.pipeline import generate_dataset
from hipo.engines.scripted import ScriptedEngine
from hipo.launch import LaunchError, run_training
from hipo.launch.local import run_stage
from hipo.storage.datasets import DatasetError
from hipo.tasks import get_task
from hipo.tasks.rationale import TemplateRationaleWriter

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
    sft = run_training("sft", str(sft_data), local(), tmp_path / "sft", "run-1", task="mix")
    assert sft == tmp_path / "sft" and (sft / "config.json").is_file() and (sft / "metrics.jsonl").is_file()
    config = local(rl=RL, rollout_sampling={"max_new_tokens": 16})
    final = run_training("rl", str(sft), config, tmp_path / "rl", "run-1", task="mix-hipo")
    assert final == tmp_path / "rl" / "final" and (final / "config.json").is_file()


def test_in_process_failure_is_the_training_error_itself(tmp_path):
    with pytest.raises(DatasetError, match=r"missing does not exist"):
        run_training("sft", str(tmp_path / "missing"), local(), tmp_path / "out", "run-1", task="mix")


@pytest.mark.slow  # about 2.5 minutes on 2 shared cores: two torchrun launches of two ranks each
def test_torchrun_with_two_processes(sft_data, tmp_path, capfd):
    out = run_training("sft", str(sft_data), local(procs=2), tmp_path / "sft", "run-1", task="mix")
    assert (out / "config.json").is_file()
    assert '"world_size": 2' in capfd.readouterr().err  # rank 0's metrics, streamed from the child
    with pytest.raises(LaunchError) as caught:
        run_training(
            "sft",
            str(tmp_path / "missing"),
            local(procs=2),
            tmp_path / "bad",
            "run-1",
            task="mix",
        )
    assert "torchrun with 2 processes exited with code" in str(caught.value)
    assert "missing" in str(caught.value).split("--- last")[1]  # the log tail carries the child's message


def _config_file(tmp_path, config) -> str:
    path = tmp_path / "run.yaml"
    path.write_text(config.to_yaml(), encoding="utf-8")
    return str(path)


def test_hipo_train_trains_in_process_where_torchrun_is_not_asked_for(tmp_path, capsys, monkeypatch):
    data = ["--data", str(tmp_path / "missing"), "--out", str(tmp_path / "out")]
    trainjob = build_config({"launch": {"backend": "trainjob", "procs_per_node": 2}})
    assert main(["train", "sft", "--config", _config_file(tmp_path, trainjob), *data]) == 2
    err = capsys.readouterr().err
    assert "missing" in err and "torchrun" not in err  # a cluster pod's config: train here, as one rank
    monkeypatch.setenv("WORLD_SIZE", "2")  # already a torchrun rank: train, do not start another torchrun
    with pytest.raises(DatasetError, match="missing"):
        run_stage("sft", local(procs=2), str(tmp_path / "missing"), tmp_path / "out")
    assert "torchrun" not in capsys.readouterr().err


def test_hipo_train_on_the_data_pipelines_output_folder_names_its_cold_start_sets(sft_data, tmp_path, capsys):
    out = sft_data.parent  # generate_dataset's folder: mix/ and on/ inside
    assert main(["train", "sft", "--data", str(out), "--out", str(tmp_path / "sft")]) == 2
    assert (
        f"it holds the Cold-Start sets mix and on: pass {out / 'mix'} or {out / 'on'}"
        in capsys.readouterr().err
    )


@pytest.mark.slow  # 47 s on 2 cores: three torchrun launches of two ranks each
def test_hipo_train_starts_torchrun_for_launch_procs_per_node(sft_data, tmp_path, capfd):
    config = _config_file(tmp_path, local(procs=2, rl=RL, rollout_sampling={"max_new_tokens": 16}))

    def train(stage: str, *args: str) -> int:
        return main(["train", stage, "--config", config, *args])

    assert train("sft", "--data", str(sft_data), "--out", str(tmp_path / "sft")) == 0
    err = capfd.readouterr().err
    assert "starting torchrun with 2 processes" in err and '"world_size": 2' in err
    assert train("rl", "--policy", str(tmp_path / "sft"), "--out", str(tmp_path / "rl")) == 0
    assert (tmp_path / "rl" / "final" / "config.json").is_file()
    assert "starting torchrun with 2 processes" in capfd.readouterr().err
    assert train("sft", "--data", str(tmp_path / "missing"), "--out", str(tmp_path / "x")) == 1
    assert "hipo: torchrun with 2 processes exited with code" in capfd.readouterr().err

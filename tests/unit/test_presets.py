"""Presets: named run configurations shipped in hipo/presets, under --config and --set."""

import pytest

from hipo.cli import main
from hipo.config import ConfigError, load_config, preset_names


def test_shipped_presets_validate():
    assert {"smollm2-gsm8k", "smollm2-gsm8k-gpu"} <= set(preset_names())
    cpu = load_config(preset="smollm2-gsm8k")
    assert (cpu.model.base, cpu.rl.rollout_engine, cpu.eval.engine) == ("smollm2", "hf", "hf")
    assert cpu.task.datasets == ("gsm8k", "arithmetic") and cpu.launch.backend == "local"
    assert (cpu.data.teacher, cpu.data.think_on_source) == ("scripted+hf", "reference")
    gpu = load_config(preset="smollm2-gsm8k-gpu")
    assert (gpu.rl.rollout_engine, gpu.eval.engine, gpu.launch.backend) == ("vllm", "vllm", "trainjob")
    assert gpu.launch.gpus_per_node > 0 and gpu.model.base != "smollm2"


def test_each_base_model_registers_under_its_own_name():
    """The gate compares a challenger with the champion of its registered model: a SmolLM2 model held
    against the tiny model's champion (or the 1.7B against the 135M) would be judged on another task."""
    names = {p: load_config(preset=p).registry.model_name for p in ("smollm2-gsm8k", "smollm2-gsm8k-gpu")}
    names["tiny"] = load_config().registry.model_name
    assert len(set(names.values())) == 3, names
    assert load_config(preset="demo").registry.model_name == names["tiny"]  # same base model, same lineage


def test_unknown_preset_lists_the_known_ones():
    with pytest.raises(ConfigError, match=r"unknown preset 'smollm3'.*smollm2-gsm8k"):
        load_config(preset="smollm3")


def test_precedence_preset_then_file_then_overrides(tmp_path):
    path = tmp_path / "run.yaml"
    path.write_text("rl:\n  steps: 3\n  group_size: 6\neval:\n  max_problems: 5\n", encoding="utf-8")
    config = load_config(path, ["rl.steps=2"], preset="smollm2-gsm8k")
    preset = load_config(preset="smollm2-gsm8k")
    assert config.rl.steps == 2  # --set over the file over the preset
    assert config.rl.group_size == 6 and config.eval.max_problems == 5  # the file over the preset
    assert config.rl.prompts_per_step == preset.rl.prompts_per_step  # preset keys the file leaves alone
    assert config.rl.optim.lr == preset.rl.optim.lr and config.model.base == "smollm2"


def test_cli_commands_take_preset(capsys):
    assert main(["config", "--preset", "smollm2-gsm8k", "--set", "sft.steps=1"]) == 0
    out = capsys.readouterr().out
    assert "base: smollm2" in out and "steps: 1" in out
    with pytest.raises(SystemExit) as exit_info:
        main(["config", "--preset", "nope"])
    assert exit_info.value.code == 2
    assert "invalid choice: 'nope'" in capsys.readouterr().err

"""The run configuration: defaults from docs/algorithm.md, YAML loading, clear rejections."""

import pytest

from hipo.config import ConfigError, RunConfig, build_config, load_config


def test_defaults_are_the_reference_choices():
    c = RunConfig()
    assert (c.data.samples_per_mode, c.data.delta, c.data.random_mode_rate) == (8, 0.125, 0.01)
    assert (c.rl.bias, c.rl.omega, c.rl.gamma, c.rl.local_norm, c.rl.global_mode_adv) == (
        "relative",
        0.05,
        1.0,
        True,
        True,
    )
    assert (c.rl.clip_low, c.rl.clip_high, c.rl.loss_agg, c.rl.kl_beta) == (0.2, 0.28, "token_mean", 0.0)
    assert (c.rl.format_weight, c.rl.eps) == (0.2, 1e-6)
    assert (c.rollout_sampling.temperature, c.rollout_sampling.top_p) == (1.0, 1.0)
    assert (c.eval_sampling.temperature, c.eval_sampling.top_p) == (0.6, 0.95)


@pytest.mark.parametrize(
    ("override", "section", "kept"),
    [
        (
            "eval_sampling.greedy=false",
            "eval_sampling",
            {"temperature": 0.6, "top_p": 0.95, "max_new_tokens": 128},
        ),
        ("eval_sampling.max_new_tokens=64", "eval_sampling", {"temperature": 0.6, "top_p": 0.95}),
        ("rollout_sampling.temperature=0.8", "rollout_sampling", {"top_p": 1.0, "max_new_tokens": 128}),
        (
            "rl.optim.micro_batch_size=8",
            "rl.optim",
            {"lr": 3e-5, "warmup_ratio": 0.0, "schedule": "constant"},
        ),
    ],
)
def test_setting_one_field_keeps_the_sections_other_defaults(override, section, kept):
    """Each section's defaults are its own class's, so a partial override does not reset the rest."""
    values = build_config(overrides=[override]).to_dict()
    for key in section.split("."):
        values = values[key]
    assert {k: values[k] for k in kept} == kept


def test_yaml_round_trip(tmp_path):
    c = build_config({"rl": {"omega": 0.1, "bias": "absolute"}, "task": {"difficulties": [1, 4]}})
    path = tmp_path / "run.yaml"
    path.write_text(c.to_yaml())
    again = load_config(path)
    assert again == c and again.rl.omega == 0.1 and again.task.difficulties == (1, 4)
    assert again.config_hash() == c.config_hash() != RunConfig().config_hash()


def test_overrides_parse_values_as_yaml(tmp_path):
    path = tmp_path / "run.yaml"
    path.write_text("rl:\n  omega: 0.1\n")
    c = load_config(path, ["rl.local_norm=false", "data.delta=0.25", "rl.algorithm=grpo"])
    assert (c.rl.omega, c.rl.local_norm, c.data.delta, c.rl.algorithm) == (0.1, False, 0.25, "grpo")


def test_on_and_off_stay_strings_where_yaml_1_1_would_read_booleans(tmp_path):
    path = tmp_path / "run.yaml"
    path.write_text("sft:\n  dataset: on\nrl:\n  local_norm: off\n")
    c = load_config(path, ["eval.forced_mode_passes=no"])
    assert (c.sft.dataset, c.rl.local_norm, c.eval.forced_mode_passes) == ("on", False, False)
    assert build_config({}, ["sft.dataset=on", "rl.global_mode_adv=off"]).sft.dataset == "on"
    assert build_config({}, ["rl.global_mode_adv=off"]).rl.global_mode_adv is False
    assert load_config(overrides=["sft.dataset=on"]).to_yaml().count("dataset: 'on'") == 1  # round trip


@pytest.mark.parametrize(
    ("values", "needle"),
    [
        ({"rl": {"omgea": 0.1}}, "field 'rl.omgea': unknown key"),
        ({"colour": "red"}, "field 'colour': unknown key"),
        ({"rl": {"omega": -1}}, "field 'rl.omega'"),
        ({"data": {"delta": 1.5}}, "field 'data.delta'"),
        ({"rl": {"bias": "sometimes"}}, "field 'rl.bias'"),
        ({"rl": {"loss_agg": "sum"}}, "field 'rl.loss_agg'"),
        ({"rl": {"group_size": 1}}, "field 'rl.group_size'"),
        ({"eval_sampling": {"top_p": 0}}, "field 'eval_sampling.top_p'"),
        ({"data": {"hard_p_off": 0.9, "easy_p_off": 0.5}}, "hard_p_off must not exceed easy_p_off"),
    ],
)
def test_bad_values_name_the_field(values, needle):
    with pytest.raises(ConfigError, match="invalid run configuration") as info:
        build_config(values)
    assert needle in str(info.value)


def test_every_error_is_reported_at_once():
    with pytest.raises(ConfigError) as info:
        build_config({"rl": {"omega": -1, "gamma": -2}})
    assert "rl.omega" in str(info.value) and "rl.gamma" in str(info.value)


@pytest.mark.parametrize(
    ("content", "needle"),
    [("rl: [1, 2", "not valid YAML"), ("- a\n- b\n", "must hold a mapping"), (b"\xff\xfe", "not valid YAML")],
)
def test_bad_files(tmp_path, content, needle):
    path = tmp_path / "run.yaml"
    path.write_bytes(content if isinstance(content, bytes) else content.encode())
    with pytest.raises(ConfigError, match=needle):
        load_config(path)


def test_missing_file_and_bad_override(tmp_path):
    with pytest.raises(ConfigError, match="does not exist"):
        load_config(tmp_path / "nope.yaml")
    with pytest.raises(ConfigError, match=r"section\.field=value"):
        load_config(None, ["omega"])
    with pytest.raises(ConfigError, match="'omega' is not a section"):
        load_config(None, ["rl.omega=0.1", "rl.omega.x=1"])


def test_config_is_immutable():
    with pytest.raises(ValueError, match="frozen"):
        RunConfig().seed = 3

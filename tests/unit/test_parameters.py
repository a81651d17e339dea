"""The one parameter list: typed values set on the run configuration as they are, in a fixed order."""

from __future__ import annotations

import pytest

from hipo.config import ConfigError, RunConfig
from hipo.pipeline.parameters import CONFIG_PARAMETERS, PARAMETERS, from_config, to_config


def test_names_are_unique_and_every_field_is_bound_once():
    names = [p.name for p in PARAMETERS]
    fields = [p.field for p in CONFIG_PARAMETERS.values()]
    assert len(set(names)) == len(names)
    assert len(set(fields)) == len(fields)
    assert all(p.help for p in PARAMETERS)


def test_typed_values_reach_the_configuration_unchanged():
    config = to_config({"omega": 1e-05, "datasets": ["gsm8k", "math"], "teacher_model": "0.10", "nodes": 2})
    assert config.rl.omega == 1e-05
    assert config.task.datasets == ("gsm8k", "math")
    assert config.data.teacher_model == "0.10"
    assert config.launch.nodes == 2
    assert from_config(config)["datasets"] == ["gsm8k", "math"]


def test_an_empty_url_is_no_endpoint_and_reads_back_empty():
    config = to_config({"teacher_url": "", "judge_url": "http://judge:8000/v1"})
    assert config.data.teacher_endpoint.base_url is None
    assert config.data.judge_endpoint.base_url == "http://judge:8000/v1"
    assert from_config(config)["teacher_url"] == ""


def test_the_yaml_base_then_the_parameters_then_the_overrides():
    base = {"rl": {"omega": 0.3, "gamma": 0.5}}
    assert to_config({}, base).rl.omega == 0.3
    assert to_config({"omega": 0.2}, base).rl.omega == 0.2
    config = to_config({"omega": 0.2}, base, ["rl.omega=0.1"])
    assert (config.rl.omega, config.rl.gamma) == (0.1, 0.5)
    assert base == {"rl": {"omega": 0.3, "gamma": 0.5}}, "the caller's base must stay as it was"


def test_an_unknown_parameter_is_refused_with_the_known_names():
    with pytest.raises(ConfigError, match=r"unknown pipeline parameters \['omgea'\].*'omega'"):
        to_config({"omgea": 0.1})


def test_a_pipeline_only_parameter_is_not_a_configuration_value():
    with pytest.raises(ConfigError, match=r"unknown pipeline parameters \['arms'\]"):
        to_config({"arms": "all"})


def test_a_mistyped_value_names_the_field():
    with pytest.raises(ConfigError, match=r"rl\.omega"):
        to_config({"omega": "high"})
    assert to_config({}) == RunConfig()

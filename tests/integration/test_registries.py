"""Registries: a new advantage estimator or engine is one function plus one registration, and the
config accepts exactly the registered names."""

import json

import pytest
import torch
from rl_support import rl_config

from hipo import template
from hipo.config import ConfigError, RunConfig, build_config
from hipo.engines import make_teacher
from hipo.engines.base import Completion
from hipo.engines.registry import ENGINES, EngineKind, names, register_engine
from hipo.evaluate.compare import engine_for
from hipo.train import registry
from hipo.train.registry import ADVANTAGE_ESTIMATORS, REWARD_FUNCTIONS, register_advantage_estimator
from hipo.train.rl import train_rl


@pytest.fixture
def toy_estimator():
    """A registered estimator that gives every token advantage 0 and records the shapes it saw."""
    seen = []

    @register_advantage_estimator("toy")
    def toy(rl, rewards, modes, judge_len, mask):
        seen.append((tuple(rewards.shape), tuple(modes.shape), tuple(judge_len.shape), tuple(mask.shape)))
        return torch.zeros(mask.shape, dtype=rewards.dtype)

    yield seen
    ADVANTAGE_ESTIMATORS.pop("toy")


def test_a_registered_estimator_trains_through_the_real_trainer(toy_estimator, tiny_model_dir, tmp_path):
    config = rl_config({"rl": {"algorithm": "toy", "steps": 1, "prompts_per_step": 2, "group_size": 4}})
    result = train_rl(config, str(tiny_model_dir), tmp_path)
    assert result["step"] == 1
    ((rewards, modes, judge_len, mask),) = toy_estimator  # called once, with [B, G] and [B, G, T]
    assert rewards == modes == judge_len == mask[:2] == (2, 4)
    (line,) = [json.loads(x) for x in (tmp_path / "metrics.jsonl").read_text().splitlines()]
    assert line["loss"] == 0.0  # all-zero advantages and no KL term: the estimator's output is the loss


@pytest.mark.parametrize(
    ("field", "what"), [("algorithm", "advantage estimator"), ("reward", "reward function")]
)
def test_unknown_names_are_refused_with_the_registered_choices(field, what):
    with pytest.raises(ConfigError) as error:
        build_config({"rl": {field: "nope"}})
    choices = {"algorithm": ADVANTAGE_ESTIMATORS, "reward": REWARD_FUNCTIONS}[field]
    assert f"unknown {what} 'nope': use one of {', '.join(sorted(choices))}" in str(error.value)


def test_defaults_are_registered_and_registering_twice_is_refused():
    config = RunConfig()  # defaults skip the registry check at load: they must be registered
    assert config.rl.algorithm in ADVANTAGE_ESTIMATORS and config.rl.reward in REWARD_FUNCTIONS
    assert config.data.teacher in names("teacher") and config.eval.engine in names("checkpoint")
    assert config.rl.rollout_engine in names("rollouts")
    with pytest.raises(ValueError, match="registered twice"):
        registry.register_advantage_estimator("grpo")(registry.grpo)


class ToyEngine:
    """Every sample is the same well-formed Think-off answer."""

    name = "toy"

    def generate(self, prompts, n, sampling, forced_mode="auto", judges=None):
        text = template.render("off", "Easy.", "42")
        return [[Completion(text=text) for _ in range(n)] for _ in prompts]


def toy_teacher(data, cache_dir):
    return ToyEngine()


@pytest.fixture
def toy_engine():
    """Registered as the built-ins are: a factory by "module:function" name, or a callable."""
    register_engine("toy", EngineKind(teacher=f"{__name__}:toy_teacher", checkpoint=lambda m, c: ToyEngine()))
    yield
    ENGINES.pop("toy")


def test_a_registered_engine_serves_as_teacher_and_for_evaluation(toy_engine):
    config = build_config({"data": {"teacher": "toy"}, "eval": {"engine": "toy"}})
    for engine in (make_teacher(config.data), engine_for("any/model", config)):
        (samples,) = engine.generate(["What is 40 + 2?"], 2, config.eval_sampling)
        assert [template.parse(s.text).answer for s in samples] == ["42", "42"]


def test_an_engine_is_accepted_only_for_the_roles_it_fills():
    register_engine("teacher-only", EngineKind(teacher=lambda data, cache: ToyEngine()))
    try:
        assert build_config({"data": {"teacher": "teacher-only"}}).data.teacher == "teacher-only"
        with pytest.raises(
            ConfigError, match=r"unknown engine 'teacher-only' for eval\.engine: use one of hf, vllm"
        ):
            build_config({"eval": {"engine": "teacher-only"}})
    finally:
        ENGINES.pop("teacher-only")
    with pytest.raises(
        ConfigError, match=r"unknown engine 'scripted' for rl\.rollout_engine: use one of hf, vllm"
    ):
        build_config({"rl": {"rollout_engine": "scripted"}})
    with pytest.raises(ValueError, match="registered twice"):
        register_engine("hf", ENGINES["hf"])

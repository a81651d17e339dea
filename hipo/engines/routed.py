"""A teacher that sends each prompt to one of two engines: arithmetic-ladder prompts to the scripted
teacher, every other prompt to a model. It serves the math task's mixture (``task.datasets: [gsm8k,
arithmetic]``) where only the easy tier has a scripted teacher (``data.teacher: scripted+hf``)."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from pathlib import Path

from hipo import template
from hipo.config import DataConfig, SamplingConfig
from hipo.engines.base import Completion, Engine
from hipo.tasks.arithmetic import operands_of
from hipo.tasks.base import TaskError


def is_arithmetic_prompt(prompt: str) -> bool:
    try:
        operands_of(prompt)
    except TaskError:
        return False
    return True


class RoutedEngine:
    """``easy`` answers the prompts ``route`` accepts, ``hard`` the others; results keep prompt order."""

    def __init__(
        self, easy: Engine, hard: Engine, route: Callable[[str], bool] = is_arithmetic_prompt
    ) -> None:
        self.easy, self.hard, self.route = easy, hard, route
        self.name = f"routed({easy.name}|{hard.name})"
        # the model half's tokenizer, so that the data pipeline counts every row's tokens the same way
        self.tokenizer = getattr(hard, "tokenizer", None) or getattr(easy, "tokenizer", None)

    def generate(
        self,
        prompts: Sequence[str],
        n: int,
        sampling: SamplingConfig,
        forced_mode: template.ForcedMode = "auto",
        judges: Sequence[str] | None = None,
    ) -> list[list[Completion]]:
        easy = [i for i, p in enumerate(prompts) if self.route(p)]
        hard = [i for i, p in enumerate(prompts) if not self.route(p)]
        out: list[list[Completion]] = [[] for _ in prompts]
        for engine, picks in ((self.easy, easy), (self.hard, hard)):
            if picks:
                picked = None if judges is None else [judges[i] for i in picks]
                results = engine.generate([prompts[i] for i in picks], n, sampling, forced_mode, picked)
                for i, samples in zip(picks, results, strict=True):
                    out[i] = samples
        return out


def model_teacher(data: DataConfig, cache_dir: Path | None) -> Engine:
    """The hf half of ``scripted+hf``: ``data.teacher_model`` is "smollm2" (the packaged SmolLM2-135M,
    converted once under ``cache_dir``, with the HiPO tokens added) or a local model directory."""
    from hipo.engines import HFEngine
    from hipo.engines.factories import model_dir

    if data.teacher_model == "smollm2":
        from hipo.config import ModelConfig
        from hipo.models.policy import load_policy

        policy = load_policy("smollm2", ModelConfig(), cache_dir or Path(".cache"), seed=data.seed)
        return HFEngine(policy.model, policy.tokenizer, seed=data.seed)
    return HFEngine(model_dir(data), seed=data.seed)


def routed_teacher(data: DataConfig, cache_dir: Path | None) -> Engine:
    """``scripted+hf``: the scripted teacher for arithmetic prompts, the model for the others."""
    from hipo.engines.scripted import ScriptedEngine

    return RoutedEngine(ScriptedEngine(seed=data.seed), model_teacher(data, cache_dir))

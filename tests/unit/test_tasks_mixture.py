"""The math task with the arithmetic ladder as its easy tier; the scripted+hf teacher's routing."""

from hipo import template
from hipo.config import RunConfig, SamplingConfig, TaskConfig
from hipo.engines import ScriptedEngine
from hipo.engines.base import Completion
from hipo.engines.routed import RoutedEngine, is_arithmetic_prompt
from hipo.tasks import task_from_config
from hipo.tasks.math import MATH_TIER_OFFSET, MathTask


def test_mixture_draws_both_tiers_apart():
    task = task_from_config(TaskConfig(name="math", datasets=("gsm8k", "arithmetic"), difficulties=(1, 2)))
    problems = task.problems("train", 20, seed=3)
    assert problems == task.problems("train", 20, seed=3)
    easy = [p for p in problems if p.source == "arithmetic"]
    hard = [p for p in problems if p.source == "gsm8k"]
    assert len(easy) == 10 and len(hard) == 10 and len({p.id for p in problems}) == 20
    assert {p.difficulty for p in easy} <= {1, 2}
    assert {p.difficulty for p in hard} == {MATH_TIER_OFFSET + 1}  # GSM8K has no levels of its own


def test_math_levels_shift_past_the_ladder():
    problems = MathTask(("math", "arithmetic")).problems("test", 40, seed=0)
    levels = {p.difficulty for p in problems if p.source == "math"}
    assert levels and min(levels) > MATH_TIER_OFFSET and max(levels) <= MATH_TIER_OFFSET + 5


def test_verification_dispatches_per_source():
    task = MathTask(("gsm8k", "arithmetic"), difficulties=(3,))
    problems = task.problems("test", 6, seed=0)
    easy = next(p for p in problems if p.source == "arithmetic")
    hard = next(p for p in problems if p.source == "gsm8k")
    assert task.verify(easy, easy.answer) and not task.verify(easy, str(int(easy.answer) + 1))
    assert not task.verify(easy, f"{easy.answer}.5")  # the ladder's exact integer check
    assert task.verify(hard, f"\\frac{{{2 * int(hard.answer)}}}{{2}}")  # math-verify: equivalent forms
    assert not task.verify(hard, str(int(hard.answer) + 1)) and not task.verify(hard, None)
    response = template.render("off", "easy", f"\\boxed{{{easy.answer}}}")
    assert task.verify(easy, task.extract(response))


def test_pure_math_task_is_unchanged():
    plain = MathTask(("gsm8k",)).problems("test", 5, seed=1)
    assert all(p.source == "gsm8k" and p.difficulty is None for p in plain)


class _Echo:
    """An engine that answers every prompt with the prompt itself (the model half of the route)."""

    name = "echo"

    def __init__(self) -> None:
        self.seen: list[str] = []

    def generate(self, prompts, n, sampling, forced_mode="auto", judges=None):
        self.seen.extend(prompts)
        return [[Completion(p)] * n for p in prompts]


def test_routed_teacher_sends_arithmetic_to_the_script():
    task = MathTask(("gsm8k", "arithmetic"))
    problems = task.problems("train", 6, seed=0)
    prompts = [p.prompt for p in problems]
    model = _Echo()
    engine = RoutedEngine(ScriptedEngine(seed=0), model)
    out = engine.generate(prompts, 2, SamplingConfig(), forced_mode="on")
    assert model.seen == [p.prompt for p in problems if p.source == "gsm8k"]
    for problem, samples in zip(problems, out, strict=True):
        assert len(samples) == 2 and is_arithmetic_prompt(problem.prompt) == (problem.source == "arithmetic")
        if problem.source == "arithmetic":
            assert template.parse(samples[0].text).mode == "on"
        else:
            assert samples[0].text == problem.prompt
    assert engine.tokenizer is None  # neither half has one: the data pipeline counts characters
    model.tokenizer = "the model's tokenizer"
    assert RoutedEngine(ScriptedEngine(seed=0), model).tokenizer == "the model's tokenizer"


def test_scripted_hf_teacher_is_a_config_choice():
    config = RunConfig.model_validate({"data": {"teacher": "scripted+hf", "teacher_model": "smollm2"}})
    assert config.data.teacher == "scripted+hf"

"""The arithmetic scripted teacher (hipo.tasks.teacher) behind the engine interface.

It has no token distribution to shape, so temperature, top_p and greedy are ignored; ``max_new_tokens``
caps the whole response, counted as ``Completion.num_tokens`` counts it (characters, each tag one
token), with finish_reason "length" when it cuts. ``forced_mode="auto"`` draws the mode per sample,
50/50, from the engine's seeded generator; the same seed and the same calls give the same samples.
Forced responses carry the teacher's placeholder judge (the data pipeline writes the real one), so
they start with the mode's tags but not with the empty-judge prefill of template.prefill.
"""

from __future__ import annotations

import random
from collections.abc import Sequence
from functools import lru_cache

from hipo import template
from hipo.config import SamplingConfig
from hipo.engines.base import _CHAR_TOKENS, Completion, EngineError
from hipo.tasks.arithmetic import LEVELS, operands_of
from hipo.tasks.base import Problem, TaskError
from hipo.tasks.teacher import ScriptedTeacher

_LEVEL_BY_DIGITS = {tuple(sorted(digits, reverse=True)): level for level, digits in LEVELS.items()}
# A rendered response holds exactly these tags, each one token: tokens = characters - this.
_TAG_EXCESS: dict[template.Mode, int] = {
    "on": sum(len(t) - 1 for t in template.HIPO_TAGS),
    "off": sum(
        len(t) - 1
        for t in template.HIPO_TAGS
        if t not in (template.THINK_ON, template.THINK_OPEN, template.THINK_CLOSE)
    ),
}


@lru_cache(maxsize=1 << 16)
def _problem(prompt: str) -> Problem:
    try:
        operands = operands_of(prompt)
    except TaskError as error:
        raise EngineError(f"scripted engine: {error}; it answers only arithmetic-ladder prompts") from None
    digits = tuple(sorted((len(str(x)) for x in operands), reverse=True))
    level = _LEVEL_BY_DIGITS.get(digits)
    if level is None:
        raise EngineError(
            f"scripted engine: {prompt!r} matches no difficulty level of the ladder "
            f"(operand digits per level: {LEVELS})"
        )
    return Problem(id="", prompt=prompt, answer=str(sum(operands)), source="arithmetic", difficulty=level)


class ScriptedEngine:
    """Seeded, fast HiPO-format responses for arithmetic prompts ("What is A + B?")."""

    name = "scripted"

    def __init__(self, teacher: ScriptedTeacher | None = None, seed: int = 0) -> None:
        self.teacher = teacher or ScriptedTeacher(seed=seed)
        self._rng = random.Random(seed)

    def generate(
        self,
        prompts: Sequence[str],
        n: int,
        sampling: SamplingConfig,
        forced_mode: template.ForcedMode = "auto",
        judges: Sequence[str] | None = None,  # the teacher writes its placeholder judge
    ) -> list[list[Completion]]:
        if forced_mode not in ("auto", "on", "off"):
            raise EngineError(f"forced_mode must be 'auto', 'on' or 'off', got {forced_mode!r}")
        rng, respond, limit = self._rng, self.teacher.respond, sampling.max_new_tokens
        out: list[list[Completion]] = []
        for prompt in prompts:
            problem = _problem(prompt)
            samples = []
            for _ in range(n):
                mode = forced_mode if forced_mode != "auto" else ("on" if rng.random() < 0.5 else "off")
                text = respond(problem, mode, rng)
                if len(text) - _TAG_EXCESS[mode] <= limit:
                    samples.append(Completion(text, finish_reason="stop"))
                else:
                    samples.append(
                        Completion("".join(_CHAR_TOKENS.findall(text)[:limit]), finish_reason="length")
                    )
            out.append(samples)
        return out

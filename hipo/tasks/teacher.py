"""A scripted teacher for the arithmetic ladder: fast, seeded HiPO-format responses with realistic errors.

It stands in for a strong LLM in the hybrid data pipeline (docs/algorithm.md §2) so the pipeline can
run at scale on a CPU. Per difficulty it errs with probability ``p_err`` per mode:

=====  ==========  ===========
level  think-on    think-off
=====  ==========  ===========
d1     0.02        0.02
d2     0.03        0.05
d3     0.04        0.15
d4     0.06        0.55
d5     0.10        0.85
=====  ==========  ===========

So with δ = 0.125 and N = 8, d1–d2 prefer think-off, d3 (gap 0.11) is the mixed rung that lands on
think-off for about 70% of its queries and on think-on for the rest, and d4–d5 need think-on, as the
arithmetic ladder in docs/results.md describes. A think-on error is one slip inside the trace (a
dropped carry or a column sum off by one) carried through to a consistent wrong answer; a think-off
error is a plausible wrong direct answer (a dropped carry or one digit off by one). Errors never
equal the right answer. The judge text is a placeholder that the data pipeline replaces.
"""

from __future__ import annotations

import random
from collections.abc import Mapping
from functools import lru_cache

from hipo import template
from hipo.tasks.arithmetic import add_columns, carries_in, operands_of
from hipo.tasks.base import Problem, TaskError

DEFAULT_ERROR_RATES: dict[int, tuple[float, float]] = {
    1: (0.02, 0.02),
    2: (0.03, 0.05),
    3: (0.04, 0.15),
    4: (0.06, 0.55),
    5: (0.10, 0.85),
}
PLACEHOLDER_JUDGE = "Placeholder rationale from the scripted teacher."


@lru_cache(maxsize=1 << 16)
def _correct(prompt: str, mode: template.Mode) -> str:
    ops = operands_of(prompt)
    if mode == "on":
        think, answer = add_columns(ops)
        return template.render("on", PLACEHOLDER_JUDGE, str(answer), think=think)
    return template.render("off", PLACEHOLDER_JUDGE, str(sum(ops)))


def slipped_trace(operands: tuple[int, ...], rng: random.Random) -> tuple[str, int]:
    """A trace with one slip and the (wrong) answer it leads to."""
    carries = carries_in(operands)
    drops = [i for i, c in enumerate(carries) if c]
    if drops and rng.random() < 0.5:
        return add_columns(operands, (rng.choice(drops), "drop"))
    col = rng.randrange(len(carries))
    column_sum = sum(x // 10**col % 10 for x in operands) + carries[col]
    kind = "up" if column_sum == 0 or rng.random() < 0.5 else "down"
    return add_columns(operands, (col, kind))


def wrong_direct(operands: tuple[int, ...], rng: random.Random) -> int:
    """A plausible wrong direct answer: one carry dropped, or one digit off by one."""
    total = sum(operands)
    carries = carries_in(operands)
    drops = [i for i, c in enumerate(carries) if c]
    if drops and rng.random() < 0.5:
        i = rng.choice(drops)
        return total - carries[i] * 10**i
    digits = str(total)
    j = rng.randrange(len(digits))
    d = int(digits[j])
    options = [x for x in (d - 1, d + 1) if 0 <= x <= 9 and not (x == 0 and j == 0 and len(digits) > 1)]
    return int(digits[:j] + str(rng.choice(options)) + digits[j + 1 :])


class ScriptedTeacher:
    """Samples complete HiPO responses for arithmetic problems in a forced mode.

    ``error_rates`` maps difficulty -> (p_err_think_on, p_err_think_off) and overrides the defaults
    level by level. ``rng`` arguments default to the teacher's own generator seeded with ``seed``.
    """

    def __init__(self, error_rates: Mapping[int, tuple[float, float]] | None = None, seed: int = 0) -> None:
        rates = dict(DEFAULT_ERROR_RATES)
        for level, pair in (error_rates or {}).items():
            try:
                p_on, p_off = (float(p) for p in pair)
            except (TypeError, ValueError) as error:
                raise TaskError(f"error_rates[{level!r}] must be a pair (p_on, p_off): {pair!r}") from error
            if not (0.0 <= p_on <= 1.0 and 0.0 <= p_off <= 1.0):
                raise TaskError(f"error_rates[{level!r}] must lie in [0, 1], got {pair!r}")
            rates[int(level)] = (p_on, p_off)
        self.error_rates = rates
        self.seed = seed
        self._rng = random.Random(seed)

    def respond(self, problem: Problem, mode: template.Mode, rng: random.Random | None = None) -> str:
        """One full response (judge placeholder, mode tag, trace iff on, answer)."""
        rng = rng or self._rng
        rates = self.error_rates.get(problem.difficulty)  # type: ignore[arg-type]
        if rates is None:
            raise TaskError(
                f"problem {problem.id} has difficulty {problem.difficulty!r}; the teacher knows levels "
                f"{sorted(self.error_rates)}: build it with hipo.tasks.arithmetic or pass error_rates for it"
            )
        if mode == "on":
            if rng.random() >= rates[0]:
                return _correct(problem.prompt, "on")
            think, answer = slipped_trace(operands_of(problem.prompt), rng)
            return template.render("on", PLACEHOLDER_JUDGE, str(answer), think=think)
        if mode == "off":
            if rng.random() >= rates[1]:
                return _correct(problem.prompt, "off")
            return template.render(
                "off", PLACEHOLDER_JUDGE, str(wrong_direct(operands_of(problem.prompt), rng))
            )
        raise TaskError(f"mode must be 'on' or 'off', got {mode!r}")

    def sample(
        self, problem: Problem, mode: template.Mode, n: int, rng: random.Random | None = None
    ) -> list[str]:
        """``n`` independent responses in ``mode``."""
        rng = rng or self._rng
        return [self.respond(problem, mode, rng) for _ in range(n)]

"""Think-on samples from a query's own worked solution (``data.think_on_source: reference``).

A weak model teacher (SmolLM2-135M on GSM8K) solves almost no query in Think-on mode, so every query
would be dropped. The datasets ship verified reasoning instead: ``Problem.reference`` is the GSM8K
worked answer (the text before "####"), the MATH solution, or the arithmetic ladder's column-sum trace.
That reasoning becomes the query's one Think-on sample, with the reference answer (GSM8K: the number
after "####") in the answer block. GSM8K's calculator annotations ("<<48/2=24>>") are removed. The
sample is verified like a teacher's, so p_on is 1 when the verifier accepts the reference answer.
Think-off samples still come from the teacher.
"""

from __future__ import annotations

import re

from hipo import template
from hipo.engines.base import Completion
from hipo.tasks.base import Problem, TaskError

_CALCULATOR = re.compile(r"<<[^<>]*>>")


def reference_trace(problem: Problem) -> tuple[str, str]:
    """(reasoning, answer) of the problem's reference solution, calculator annotations removed."""
    think = _CALCULATOR.sub("", problem.reference or "").strip()
    if not think:
        raise TaskError(
            f"query {problem.id!r} ({problem.source}) has no reference solution, but "
            "data.think_on_source=reference takes every Think-on sample from one: give its row a worked "
            "solution (a GSM8K answer with '#### x', or a 'solution' field) or set "
            "data.think_on_source=teacher"
        )
    return think, problem.answer


def reference_completion(problem: Problem) -> Completion:
    """The Think-on response built from the reference solution (empty judge: the pipeline writes it)."""
    think, answer = reference_trace(problem)
    try:
        text = template.render("on", "", answer, think=think)
    except ValueError as error:
        raise TaskError(
            f"query {problem.id!r}: its reference solution is not a usable response: {error}"
        ) from None
    return Completion(text, finish_reason="stop")

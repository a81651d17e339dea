"""Helper columns for the checks great-expectations cannot express directly.

Each one is computed here with :func:`hipo.template.parse` (or a set lookup) and then checked by an
ordinary expectation, so every check of the gate is a great-expectations result. A helper is added only
when the columns it derives from are present.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from hipo import template
from hipo.storage.datasets import SPLIT_COLUMN
from hipo.tasks.grading import equivalent, plain_number
from hipo.tasks.rationale import leaks_answer

FORMAT_OK = "_format_ok"  # the response parses with format_ok
PROBLEMS = "_problems"  # why it does not (shown in examples)
PARSED_MODE = "_parsed_mode"  # the mode tag of the response
PARSED_ANSWER = "_parsed_answer"  # the response's answer block, whitespace-normalised
ANSWER = "_answer"  # the answer column, whitespace-normalised
THINK_ON = "_think_on"  # 1.0 for mode "on", else 0.0 (its mean is the think-on share)
IN_EVAL = "_in_eval"  # the prompt also occurs in the eval split
TOKENS_PLAUSIBLE = "_n_tokens_plausible"  # n_tokens fits what the response text can hold
JUDGE_LEAKS = "_judge_leaks"  # the judge span states the response's own answer
ANSWER_AGREES = "_answer_agrees"  # answer and reference_answer are the same value
BYTES_PER_TOKEN = 128  # no tokenizer's token spans more bytes: a lower bound on the count of long text

DERIVED_FROM: dict[str, tuple[str, ...]] = {
    FORMAT_OK: ("response",),
    PROBLEMS: ("response",),
    PARSED_MODE: ("response",),
    PARSED_ANSWER: ("response",),
    ANSWER: ("answer",),
    THINK_ON: ("mode",),
    IN_EVAL: ("prompt",),
    TOKENS_PLAUSIBLE: ("response", "n_tokens"),
    JUDGE_LEAKS: ("response",),
    ANSWER_AGREES: ("answer", "reference_answer"),
}


def normalize_space(text: object) -> str | None:
    """Runs of whitespace as one space, ends trimmed; None for anything that is not a string."""
    return " ".join(text.split()) if isinstance(text, str) else None


def token_range(text: object) -> tuple[int, int]:
    """(least, most) tokens any tokenizer gives ``text``: a token never crosses whitespace nor spans
    more than BYTES_PER_TOKEN bytes, and never holds less than a byte."""
    if not isinstance(text, str):
        return (0, 0)
    size = len(text.encode("utf-8", "surrogatepass"))
    return max(len(text.split()), -(-size // BYTES_PER_TOKEN)), size


def plausible_count(text: object, count: object) -> bool:
    low, high = token_range(text)
    return isinstance(count, int | np.integer) and low <= count <= high


def same_value(answer: object, reference: object) -> bool:
    """Whether two answers are the same value: equal text (whitespace-normalised), equal plain numbers,
    or mathematically equivalent (math-verify, time-bounded)."""
    a, b = normalize_space(answer), normalize_space(reference)
    if a is None or b is None:
        return False
    if a == b:
        return True
    x, y = plain_number(a), plain_number(b)
    if x is not None and y is not None:
        return x == y
    return equivalent(b, a)


def add_helpers(frame: pd.DataFrame) -> pd.DataFrame:
    """A copy of ``frame`` with every helper column whose source columns it has."""
    out = frame.copy()
    if "response" in out:
        parsed = [template.parse(r if isinstance(r, str) else None) for r in out["response"]]
        out[FORMAT_OK] = [p.format_ok for p in parsed]
        out[PROBLEMS] = ["; ".join(p.problems) for p in parsed]
        out[PARSED_MODE] = pd.array([p.mode for p in parsed], dtype="string")
        out[PARSED_ANSWER] = pd.array([normalize_space(p.answer) for p in parsed], dtype="string")
        out[JUDGE_LEAKS] = [bool(p.judge and p.answer and leaks_answer(p.judge, p.answer)) for p in parsed]
        if "n_tokens" in out:
            pairs = zip(out["response"], out["n_tokens"], strict=True)
            out[TOKENS_PLAUSIBLE] = [plausible_count(r, n) for r, n in pairs]
    if "answer" in out:
        out[ANSWER] = pd.array([normalize_space(a) for a in out["answer"]], dtype="string")
    if "answer" in out and "reference_answer" in out:
        pairs = zip(out["answer"], out["reference_answer"], strict=True)
        out[ANSWER_AGREES] = [same_value(a, r) for a, r in pairs]
    if "mode" in out:
        out[THINK_ON] = (out["mode"] == "on").fillna(False).astype("float64")
    if "prompt" in out:
        eval_prompts = set(out.loc[out[SPLIT_COLUMN] == "eval", "prompt"].dropna())
        out[IN_EVAL] = out["prompt"].isin(eval_prompts).astype(bool)
    return out

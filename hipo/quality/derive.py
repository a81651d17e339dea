"""Helper columns for the checks great-expectations cannot express directly.

Each one is computed here with :func:`hipo.template.parse` (or a set lookup) and then checked by an
ordinary expectation, so every check of the gate is a great-expectations result. A helper is added only
when the columns it derives from are present.
"""

from __future__ import annotations

import pandas as pd

from hipo import template
from hipo.quality.load import SPLIT_COLUMN

FORMAT_OK = "_format_ok"  # the response parses with format_ok
PROBLEMS = "_problems"  # why it does not (shown in examples)
PARSED_MODE = "_parsed_mode"  # the mode tag of the response
PARSED_ANSWER = "_parsed_answer"  # the response's answer block, whitespace-normalised
ANSWER = "_answer"  # the answer column, whitespace-normalised
THINK_ON = "_think_on"  # 1.0 for mode "on", else 0.0 (its mean is the think-on share)
IN_EVAL = "_in_eval"  # the prompt also occurs in the eval split

DERIVED_FROM: dict[str, tuple[str, ...]] = {
    FORMAT_OK: ("response",),
    PROBLEMS: ("response",),
    PARSED_MODE: ("response",),
    PARSED_ANSWER: ("response",),
    ANSWER: ("answer",),
    THINK_ON: ("mode",),
    IN_EVAL: ("prompt",),
}


def normalize_space(text: object) -> str | None:
    """Runs of whitespace as one space, ends trimmed; None for anything that is not a string."""
    return " ".join(text.split()) if isinstance(text, str) else None


def add_helpers(frame: pd.DataFrame) -> pd.DataFrame:
    """A copy of ``frame`` with every helper column whose source columns it has."""
    out = frame.copy()
    if "response" in out:
        parsed = [template.parse(r if isinstance(r, str) else None) for r in out["response"]]
        out[FORMAT_OK] = [p.format_ok for p in parsed]
        out[PROBLEMS] = ["; ".join(p.problems) for p in parsed]
        out[PARSED_MODE] = pd.array([p.mode for p in parsed], dtype="string")
        out[PARSED_ANSWER] = pd.array([normalize_space(p.answer) for p in parsed], dtype="string")
    if "answer" in out:
        out[ANSWER] = pd.array([normalize_space(a) for a in out["answer"]], dtype="string")
    if "mode" in out:
        out[THINK_ON] = (out["mode"] == "on").fillna(False).astype("float64")
    if "prompt" in out:
        eval_prompts = set(out.loc[out[SPLIT_COLUMN] == "eval", "prompt"].dropna())
        out[IN_EVAL] = out["prompt"].isin(eval_prompts).astype(bool)
    return out

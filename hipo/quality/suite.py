"""The gate's expectations: one great-expectations Expectation per check, named and described in ``meta``.

``build_checks`` returns them with the columns each reads (a check whose columns are missing is not
run: ``columns_present`` already fails and names them) and the columns its example rows show.
"""

from __future__ import annotations

from dataclasses import dataclass

import great_expectations.expectations as gxe
from great_expectations.expectations.row_conditions import Column

from hipo.config import QualityConfig
from hipo.quality import derive as d
from hipo.storage.datasets import DATASET_COLUMNS, DIFFICULTIES, MODES, NULLABLE_COLUMNS, SPLIT_COLUMN, SPLITS

# The type name great-expectations checks per kind (pandas backend: a dtype or a Python type name).
GE_TYPES: dict[str, str] = {
    "string": "str",
    "float64": "float64",
    "int64": "int64",
    "Int64": "int64",
    "bool": "bool",
}

NON_EMPTY_COLUMNS = ("id", "prompt", "response", "answer", "reference_answer")


@dataclass(frozen=True)
class Check:
    """One expectation of the gate; ``name`` is its stable key in results and reports."""

    name: str
    description: str
    expectation: gxe.Expectation
    needs: tuple[str, ...]  # dataset columns it reads, directly or through a helper column
    show: tuple[str, ...]  # columns of its example rows (besides id and split)


def _check(name: str, description: str, expectation: gxe.Expectation, *extra: str) -> Check:
    """``extra``: columns read by the row condition or worth showing next to the checked ones."""
    kwargs = expectation.configuration.kwargs
    checked = [kwargs[k] for k in ("column", "column_A", "column_B") if k in kwargs]
    checked += list(kwargs.get("column_list", []))
    show = tuple(dict.fromkeys(c for c in (*checked, *extra) if c != SPLIT_COLUMN))
    needs = tuple(dict.fromkeys(c for col in show for c in d.DERIVED_FROM.get(col, (col,))))
    expectation.meta = {"name": name, "description": description}
    return Check(name, description, expectation, needs, show)


def _schema_checks() -> list[Check]:
    present = gxe.ExpectTableColumnsToMatchSet(column_set=list(DATASET_COLUMNS), exact_match=False)
    splits = gxe.ExpectColumnDistinctValuesToContainSet(column=SPLIT_COLUMN, value_set=list(SPLITS))
    checks = [
        _check("columns_present", f"all {len(DATASET_COLUMNS)} schema columns are present", present),
        _check("splits_have_rows", f"each split {list(SPLITS)} has at least one row", splits),
    ]
    for name, kind in DATASET_COLUMNS.items():
        typed = gxe.ExpectColumnValuesToBeOfType(column=name, type_=GE_TYPES[kind])
        checks.append(_check(f"type:{name}", f"{name} has type {kind}", typed))
    for name in DATASET_COLUMNS:
        if name not in NULLABLE_COLUMNS:
            not_null = gxe.ExpectColumnValuesToNotBeNull(column=name)
            checks.append(_check(f"not_null:{name}", f"{name} has no nulls", not_null))
    for name in NON_EMPTY_COLUMNS:
        non_empty = gxe.ExpectColumnValueLengthsToBeBetween(column=name, min_value=1)
        checks.append(_check(f"non_empty:{name}", f"{name} is not an empty string", non_empty))
    return checks


def _value_checks(q: QualityConfig) -> list[Check]:
    between, in_set = gxe.ExpectColumnValuesToBeBetween, gxe.ExpectColumnValuesToBeInSet
    on, off = Column("mode") == "on", Column("mode") == "off"
    return [
        _check(
            "id_unique", "every id occurs once in the dataset", gxe.ExpectColumnValuesToBeUnique(column="id")
        ),
        _check(
            "prompt_unique_per_split",
            "no prompt occurs twice within a split",
            gxe.ExpectCompoundColumnsToBeUnique(column_list=[SPLIT_COLUMN, "prompt"]),
        ),
        _check("mode_values", f"mode is one of {list(MODES)}", in_set(column="mode", value_set=list(MODES))),
        _check(
            "preferred_mode_values",
            f"preferred_mode is one of {list(MODES)}",
            in_set(column="preferred_mode", value_set=list(MODES)),
        ),
        _check(
            "difficulty_values",
            f"difficulty is one of the buckets {list(DIFFICULTIES)}",
            in_set(column="difficulty", value_set=list(DIFFICULTIES)),
        ),
        _check("p_on_range", "p_on lies in [0, 1]", between(column="p_on", min_value=0, max_value=1)),
        _check("p_off_range", "p_off lies in [0, 1]", between(column="p_off", min_value=0, max_value=1)),
        _check("n_tokens_nonnegative", "n_tokens is >= 0", between(column="n_tokens", min_value=0)),
        _check(
            "tokens_on_within_bounds",
            f"think-on responses have {q.min_tokens_on}..{q.max_tokens_on} tokens (n_tokens)",
            between(
                column="n_tokens", min_value=q.min_tokens_on, max_value=q.max_tokens_on, row_condition=on
            ),
            "mode",
        ),
        _check(
            "tokens_off_within_bounds",
            f"think-off responses have {q.min_tokens_off}..{q.max_tokens_off} tokens (n_tokens)",
            between(
                column="n_tokens", min_value=q.min_tokens_off, max_value=q.max_tokens_off, row_condition=off
            ),
            "mode",
        ),
    ]


def _derived_checks(q: QualityConfig) -> list[Check]:
    pair = gxe.ExpectColumnPairValuesToBeEqual
    parsed = Column(d.FORMAT_OK) == True  # noqa: E712 (builds a GE row condition; IN refuses booleans)
    checks = [
        _check(
            "no_eval_prompt_in_train",
            "no train prompt also occurs in eval (a leak)",
            gxe.ExpectColumnValuesToBeInSet(
                column=d.IN_EVAL, value_set=[False], row_condition=Column(SPLIT_COLUMN) == "train"
            ),
            "prompt",
        ),
        _check(
            "response_format_ok",
            "every response parses in the HiPO format (judge, one mode tag, think iff on, answer)",
            gxe.ExpectColumnValuesToBeInSet(column=d.FORMAT_OK, value_set=[True]),
            d.PROBLEMS,
            "response",
        ),
        _check(
            "mode_matches_response",
            "the mode tag of the response equals the mode column (responses that parse)",
            pair(column_A="mode", column_B=d.PARSED_MODE, row_condition=parsed),
        ),
        _check(
            "answer_matches_response",
            "the answer block of the response equals the answer column, whitespace-normalised",
            pair(column_A=d.ANSWER, column_B=d.PARSED_ANSWER, row_condition=parsed),
        ),
        _check(
            "answer_agrees_with_reference",
            "answer is the reference_answer's value (same text or number, or math-equivalent)",
            gxe.ExpectColumnValuesToBeInSet(column=d.ANSWER_AGREES, value_set=[True]),
            "answer",
            "reference_answer",
        ),
        _check(
            "judge_hides_the_answer",
            "the judge rationale does not state the response's answer",
            gxe.ExpectColumnValuesToBeInSet(column=d.JUDGE_LEAKS, value_set=[False], row_condition=parsed),
            "response",
        ),
        _check(
            "n_tokens_matches_response",
            "n_tokens fits the response text: at least its whitespace-separated pieces, at most its bytes",
            gxe.ExpectColumnValuesToBeInSet(column=d.TOKENS_PLAUSIBLE, value_set=[True]),
            "n_tokens",
            "response",
        ),
    ]
    for split in SPLITS:
        share = gxe.ExpectColumnMeanToBeBetween(
            column=d.THINK_ON,
            min_value=q.min_think_on_share,
            max_value=q.max_think_on_share,
            row_condition=Column(SPLIT_COLUMN) == split,
        )
        description = (
            f"the share of think-on rows in {split} lies in [{q.min_think_on_share}, {q.max_think_on_share}]"
        )
        checks.append(_check(f"think_on_share:{split}", description, share))
    return checks


def build_checks(q: QualityConfig) -> list[Check]:
    """Every check of the gate, in report order: schema, values, derived columns and shares."""
    return [*_schema_checks(), *_value_checks(q), *_derived_checks(q)]

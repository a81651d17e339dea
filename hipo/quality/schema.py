"""The schema of the hybrid SFT dataset (docs/algorithm.md §2, step 7) that the data pipeline writes.

One directory holds ``train.parquet`` and ``eval.parquet`` (``.jsonl`` is accepted too). The kinds are
pandas dtype names, so ``frame.astype(DATASET_COLUMNS)`` gives a frame the gate accepts: ``string``
columns hold text, ``Int64`` is pandas' nullable integer (``level`` is the only nullable column).
"""

from __future__ import annotations

DATASET_COLUMNS: dict[str, str] = {
    "id": "string",
    "source": "string",
    "prompt": "string",
    "response": "string",  # the full HiPO-format target
    "mode": "string",  # "on" | "off"
    "preferred_mode": "string",  # the mode the pass rates prefer: the label for mode-choice accuracy
    "answer": "string",  # the answer block text of the response
    "reference_answer": "string",  # the gold answer
    "p_on": "float64",
    "p_off": "float64",
    "difficulty": "string",  # pass-rate bucket
    "level": "Int64",  # the task's own difficulty where it has one
    "n_tokens": "int64",
    "random_mode": "bool",
    "rationale_model": "string",
    "teacher": "string",
    "seed": "int64",
    "config_hash": "string",
}
NULLABLE_COLUMNS = frozenset({"level"})
SPLITS = ("train", "eval")
FORMATS = (".parquet", ".jsonl")  # searched in this order per split
COLD_START_SETS = ("mix", "on")  # the data pipeline writes one dataset folder for each
MODES = ("on", "off")
DIFFICULTIES = ("easy", "medium", "hard")

# The type name great-expectations checks per kind (pandas backend: a dtype or a Python type name).
GE_TYPES: dict[str, str] = {
    "string": "str",
    "float64": "float64",
    "int64": "int64",
    "Int64": "int64",
    "bool": "bool",
}

"""Benchmarks (a task and a fixed list of its held-out problems) and the data pipeline's mode labels.

Names in ``config.eval.benchmarks``: ``arithmetic`` (the ladder's eval split, levels 1–5, stratified),
the math task's built-in datasets (``gsm8k``, ``math``, ``math500``: their test split), or a JSONL /
Parquet path or ``s3://`` URI read by the math task (a ``{split}`` in it becomes "test").
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass
from pathlib import Path

from hipo import storage
from hipo.config import EvalConfig
from hipo.tasks.arithmetic import ArithmeticTask
from hipo.tasks.base import Problem, Task, TaskError
from hipo.tasks.math import MathTask, read_rows, resolve

ARITHMETIC_LEVELS = (1, 2, 3, 4, 5)
LABEL_FILES = ("eval.parquet", "eval.jsonl")  # looked for, in this order, when a directory is given


@dataclass(frozen=True)
class Benchmark:
    """A named, fixed problem list and the task that extracts and verifies its answers."""

    name: str
    task: Task
    problems: list[Problem]

    def __post_init__(self) -> None:
        repeated = [i for i, n in Counter(p.id for p in self.problems).items() if n > 1]
        if repeated:
            raise TaskError(
                f"benchmark {self.name!r}: problem ids must be unique (results are keyed by id), "
                f"repeated: {repeated[:5]}"
            )


def load_benchmark(name: str, max_problems: int, seed: int) -> Benchmark:
    """One benchmark by name, path or URI, with at most ``max_problems`` problems (seeded draw)."""
    if name == "arithmetic":
        task = ArithmeticTask(ARITHMETIC_LEVELS)
        return Benchmark(name, task, task.problems("eval", max_problems, seed))
    source, _ = resolve(name, "test")
    task = MathTask((name,))
    return Benchmark(source, task, task.problems("test", max_problems, seed))


def load_benchmarks(config: EvalConfig, seed: int) -> list[Benchmark]:
    """The benchmarks of ``config.benchmarks``, in order; names must come out distinct."""
    benchmarks = [load_benchmark(name, config.max_problems, seed) for name in config.benchmarks]
    names = [b.name for b in benchmarks]
    if len(set(names)) != len(names):
        raise TaskError(
            f"eval.benchmarks {list(config.benchmarks)} give repeated benchmark names {names}: "
            "rename the files so that their stems differ"
        )
    return benchmarks


def _label_file(path: str) -> str:
    if path.endswith((".parquet", ".jsonl")):
        return path
    for name in LABEL_FILES:
        uri = f"{path.rstrip('/')}/{name}"
        if storage.exists(uri):
            return uri
    raise TaskError(
        f"{path}: no {' or '.join(LABEL_FILES)} in it; pass the data pipeline's dataset directory"
    )


def labels_from_dataset(path: str | Path) -> dict[str, str]:
    """``{prompt: preferred_mode}`` from the data pipeline's eval split: a .parquet / .jsonl file, or
    a dataset directory or s3:// prefix holding one."""
    uri = _label_file(str(path))
    labels: dict[str, str] = {}
    for position, row in read_rows(uri):
        if not isinstance(row, dict) or not {"prompt", "preferred_mode"} <= row.keys():
            raise TaskError(f"{uri}, {position}: expected 'prompt' and 'preferred_mode' columns")
        if row["preferred_mode"] in ("on", "off"):
            labels[row["prompt"]] = row["preferred_mode"]
    return labels

"""The common task interface: problems with verifiable answers, and a verifier per task.

A task hands out :class:`Problem` rows for a split and checks an extracted answer against one.
``get_task`` builds a task by name ("arithmetic", "math") with its options.
"""

from __future__ import annotations

import importlib
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Protocol, runtime_checkable

if TYPE_CHECKING:
    from hipo.config import TaskConfig


class TaskError(ValueError):
    """Bad input to a task (unknown name, bad option, unusable data row); the message names the fix."""


@dataclass(frozen=True)
class Problem:
    """One query with a verifiable reference answer.

    ``reference`` is the canonical reasoning or solution text where one is known (arithmetic: the
    column-sum trace; MATH: the solution; GSM8K: the worked answer).
    """

    id: str
    prompt: str
    answer: str
    source: str
    difficulty: int | None = None
    reference: str | None = None


@runtime_checkable
class Task(Protocol):
    """What every task offers. ``verify`` gets the extracted answer text (``extract``), not the response."""

    name: str

    def problems(self, split: str, n: int | None = None, seed: int = 0) -> list[Problem]:
        """Problems of ``split`` ("train" or "eval"/"test"), deterministic for (split, n, seed).

        ``n=None``: every problem of a dataset task, a standard size for a generated one.
        """
        ...

    def extract(self, response: str) -> str | None:
        """The answer text of a model response, or None when no answer can be located."""
        ...

    def verify(self, problem: Problem, predicted: str | None) -> bool:
        """True iff ``predicted`` is a correct answer to ``problem``; None is never correct. Never raises."""
        ...


def normalize_split(split: str) -> str:
    """The canonical split name: "train" or "test" ("eval" is an alias of "test")."""
    if split == "train":
        return "train"
    if split in ("eval", "test"):
        return "test"
    raise TaskError(f"unknown split {split!r}: use 'train' or 'eval' (alias 'test')")


# name -> (module, class); modules are imported on demand so that importing hipo.tasks stays light
_REGISTRY: dict[str, tuple[str, str]] = {
    "arithmetic": ("hipo.tasks.arithmetic", "ArithmeticTask"),
    "math": ("hipo.tasks.math", "MathTask"),
}


def get_task(name: str, **options: Any) -> Task:
    """Build a task by name, e.g. ``get_task("math", datasets=("gsm8k",))``."""
    if name not in _REGISTRY:
        raise TaskError(f"unknown task {name!r}: choose one of {sorted(_REGISTRY)}")
    module, cls_name = _REGISTRY[name]
    cls = getattr(importlib.import_module(module), cls_name)
    try:
        return cls(**options)
    except TypeError as error:
        raise TaskError(f"bad options for task {name!r} ({error}): see {module}.{cls_name}") from error


def task_from_config(config: TaskConfig) -> Task:
    """The task a run configuration names, with its options."""
    if config.name == "arithmetic":
        return get_task("arithmetic", difficulties=config.difficulties)
    if not config.datasets:
        raise TaskError(
            "task 'math' needs task.datasets, e.g. [gsm8k], [gsm8k, arithmetic] or a path / s3:// URI"
        )
    return get_task("math", datasets=config.datasets, difficulties=config.difficulties)

"""Engines by name, in one place: what ``data.teacher``, ``eval.engine`` and ``rl.rollout_engine``
accept, and how each is built.

Adding an engine is its class and factory in one file plus one ``register_engine`` call here. A
factory is given as a callable or as "module:function", imported on first use: this module imports
no engine, so the config checks names against it without an import circle, and RL's rollout factories
(they hold the live policy, in hipo/train/rollout_engine.py) are named without engines depending on
train.
"""

from __future__ import annotations

import importlib
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Literal

Role = Literal["teacher", "checkpoint", "rollouts"]
# teacher: (DataConfig, response cache dir or None) -> Engine, the data pipeline's teacher
# checkpoint: (model folder, RunConfig) -> Engine, serving a checkpoint for evaluation
# rollouts: (RLConfig, Policy, Updater, work dir, seed) -> RolloutEngine, sampling RL rollouts
Factory = Callable[..., Any] | str


@dataclass(frozen=True)
class EngineKind:
    teacher: Factory | None = None  # None: not a data.teacher
    checkpoint: Factory | None = None  # None: not an eval.engine
    rollouts: Factory | None = None  # None: not an rl.rollout_engine
    needs: str | None = None  # the module it imports, checked before any compute


ENGINES: dict[str, EngineKind] = {}
FIELDS: dict[Role, str] = {
    "teacher": "data.teacher",
    "checkpoint": "eval.engine",
    "rollouts": "rl.rollout_engine",
}


def register_engine(name: str, kind: EngineKind) -> None:
    if name in ENGINES:
        raise ValueError(f"engine {name!r} is registered twice")
    ENGINES[name] = kind


def names(role: Role) -> list[str]:
    """Registered engine names that can fill ``role``."""
    return sorted(name for name, kind in ENGINES.items() if getattr(kind, role) is not None)


def unknown_engine(name: str, role: Role) -> str | None:
    """None when ``name`` can fill ``role``, else the one-line error saying what can."""
    if name in names(role):
        return None
    return (
        f"unknown engine {name!r} for {FIELDS[role]}: use one of {', '.join(names(role))} (or register yours)"
    )


def factory(name: str, role: Role) -> Callable[..., Any]:
    """The factory of engine ``name`` for ``role`` (the config has checked the name)."""
    found = getattr(ENGINES[name], role)
    if isinstance(found, str):
        module, _, function = found.partition(":")
        return getattr(importlib.import_module(module), function)
    return found


register_engine("scripted", EngineKind(teacher="hipo.engines.factories:scripted_teacher"))
register_engine("scripted+hf", EngineKind(teacher="hipo.engines.routed:routed_teacher"))
register_engine(
    "hf",
    EngineKind(
        teacher="hipo.engines.factories:hf_teacher",
        checkpoint="hipo.evaluate.compare:hf_checkpoint",
        rollouts="hipo.train.rollout_engine:hf_rollouts",
    ),
)
register_engine(
    "vllm",
    EngineKind(
        teacher="hipo.engines.factories:vllm_teacher",
        checkpoint="hipo.evaluate.compare:vllm_checkpoint",
        rollouts="hipo.train.rollout_engine:vllm_rollouts",
        needs="vllm",
    ),
)
register_engine("openai", EngineKind(teacher="hipo.engines.factories:openai_teacher"))

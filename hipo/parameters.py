"""The pipeline's parameters: each user knob of the KFP UI is one field of the run configuration.

``PARAMETERS`` maps a pipeline parameter name to the dotted RunConfig field it sets. The pipeline
function takes its defaults from ``RunConfig()`` (``default``), so the KFP UI, ``hipo run`` and the
Python API agree on every default. ``to_overrides`` turns parameter values back into
``section.field=value`` overrides for ``build_config``.
"""

from __future__ import annotations

import json
from typing import Any

from hipo.config import RunConfig

PARAMETERS: dict[str, str] = {
    "seed": "seed",
    "base_model": "model.base",
    "task": "task.name",
    "datasets": "task.datasets",
    "train_size": "task.train_size",
    "eval_size": "task.eval_size",
    "teacher": "data.teacher",
    "teacher_model": "data.teacher_model",
    "teacher_url": "data.teacher_endpoint.base_url",
    "teacher_endpoint_model": "data.teacher_endpoint.model",
    "judge": "data.judge",
    "judge_url": "data.judge_endpoint.base_url",
    "judge_model": "data.judge_endpoint.model",
    "samples_per_mode": "data.samples_per_mode",
    "delta": "data.delta",
    "sft_steps": "sft.steps",
    "rl_algorithm": "rl.algorithm",
    "rl_steps": "rl.steps",
    "group_size": "rl.group_size",
    "omega": "rl.omega",
    "gamma": "rl.gamma",
    "launch_backend": "launch.backend",
    "nodes": "launch.nodes",
    "gpus_per_node": "launch.gpus_per_node",
    "work_uri": "launch.work_uri",
    "benchmarks": "eval.benchmarks",
    "eval_problems": "eval.max_problems",
    "model_name": "registry.model_name",
    "max_accuracy_drop": "registry.max_accuracy_drop",
    "max_token_increase": "registry.max_token_increase",
    "max_think_rate_increase": "registry.max_think_rate_increase",
}

# Optional endpoint URLs are None in the config and "" as a pipeline parameter (KFP has no null).
_NULLABLE = {"data.teacher_endpoint.base_url", "data.judge_endpoint.base_url"}


def _field(config: RunConfig, dotted: str) -> Any:
    node: Any = config
    for part in dotted.split("."):
        node = getattr(node, part)
    return node


def default(name: str, config: RunConfig | None = None) -> Any:
    """The pipeline parameter's value in ``config`` (the defaults when None), as KFP can type it."""
    value = _field(config or RunConfig(), PARAMETERS[name])
    if isinstance(value, tuple):
        return list(value)
    return "" if value is None else value


def from_config(config: RunConfig) -> dict[str, Any]:
    """Every pipeline parameter's value in ``config``: the arguments ``hipo run`` submits."""
    return {name: default(name, config) for name in PARAMETERS}


def to_overrides(values: dict[str, Any]) -> list[str]:
    """``section.field=value`` overrides from pipeline parameter values (unknown names are refused)."""
    unknown = sorted(set(values) - set(PARAMETERS))
    if unknown:
        raise KeyError(f"unknown pipeline parameters {unknown}; known: {sorted(PARAMETERS)}")
    overrides = []
    for name, value in values.items():
        field = PARAMETERS[name]
        if field in _NULLABLE and value == "":
            value = None
        overrides.append(f"{field}={json.dumps(value)}")
    return overrides

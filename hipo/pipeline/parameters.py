"""The pipeline's parameters, declared once: each user knob of the KFP UI, its type, default and help.

A parameter bound to a RunConfig field takes its type and default from that field, so the KFP UI,
``hipo run`` and the Python API agree on every default. The pipeline function's signature and
docstring (``signature``, ``docstring``) are generated from ``PARAMETERS``; the typed values reach
the run configuration as they are (``to_config``), never as ``section.field=value`` strings.
"""

from __future__ import annotations

import copy
import inspect
import types
import typing
from dataclasses import dataclass
from typing import Any

from pydantic import BaseModel

from hipo.config import ConfigError, RunConfig, build_config, set_dotted

KfpType = type[int] | type[float] | type[str] | type[list] | type[bool]


@dataclass(frozen=True)
class Parameter:
    """One pipeline parameter; ``field`` is the dotted RunConfig field it sets (None: pipeline-only)."""

    name: str
    type: KfpType
    default: Any
    help: str
    field: str | None = None

    def value(self, config: RunConfig) -> Any:
        """This parameter's value in ``config``."""
        assert self.field is not None, f"{self.name} is not a configuration field"
        return _read(config, self.field, self.type)


def _read(config: RunConfig, field: str, kind: KfpType) -> Any:
    """A field's value as KFP can type it: KFP has no null ("" stands for None) and no tuple."""
    node: Any = config
    for part in field.split("."):
        node = getattr(node, part)
    if node is None:
        return ""
    return list(node) if kind is list else kind(node)


def _annotation(field: str) -> Any:
    model: type[BaseModel] = RunConfig
    *sections, leaf = field.split(".")
    for section in sections:
        model = model.model_fields[section].annotation
    return model.model_fields[leaf].annotation


def _kfp_type(annotation: Any) -> KfpType:
    """The KFP parameter type of a field's annotation (a Literal of names is a string)."""
    origin = typing.get_origin(annotation)
    if origin is typing.Literal:
        return str
    if origin in (types.UnionType, typing.Union):  # an optional field: "" stands for None
        (inner,) = [arg for arg in typing.get_args(annotation) if arg is not type(None)]
        return _kfp_type(inner)
    if origin in (tuple, list):
        return list
    if annotation in (int, float, str, bool):
        return annotation
    raise TypeError(f"a pipeline parameter cannot carry a {annotation} field")


def _bound(name: str, field: str, help: str) -> Parameter:
    kind = _kfp_type(_annotation(field))
    return Parameter(name, kind, _read(RunConfig(), field, kind), help, field)


PARAMETERS: tuple[Parameter, ...] = (
    _bound("seed", "seed", "Random seed of data drawing, SFT and RL"),
    _bound("base_model", "model.base", "Base policy: tiny, smollm2, a directory, an s3:// URI or a Hub id"),
    _bound("task", "task.name", "Task family: arithmetic or math"),
    _bound("datasets", "task.datasets", "math task: dataset names, paths or s3:// URIs"),
    _bound("train_size", "task.train_size", "Training prompts"),
    _bound("eval_size", "task.eval_size", "Held-out evaluation prompts"),
    _bound(
        "teacher",
        "data.teacher",
        "Who writes the think-on/think-off answers: scripted, hf, openai, vllm or scripted+hf",
    ),
    _bound("teacher_model", "data.teacher_model", "hf / vllm teacher: a local model directory"),
    _bound("teacher_url", "data.teacher_endpoint.base_url", "OpenAI-compatible teacher URL (empty: none)"),
    _bound("teacher_endpoint_model", "data.teacher_endpoint.model", "Model name at the teacher URL"),
    _bound("judge", "data.judge", "Who writes the rationales: template or openai"),
    _bound("judge_url", "data.judge_endpoint.base_url", "OpenAI-compatible judge URL (empty: none)"),
    _bound("judge_model", "data.judge_endpoint.model", "Model name at the judge URL"),
    _bound("samples_per_mode", "data.samples_per_mode", "Teacher samples per prompt and mode"),
    _bound("delta", "data.delta", "Think-on must beat think-off by more than this pass rate"),
    _bound("sft_steps", "sft.steps", "Cold-start SFT steps"),
    _bound("rl_algorithm", "rl.algorithm", "Advantage estimator of the main line's RL: hipo or grpo"),
    _bound("rl_steps", "rl.steps", "RL steps"),
    _bound("group_size", "rl.group_size", "Rollouts per prompt (G)"),
    _bound("omega", "rl.omega", "Bias toward think-off (omega)"),
    _bound("gamma", "rl.gamma", "Weight of the judge advantage (gamma)"),
    _bound("launch_backend", "launch.backend", "Where training runs: local, trainjob or pytorchjob"),
    _bound("nodes", "launch.nodes", "Training nodes"),
    _bound("gpus_per_node", "launch.gpus_per_node", "GPUs per training node (0: CPU)"),
    _bound("work_uri", "launch.work_uri", "s3:// prefix where cluster jobs leave checkpoints"),
    _bound("benchmarks", "eval.benchmarks", "Evaluation benchmarks"),
    _bound("eval_problems", "eval.max_problems", "Evaluation problems per benchmark"),
    _bound("model_name", "registry.model_name", "Registered model name"),
    _bound("max_accuracy_drop", "registry.max_accuracy_drop", "Gate: largest accuracy drop vs the champion"),
    _bound("max_token_increase", "registry.max_token_increase", "Gate: largest relative token increase"),
    _bound(
        "max_think_rate_increase", "registry.max_think_rate_increase", "Gate: largest think-rate increase"
    ),
    Parameter("arms", str, "hipo", "Arms to train: hipo, baseline (+ Cold-Start on) or all (five)"),
    Parameter("s3_secret", str, "hipo-s3", "Secret with the object storage and MLflow settings"),
    Parameter("api_key_secret", str, "hipo-judge", "Secret with the teacher and judge API keys"),
    Parameter("config_yaml", str, "", "A whole run configuration (YAML) under the parameters above"),
    Parameter("config_overrides", list, [], "section.field=value overrides applied last"),
)
CONFIG_PARAMETERS = {p.name: p for p in PARAMETERS if p.field is not None}


def signature() -> inspect.Signature:
    """The pipeline function's signature: every parameter typed, with its default."""
    keyword = inspect.Parameter.POSITIONAL_OR_KEYWORD
    return inspect.Signature(
        [inspect.Parameter(p.name, keyword, default=p.default, annotation=p.type) for p in PARAMETERS]
    )


def docstring(summary: str) -> str:
    """``summary`` with an Args section KFP reads into each parameter's description."""
    return "\n".join([summary, "", "Args:", *(f"    {p.name}: {p.help}" for p in PARAMETERS)])


def from_config(config: RunConfig) -> dict[str, Any]:
    """Every configuration parameter's value in ``config``: the arguments ``hipo run`` submits."""
    return {name: parameter.value(config) for name, parameter in CONFIG_PARAMETERS.items()}


def to_config(
    values: dict[str, Any], base: dict[str, Any] | None = None, overrides: list[str] | tuple[str, ...] = ()
) -> RunConfig:
    """The run configuration: ``base`` (nested values), the typed parameter ``values`` set on it as
    they are, then the free ``section.field=value`` ``overrides``."""
    unknown = sorted(set(values) - set(CONFIG_PARAMETERS))
    if unknown:
        raise ConfigError(f"unknown pipeline parameters {unknown}; known: {sorted(CONFIG_PARAMETERS)}")
    tree = copy.deepcopy(base or {})
    for name, value in values.items():
        field = CONFIG_PARAMETERS[name].field
        assert field is not None
        optional = type(None) in typing.get_args(_annotation(field))
        set_dotted(tree, field, None if optional and value == "" else value)
    return build_config(tree, overrides)

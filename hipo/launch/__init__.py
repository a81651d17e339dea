"""The training launcher: one call that runs a training stage where ``config.launch`` says.

``run_training(stage, source, config, out_dir, run_id, task_config, task=...)`` trains ``stage`` from
``source`` (the dataset for sft, the policy for rl) and returns the local directory of the final model:
``out_dir`` for sft, ``out_dir/final`` for rl.

- ``local``: ``hipo.train`` in this process, or under torchrun with ``launch.procs_per_node`` CPU
  processes (``hipo.launch.local``).
- ``trainjob`` / ``pytorchjob``: uploads the run configuration and a local source to
  ``launch.work_uri``, runs ``hipo.launch.entry`` there as a job (``hipo.launch.kube``), then downloads the
  final model from ``{work_uri}/{job name}`` into ``out_dir``. The job name is derived from ``run_id``,
  the stage and ``task`` (the arm: cold-start set, RL algorithm), so each training task of a run has a
  job of its own and a retried step re-attaches to its job instead of starting another. The job carries
  a digest of its stage, task, configuration and inputs: a job of that name made for anything else is
  an error, never reused.

``run_evaluation(models, config, out_dir, ...)`` runs ``eval.engine=vllm`` evaluation the same way, as an
``eval`` job on the train image (vLLM, one GPU) whose results the step downloads into ``out_dir``.
"""

from __future__ import annotations

from collections.abc import Sequence
from importlib.util import find_spec
from pathlib import Path
from typing import Any

from hipo import storage
from hipo.config import RunConfig
from hipo.launch.entry import SOURCE_OPTION
from hipo.launch.images import TRAIN_IMAGE
from hipo.launch.kube import (
    JOB_KINDS,
    JobRunner,
    LaunchError,
    StepCancelled,
    api_client,
    cancel_on_sigterm,
    default_namespace,
)
from hipo.launch.local import run_stage
from hipo.launch.manifests import (
    JobSpec,
    Stage,
    apply_task_config,
    job_name,
    pytorchjob,
    task_digest,
    trainjob,
)

__all__ = [
    "LaunchError",
    "StepCancelled",
    "evaluates_in_a_job",
    "job_spec",
    "preflight",
    "run_evaluation",
    "run_training",
]

# hipo.launch.entry's options whose local paths the pods cannot see
INPUT_FLAGS = ("--data", "--policy", "--model", "--labels", "--reuse")


def evaluates_in_a_job(config: RunConfig) -> bool:
    """vLLM evaluation on a cluster runs as a job on the train image: the step image has no vLLM or GPU."""
    return config.launch.backend != "local" and config.eval.engine == "vllm"


def preflight(config: RunConfig) -> None:
    """Refuse at the first step what a run could only fail at hours later, after training."""
    if config.eval.engine != "vllm":
        return
    if config.launch.backend == "local" and not find_spec("vllm"):
        raise LaunchError(
            "eval.engine=vllm with launch.backend=local: vLLM is not installed here (pip install "
            "'hipo-pipelines[gpu]' on a GPU machine); set eval.engine=hf, or run on a cluster backend"
        )
    if evaluates_in_a_job(config) and config.launch.gpus_per_node < 1:
        raise LaunchError(
            f"eval.engine=vllm with launch.backend={config.launch.backend} evaluates in a job on one GPU, "
            "but launch.gpus_per_node is 0: set launch.gpus_per_node (GPU nodes) or eval.engine=hf"
        )


def _final_dir(stage: Stage, out_dir: Path) -> Path:
    return out_dir if stage == "sft" else out_dir / "final"


def run_training(
    stage: Stage,
    source: str | Path,
    config: RunConfig,
    out_dir: str | Path,
    run_id: str,
    task_config: Any = None,
    *,
    task: str,
    run_name: str = "",
) -> Path:
    """Train ``stage`` from ``source`` per ``config.launch``; return the local final model directory.

    ``task_config``: the ``dsl.TaskConfig`` KFP passed to the calling component (cluster backends
    merge its env, volumes, node selector, tolerations and affinity into the job). ``task``: which
    training task of the run this is (e.g. ``"mix"``, ``"on-grpo"``); it names the cluster job.
    ``run_name``: an RL stage's MLflow run name.
    """
    if stage not in ("sft", "rl"):
        raise LaunchError(f"unknown training stage {stage!r}: expected 'sft' or 'rl'")
    out_dir = Path(out_dir)
    if config.launch.backend == "local":
        run_stage(stage, config, str(source), out_dir, run_name=run_name)
    else:
        inputs = [SOURCE_OPTION[stage], str(source), *(["--run-name", run_name] if run_name else [])]
        _run_on_cluster(stage, inputs, config, out_dir, run_id, task_config, task)
    final = _final_dir(stage, out_dir)
    if not (final / "config.json").is_file():
        raise LaunchError(
            f"training finished but left no model in {final} (no config.json): see the log above"
        )
    return final


def job_spec(
    stage: Stage, entry_args: Sequence[str], config: RunConfig, run_id: str, task: str, digest: str = ""
) -> JobSpec:
    """The job for ``stage`` as ``config.launch`` describes it (before any KFP TaskConfig). An eval job
    is one process on one node with one GPU (the vLLM engine serves a model on one GPU)."""
    launch = config.launch
    evaluation = stage == "eval"
    # TrainJob pods take CPU and memory from the runtime; PyTorchJob pods have no runtime
    requests = {"cpu": launch.cpu_request, "memory": launch.memory_request}
    return JobSpec(
        name=job_name(stage, run_id, task),
        digest=digest,
        namespace=launch.namespace or default_namespace(),
        stage=stage,
        run_id=run_id,
        args=tuple(entry_args),
        image=launch.image or TRAIN_IMAGE,
        runtime=launch.runtime,
        nodes=1 if evaluation else launch.nodes,
        gpus_per_node=min(launch.gpus_per_node, 1) if evaluation else launch.gpus_per_node,
        procs_per_node=1 if evaluation else launch.procs_per_node,
        requests=requests if launch.backend == "pytorchjob" else {},
        # TrainJob cannot add envFrom: its ClusterTrainingRuntime declares these Secrets itself
        env_from_secrets=launch.env_secrets if launch.backend == "pytorchjob" else (),
        service_account=launch.service_account,
        deadline_s=launch.deadline_s,
    )


def _stage_inputs(entry_inputs: Sequence[str], inputs_uri: str) -> list[str]:
    """``entry_inputs`` with each local input path uploaded under ``inputs_uri`` and replaced by its URI
    (a repeated option's second path goes to ``<option>-1``, and so on)."""
    args, seen = list(entry_inputs), dict.fromkeys(INPUT_FLAGS, 0)
    for i, arg in enumerate(args[:-1]):
        path = Path(args[i + 1])
        if arg in INPUT_FLAGS and not args[i + 1].startswith("s3://") and path.exists():
            target = f"{inputs_uri}/{arg.lstrip('-')}" + (f"-{seen[arg]}" if seen[arg] else "")
            seen[arg] += 1
            if path.is_dir():
                storage.upload_dir(path, target)
            else:
                target = f"{target}/{path.name}"
                storage.write_bytes(target, path.read_bytes())
            args[i + 1] = target
    return args


def run_job(
    stage: Stage, entry_inputs: Sequence[str], config: RunConfig, run_id: str, task_config: Any, task: str
) -> str:
    """Run ``hipo.launch.entry STAGE`` with ``entry_inputs`` (its input options) as a job of
    ``config.launch.backend`` until it succeeds; returns its output URI."""
    launch = config.launch
    if not launch.work_uri.startswith("s3://"):
        raise LaunchError(
            f"launch.backend={launch.backend} needs launch.work_uri, an s3:// prefix that both this step and "
            f"the training pods can reach (got {launch.work_uri!r})"
        )
    name = job_name(stage, run_id, task)
    # the inputs live under the digest: an attempt made for other inputs never overwrites these
    digest = task_digest(stage, task, config.to_yaml(), entry_inputs)
    work = launch.work_uri.rstrip("/")
    out_uri, inputs_uri = f"{work}/{name}", f"{work}/inputs/{name}/{digest}"
    storage.write_bytes(f"{inputs_uri}/config.yaml", config.to_yaml().encode())
    entry = [stage, "--config-uri", f"{inputs_uri}/config.yaml", "--out-uri", out_uri]
    entry_args = [*entry, *_stage_inputs(entry_inputs, inputs_uri)]
    spec = apply_task_config(job_spec(stage, entry_args, config, run_id, task, digest), task_config)
    body = trainjob(spec) if launch.backend == "trainjob" else pytorchjob(spec)
    runner = JobRunner(api_client(), JOB_KINDS[launch.backend], spec.namespace, launch.deadline_s)
    with cancel_on_sigterm():
        runner.run(body)
    return out_uri


def _run_on_cluster(
    stage: Stage,
    entry_inputs: Sequence[str],
    config: RunConfig,
    out_dir: Path,
    run_id: str,
    task_config: Any,
    task: str,
) -> None:
    out_uri = run_job(stage, entry_inputs, config, run_id, task_config, task)
    if stage == "sft":
        storage.download_prefix(out_uri, out_dir)
    else:
        storage.download_prefix(f"{out_uri}/final", out_dir / "final")
        if storage.exists(f"{out_uri}/metrics.jsonl"):
            (out_dir / "metrics.jsonl").write_bytes(storage.read_bytes(f"{out_uri}/metrics.jsonl"))


def run_evaluation(
    models: dict[str, str],
    config: RunConfig,
    out_dir: str | Path,
    run_id: str,
    task_config: Any = None,
    *,
    task: str,
    labels: str | Path | None = None,
    title: str = "HiPO evaluation",
    baseline: str = "",
    earlier: str | Path | None = None,
) -> None:
    """Evaluate ``{display name: model dir}`` in an eval job on the train image (vLLM, a GPU) and
    download its results (report.html, summary.md, metrics.json, models/) into ``out_dir``; the
    arguments are ``hipo.evaluate.compare.evaluate_models``'s. ``task`` names the job as in run_training."""
    args = [arg for name, model in models.items() for arg in ("--model", str(model), "--name", name)]
    args += ["--title", title, "--baseline", baseline]
    args += [*(["--labels", str(labels)] if labels else []), *(["--reuse", str(earlier)] if earlier else [])]
    out_uri = run_job("eval", args, config, run_id, task_config, task)
    storage.download_prefix(out_uri, out_dir)

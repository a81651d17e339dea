"""The cluster pipeline as compiled: committed and fresh, GPUs on training, Secrets by name, every
parameter typed with the run configuration's default."""

from __future__ import annotations

import inspect
import json
import math
import re

import yaml

from components import prepare
from hipo.config import RunConfig
from hipo.pipeline.parameters import CONFIG_PARAMETERS, PARAMETERS, from_config, to_config
from hipo.pipeline.run import COMPILED, compile_pipeline
from pipelines.hipo_pipeline import S3_SECRET_KEYS


def _documents(path):
    spec, platform = yaml.safe_load_all(path.read_text())
    return spec, platform["platforms"]["kubernetes"]["deploymentSpec"]["executors"]


def test_the_committed_pipeline_is_not_stale(tmp_path):
    fresh = compile_pipeline(tmp_path / "hipo_pipeline.yaml")
    assert COMPILED.read_text() == fresh.read_text(), "pipelines/compiled is stale: run `make compile`"


def test_the_compiled_inputs_are_the_one_parameter_list():
    """Names, types, defaults and help of the pipeline's inputs come from hipo.pipeline.parameters only."""
    spec, _ = _documents(COMPILED)
    declared = spec["root"]["inputDefinitions"]["parameters"]
    assert list(declared) == sorted(p.name for p in PARAMETERS)
    kinds = {str: "STRING", int: "NUMBER_INTEGER", float: "NUMBER_DOUBLE", list: "LIST", bool: "BOOLEAN"}
    for parameter in PARAMETERS:
        got = declared[parameter.name]
        assert got["parameterType"] == kinds[parameter.type], parameter.name
        assert got["description"] == parameter.help, parameter.name
        assert isinstance(parameter.default, parameter.type), parameter.name
        default = got.get("defaultValue", "") if parameter.default == "" else got["defaultValue"]
        if parameter.type is float:
            assert math.isclose(default, parameter.default), parameter.name
        else:
            assert default == parameter.default, parameter.name


def test_every_configuration_parameter_defaults_to_the_run_configuration():
    assert to_config({}) == RunConfig()
    assert to_config(from_config(RunConfig())) == RunConfig()
    assert {name: p.default for name, p in CONFIG_PARAMETERS.items()} == from_config(RunConfig())


def test_prepare_takes_every_configuration_parameter_with_its_type():
    declared = inspect.signature(prepare.python_func).parameters
    for name, parameter in CONFIG_PARAMETERS.items():
        assert declared[name].annotation is parameter.type, name
    free = {"config_yaml", "config_overrides", "config", "prompts", "metrics"}
    assert set(declared) - set(CONFIG_PARAMETERS) == free


def test_every_step_requests_and_limits_cpu_and_memory():
    """Defect: no step had requests (BestEffort: evicted first, refused by a ResourceQuota)."""
    spec, _ = _documents(COMPILED)
    for name, executor in spec["deploymentSpec"]["executors"].items():
        resources = executor["container"].get("resources", {})
        for field in ("CpuRequest", "MemoryRequest", "CpuLimit", "MemoryLimit"):
            assert resources.get(f"resource{field}"), f"{name}: no {field}"


def test_every_step_runs_as_the_images_non_root_user():
    """Pod Security "restricted" for step pods: KFP >= 2.16 adds the container defaults (no privilege
    escalation, capabilities dropped, RuntimeDefault seccomp); the non-root user comes from here."""
    spec, kube = _documents(COMPILED)
    for name in spec["deploymentSpec"]["executors"]:
        assert kube[name]["securityContext"] == {
            "runAsUser": "1000",
            "runAsGroup": "1000",
            "runAsNonRoot": True,
        }


DIGESTS = {"step": "sha256:" + "a" * 64, "train": "sha256:" + "b" * 64}


def test_hipo_compile_pins_both_images_by_digest(tmp_path):
    """Defect: mutable version tags pulled IfNotPresent, so nodes kept a stale image after a rebuild.
    Unpinned steps now pull Always; `hipo compile --*-image-digest` pins every step and the jobs."""
    from hipo.cli import main
    from hipo.launch.images import STEP_IMAGE, TRAIN_IMAGE, pinned
    from hipo.launch.manifests import TRAIN_IMAGE_ENV

    _, kube = _documents(COMPILED)
    assert {config["imagePullPolicy"] for config in kube.values()} == {"Always"}
    out = tmp_path / "pinned.yaml"
    flags = ["--step-image-digest", DIGESTS["step"], "--train-image-digest", DIGESTS["train"]]
    assert main(["compile", "--out", str(out), *flags]) == 0
    spec, kube = _documents(out)
    executors = spec["deploymentSpec"]["executors"]
    assert {e["container"]["image"] for e in executors.values()} == {pinned(STEP_IMAGE, DIGESTS["step"])}
    assert {config["imagePullPolicy"] for config in kube.values()} == {"IfNotPresent"}
    for name in _training(executors):
        env = {e["name"]: e["value"] for e in executors[name]["container"]["env"]}
        assert env[TRAIN_IMAGE_ENV] == pinned(TRAIN_IMAGE, DIGESTS["train"])


def test_the_compiled_train_image_reaches_the_job_unless_the_run_names_one():
    from hipo.config import build_config
    from hipo.launch import job_spec
    from hipo.launch.images import TRAIN_IMAGE, pinned
    from hipo.launch.manifests import TRAIN_IMAGE_ENV, apply_task_config, pod_template

    image = pinned(TRAIN_IMAGE, DIGESTS["train"])
    task_config = {"env": [{"name": TRAIN_IMAGE_ENV, "value": image}]}
    config = build_config({"launch": {"backend": "pytorchjob", "namespace": "ml"}})
    spec = apply_task_config(job_spec("sft", ["sft"], config, "r", "mix"), task_config)
    container = pod_template(spec)["spec"]["containers"][0]
    assert (container["image"], container["imagePullPolicy"]) == (image, "IfNotPresent")
    assert TRAIN_IMAGE_ENV not in {e["name"] for e in container["env"]}
    own = build_config({"launch": {"backend": "pytorchjob", "namespace": "ml", "image": "my/train:7"}})
    mine = apply_task_config(job_spec("sft", ["sft"], own, "r", "mix"), task_config)
    assert (
        mine.image == "my/train:7"
        and pod_template(mine)["spec"]["containers"][0]["imagePullPolicy"] == "Always"
    )


def _training(executors: dict) -> set[str]:
    return {name for name in executors if name.startswith(("exec-sft", "exec-hipo-rl"))}


def test_no_step_pod_takes_a_gpu_or_a_gpu_node_selector():
    """The GPUs go to the training job, sized by the run configuration's gpus_per_node (an ordinary
    input of prepare). An int channel as accelerator count is what the KFP driver drops (it reads
    the parameter's string value), so no step declares an accelerator; no step pod waits for a GPU
    node either."""
    spec, kube = _documents(COMPILED)
    executors = spec["deploymentSpec"]["executors"]
    assert len(_training(executors)) == 5  # sft mix/on, hipo rl, grpo on/mix
    for name, executor in executors.items():
        assert "accelerator" not in executor["container"].get("resources", {}), name
        assert "nodeSelector" not in kube.get(name, {}) and "tolerations" not in kube.get(name, {}), name
        if name in _training(executors):
            assert kube[name]["emptyDirMounts"][0]["mountPath"] == "/dev/shm"


def _driver_task_config(executor: dict) -> dict:
    """The TaskConfig the KFP driver (>= 2.15) hands a training component: the container's env (ENV is
    passed through) and no node selector or tolerations, since none are compiled for the task."""
    return {"env": [dict(e) for e in executor["container"].get("env", [])]}


def test_gpu_scheduling_reaches_gpu_jobs_only():
    """Defect: the GPU node selector and toleration went to every TrainJob, so a CPU-only run stayed
    Pending until its deadline."""
    from hipo.config import build_config
    from hipo.launch import job_spec
    from hipo.launch.manifests import apply_task_config, trainjob

    spec, _ = _documents(COMPILED)
    executor = spec["deploymentSpec"]["executors"]["exec-sft"]
    for gpus in (0, 8):
        config = build_config({"launch": {"backend": "trainjob", "gpus_per_node": gpus}})
        job = trainjob(
            apply_task_config(job_spec("sft", ["sft"], config, "r", "mix"), _driver_task_config(executor))
        )
        [patch] = job["spec"]["runtimePatches"]
        [replicated] = patch["trainingRuntimeSpec"]["template"]["spec"]["replicatedJobs"]
        pod = replicated["template"]["spec"]["template"]["spec"]
        if gpus:
            assert pod["nodeSelector"] == {"nvidia.com/gpu.present": "true"}
            assert pod["tolerations"][0]["key"] == "nvidia.com/gpu"
            assert job["spec"]["trainer"]["resourcesPerNode"]["limits"] == {"nvidia.com/gpu": "8"}
        else:
            assert "nodeSelector" not in pod and "tolerations" not in pod
            assert "resourcesPerNode" not in job["spec"]["trainer"]


def test_every_presets_key_variables_come_from_the_api_key_secret():
    """Defect: only OPENAI_API_KEY was mapped, so the GPU preset's teacher (DEEPSEEK_API_KEY) had no key
    on a cluster. Every preset's teacher and judge variables are mapped; --api-key-env adds more."""
    from hipo.config import load_config, preset_names
    from pipelines.hipo_pipeline import preset_key_variables

    variables = set(preset_key_variables())
    for name in preset_names():
        data = load_config(preset=name).data
        assert {data.teacher_endpoint.api_key_env, data.judge_endpoint.api_key_env} <= variables, name
    assert "DEEPSEEK_API_KEY" in variables


def test_hipo_compile_maps_more_key_variables_on_request(tmp_path):
    from hipo.cli import main

    out = tmp_path / "keys.yaml"
    assert main(["compile", "--out", str(out), "--api-key-env", "ANTHROPIC_API_KEY"]) == 0
    _, kube = _documents(out)
    for config in kube.values():
        [api_keys] = [s for s in config["secretAsEnv"] if "api_key_secret" in json.dumps(s)]
        assert {"ANTHROPIC_API_KEY", "DEEPSEEK_API_KEY"} <= {k["envVar"] for k in api_keys["keyToEnv"]}


def test_on_a_cluster_every_step_after_prepare_reads_the_staged_configuration():
    """The Hub base model is copied to object storage by one cached step; later steps read its config."""
    spec, _ = _documents(COMPILED)
    tasks = spec["root"]["dag"]["tasks"]["exit-handler-1"]["componentRef"]["name"]
    dag = spec["components"][tasks]["dag"]["tasks"]
    assert dag["stage-base-model"]["cachingOptions"] == {"enableCache": True}
    for name in ("generate-hybrid-data", "validate-data", "sft", "hipo-rl", "evaluate"):
        source = dag[name]["inputs"]["artifacts"]["config"]["taskOutputArtifact"]
        assert source == {"outputArtifactKey": "staged", "producerTask": "stage-base-model"}, name
    registers = [t for t in _tasks(spec).values() if _component(t) == "register"]
    assert len(registers) == 3
    for task in registers:  # inside an arms branch: the staged configuration comes in as the branch's input
        source = task["inputs"]["artifacts"]["config"]["componentInputArtifact"]
        assert source == "pipelinechannel--stage-base-model-staged"


def _component(task):
    """The component a task runs: ``register`` for ``comp-register-2`` (each use gets a numbered copy)."""
    return re.sub(r"-\d+$", "", task["componentRef"]["name"].removeprefix("comp-"))


def _tasks(spec):
    """Every task of the pipeline, in whichever DAG (branches are DAGs of their own), by name."""
    return {
        name: task
        for component in spec["components"].values()
        for name, task in component.get("dag", {}).get("tasks", {}).items()
    }


def test_each_arms_branch_registers_gates_and_promotes_after_its_last_evaluation():
    """The first-champion gate holds the policy against every cold start the run evaluates, so register
    runs once per arms branch after the branch's last evaluation: with --arms baseline the one against
    Cold-Start (on), with --arms all the five arms; gate and promote follow it in the same branch."""
    spec, _ = _documents(COMPILED)
    dags = {name: c["dag"]["tasks"] for name, c in spec["components"].items() if "dag" in c}
    branch = {t["componentRef"]["name"]: t["taskInfo"]["name"] for t in _tasks(spec).values()}
    comparisons = {}
    for dag_name, dag in dags.items():
        for name, task in dag.items():
            if _component(task) != "register":
                continue
            comparison = task["inputs"]["artifacts"].get("comparison", {}).get("taskOutputArtifact", {})
            comparisons[branch[dag_name]] = comparison.get("producerTask")
            assert not comparison or comparison["producerTask"] in dag  # the same branch's evaluation
            (gate,) = [t for t in dag.values() if _component(t) == "gate"]
            assert gate["inputs"]["parameters"]["version"]["taskOutputParameter"]["producerTask"] == name
            (passed,) = [t for t in dag.values() if t["taskInfo"]["name"] == "gate-passed"]
            (promote,) = dags[passed["componentRef"]["name"]].values()
            assert _component(promote) == "promote"
            version = promote["inputs"]["parameters"]["version"]["componentInputParameter"]
            assert version == f"pipelinechannel--{name}-Output"
            assert {task["taskInfo"]["name"], gate["taskInfo"]["name"]} == {"register", "gate"}
    assert comparisons == {
        "hipo-arm-only": None,
        "against-cold-start-on": "evaluate-2",
        "five-arms": "compare-arms",
    }
    against_on = _tasks(spec)["evaluate-2"]["inputs"]["parameters"]["baseline_name"]["runtimeValue"]
    assert against_on["constant"] == "Cold-Start (on)"


def test_secrets_are_referenced_by_name_and_no_value_is_compiled():
    spec, kube = _documents(COMPILED)
    for name, config in kube.items():
        by_parameter = {
            s["secretNameParameter"]["componentInputParameter"].removeprefix("pipelinechannel--"): s
            for s in config["secretAsEnv"]
        }
        s3 = by_parameter["s3_secret"]
        assert {k["secretKey"] for k in s3["keyToEnv"]} == set(S3_SECRET_KEYS), name
        assert by_parameter["api_key_secret"]["optional"] is True
        mapped = {k["secretKey"]: k["envVar"] for k in by_parameter["api_key_secret"]["keyToEnv"]}
        assert {"OPENAI_API_KEY", "DEEPSEEK_API_KEY"} <= set(mapped), name  # the GPU preset's teacher
        assert all(key == var for key, var in mapped.items())
    text = COMPILED.read_text()
    for executor in spec["deploymentSpec"]["executors"].values():
        env = {e["name"] for e in executor["container"].get("env", [])}
        assert not env & {*S3_SECRET_KEYS, "OPENAI_API_KEY"}
    assert "REPLACE_ME" not in text and "password" not in text.lower()


def test_evaluation_steps_can_launch_a_gpu_job_on_the_train_image():
    """Defect: eval.engine=vllm evaluated in the CPU step image (no vLLM, no GPU). The evaluate and
    compare-arms steps now get what a training step gets for its job: the train image, the GPU
    scheduling and the run id (the job itself: tests/integration/test_launch_eval.py)."""
    from hipo.launch.manifests import GPU_SCHEDULING_ENV, TRAIN_IMAGE_ENV

    spec, kube = _documents(COMPILED)
    executors = spec["deploymentSpec"]["executors"]
    evaluations = [name for name in executors if name.startswith(("exec-evaluate", "exec-compare-arms"))]
    assert len(evaluations) == 3  # vs Cold-Start (mix), vs Cold-Start (on), the five arms
    for name in evaluations:
        env = {e["name"] for e in executors[name]["container"]["env"]}
        assert {GPU_SCHEDULING_ENV, TRAIN_IMAGE_ENV} <= env, name
        assert kube[name]["emptyDirMounts"][0]["mountPath"] == "/dev/shm"
    tasks = [
        task
        for component in (spec["root"], *spec["components"].values())
        for task in component.get("dag", {}).get("tasks", {}).values()
        if task["componentRef"]["name"].startswith(("comp-evaluate", "comp-compare-arms"))
    ]
    assert len(tasks) == 3
    for task in tasks:
        run_id = task["inputs"]["parameters"]["run_id"]["runtimeValue"]["constant"]
        assert run_id == "{{$.pipeline_job_uuid}}"


def test_hipo_compile_sizes_the_step_pods_from_its_flags(tmp_path):
    """`hipo compile --step-request/--step-limit` size every step pod; a malformed size is refused in
    one line (exit 2) and nothing is written."""
    import subprocess
    import sys
    from pathlib import Path

    hipo = str(Path(sys.executable).parent / "hipo")
    out = tmp_path / "sized.yaml"
    flags = ["--step-request", "cpu=2", "--step-request", "memory=8Gi", "--step-limit", "memory=32Gi"]
    done = subprocess.run([hipo, "compile", "--out", str(out), *flags], capture_output=True, text=True)
    assert done.returncode == 0, done.stderr
    spec, _ = _documents(out)
    for name, executor in spec["deploymentSpec"]["executors"].items():
        resources = executor["container"]["resources"]
        sizes = [
            resources[f"resource{f}"] for f in ("CpuRequest", "MemoryRequest", "CpuLimit", "MemoryLimit")
        ]
        assert sizes == ["2", "8Gi", "4", "32Gi"], name  # the limit not given keeps its default
    for bad, message in (
        (["--step-request", "memory=8GB"], "step request memory='8GB' is not a Kubernetes quantity"),
        (["--step-request", "cpu=8"], "step request cpu=8 is above the step limit cpu=4"),
        (["--step-limit", "gpu=1"], "step limits take cpu and memory (both), got ['cpu', 'gpu', 'memory']"),
        (["--step-request", "cpu"], "argument --step-request: expected KEY=VALUE, got 'cpu'"),
    ):
        out = tmp_path / "refused.yaml"
        done = subprocess.run([hipo, "compile", "--out", str(out), *bad], capture_output=True, text=True)
        assert done.returncode == 2 and message in done.stderr and "Traceback" not in done.stderr, done.stderr
        assert not out.exists()

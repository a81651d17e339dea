"""vLLM evaluation on a cluster backend: the evaluate step launches an ``eval`` job on the train image
with one GPU, through the fake Kubernetes API (tests/fakes/k8s_api.py), and the job's results come back
into the step's output. The fake job's "pod" runs the real ``hipo.launch.entry`` through the S3 server;
as no GPU is here, the pod's vLLM engine is stood in for by the hf engine on CPU (the only fake)."""

import json

import pytest
from fakes.k8s_api import FakeKubeAPI, failed, running, succeeded

from hipo import storage
from hipo.config import build_config
from hipo.data.pipeline import generate_dataset
from hipo.engines.hf import HFEngine
from hipo.engines.scripted import ScriptedEngine
from hipo.launch import LaunchError, preflight
from hipo.launch.entry import main as pod_entry
from hipo.launch.manifests import GPU_SCHEDULING_ENV, RUN_LABEL, TRAIN_IMAGE_ENV
from hipo.launch.validate import pod_security_problems, validate_pytorchjob, validate_trainer_object
from hipo.pipeline import steps
from hipo.pipeline.run_record import ERROR_FILE
from hipo.tasks import get_task
from hipo.tasks.rationale import TemplateRationaleWriter

NS = "team-a"
PINNED = "registry.example/hipo-train@sha256:" + "a" * 64
GPU_NODES = {"nvidia.com/gpu.present": "true"}
GPU_TOLERATION = {"key": "nvidia.com/gpu", "operator": "Exists", "effect": "NoSchedule"}
# what the compiled pipeline passes to a training-style task in its TaskConfig
TASK_CONFIG = {
    "env": [
        {
            "name": GPU_SCHEDULING_ENV,
            "value": json.dumps({"nodeSelector": GPU_NODES, "tolerations": [GPU_TOLERATION]}),
        },
        {"name": TRAIN_IMAGE_ENV, "value": PINNED},
    ]
}


@pytest.fixture
def kube(tmp_path, monkeypatch):
    api = FakeKubeAPI().start()
    monkeypatch.setenv("KUBECONFIG", str(api.write_kubeconfig(tmp_path / "kubeconfig", NS)))
    monkeypatch.delenv("KUBERNETES_SERVICE_HOST", raising=False)
    yield api
    api.stop()


@pytest.fixture(scope="module")
def dataset_dir(tmp_path_factory):
    out = tmp_path_factory.mktemp("eval-data")
    config = build_config({"task": {"train_size": 24, "eval_size": 8}})
    generate_dataset(config, get_task("arithmetic"), ScriptedEngine(seed=0), TemplateRationaleWriter(), out)
    return out


@pytest.fixture
def gpu_stands_in_as_cpu(monkeypatch):
    """The pod's vLLM engine, served by the hf engine on CPU: this machine has neither vLLM nor a GPU."""
    import hipo.engines.vllm_engine

    served = []

    def engine(model, seed=0):
        served.append(str(model))
        return HFEngine(model, batch_size=8, device="cpu", seed=seed)

    monkeypatch.setattr(hipo.engines.vllm_engine, "VLLMEngine", engine)
    return served


def entry_args(body: dict) -> list[str]:
    if body["kind"] == "TrainJob":
        args = body["spec"]["trainer"]["args"]
    else:
        args = body["spec"]["pytorchReplicaSpecs"]["Master"]["template"]["spec"]["containers"][0]["args"]
    assert args[:2] == ["-m", "hipo.launch.entry"], args
    return args[2:]


def the_pod_evaluates(api, key):
    body = api.job(key[2], key[3], key[1])
    try:
        code = pod_entry(entry_args(body))
    except Exception as error:  # the job fails with it instead of the test hanging
        code = repr(error)
    (succeeded() if code == 0 else failed("Error", f"the pod entry exited with {code}", ""))(api, key)


def write_config(tmp_path, backend: str, s3_prefix: str):
    config = build_config(
        {
            "eval": {"engine": "vllm", "max_problems": 3, "forced_mode_passes": False, "batch_size": 8},
            "launch": {
                "backend": backend,
                "namespace": NS,
                "work_uri": s3_prefix,
                "gpus_per_node": 8,
                "nodes": 2,
            },
        }
    )
    config_dir = tmp_path / "config"
    config_dir.mkdir()
    (config_dir / steps.CONFIG_FILE).write_text(config.to_yaml(), encoding="utf-8")
    return config_dir


@pytest.mark.parametrize("backend", ["trainjob", "pytorchjob"])
def test_vllm_evaluation_is_a_gpu_job_on_the_train_image_and_its_results_come_back(
    backend, kube, s3_prefix, dataset_dir, tiny_model_dir, gpu_stands_in_as_cpu, tmp_path
):
    kube.default_script = [running(), the_pod_evaluates]
    config_dir = write_config(tmp_path, backend, s3_prefix)
    models = {"Cold-Start (mix)": str(tiny_model_dir), "Cold-Start (mix)+HiPO": str(tiny_model_dir)}
    results = tmp_path / "results"
    values = steps.evaluate(
        str(config_dir), models, str(dataset_dir), str(results), "Cold-Start (mix)",
        str(tmp_path / "report.html"), str(tmp_path / "summary.md"), run_id="run-9", task_config=TASK_CONFIG,
    )  # fmt: skip

    # the step got the job's results, as if it had evaluated itself
    assert values == json.loads((results / "metrics.json").read_text()) and values
    assert (tmp_path / "report.html").read_text() == (results / "report.html").read_text()
    for slug in ("Cold-Start-mix", "Cold-Start-mix-HiPO"):
        assert (results / "models" / slug / "samples.jsonl").read_text().strip()
    assert len(gpu_stands_in_as_cpu) == 2  # the pod served both models with the (stand-in) vLLM engine
    again = tmp_path / "retry"  # a retried step reattaches to its own finished job
    steps.evaluate(str(config_dir), models, str(dataset_dir), str(again), "Cold-Start (mix)", run_id="run-9")
    assert (
        len(kube.created) == 1
        and (again / "metrics.json").read_bytes() == (results / "metrics.json").read_bytes()
    )

    [body] = kube.created
    args = entry_args(body)
    assert args[0] == "eval" and body["metadata"]["name"].startswith("hipo-eval-vs-cold-start-mix-")
    assert body["metadata"]["labels"][RUN_LABEL] == "run-9"
    model_uris = [args[i + 1] for i, a in enumerate(args) if a == "--model"]
    assert len(set(model_uris)) == 2 and all(u.startswith(f"{s3_prefix}/inputs/") for u in model_uris)
    assert storage.exists(f"{args[args.index('--labels') + 1]}/eval.parquet")
    if backend == "trainjob":
        validate_trainer_object(body)
        trainer = body["spec"]["trainer"]
        assert trainer["image"] == PINNED and trainer["numNodes"] == 1 and trainer["numProcPerNode"] == 1
        assert trainer["resourcesPerNode"] == {"limits": {"nvidia.com/gpu": "1"}}
        pod = body["spec"]["runtimePatches"][0]["trainingRuntimeSpec"]["template"]["spec"]["replicatedJobs"][
            0
        ]
        pod = pod["template"]["spec"]["template"]["spec"]
    else:
        validate_pytorchjob(body)
        assert list(body["spec"]["pytorchReplicaSpecs"]) == ["Master"] and body["spec"]["nprocPerNode"] == "1"
        pod = body["spec"]["pytorchReplicaSpecs"]["Master"]["template"]["spec"]
        [container] = pod["containers"]
        assert container["image"] == PINNED
        assert container["resources"] == {
            "requests": {"cpu": "4", "memory": "16Gi"},
            "limits": {"nvidia.com/gpu": "1"},
        }
        assert pod_security_problems(pod) == []
    assert pod["nodeSelector"] == GPU_NODES and GPU_TOLERATION in pod["tolerations"]


def test_a_failed_eval_job_fails_the_step_with_its_reason(
    kube, s3_prefix, dataset_dir, tiny_model_dir, tmp_path
):
    kube.default_script = [
        failed("Error", "CUDA out of memory", "torch.OutOfMemoryError: CUDA out of memory")
    ]
    config_dir = write_config(tmp_path, "trainjob", s3_prefix)
    models = {"Cold-Start (on)": str(tiny_model_dir), "Cold-Start (mix)+HiPO": str(tiny_model_dir)}
    with pytest.raises(LaunchError, match="CUDA out of memory"):
        steps.evaluate(
            str(config_dir), models, str(dataset_dir), str(tmp_path / "results"), "Cold-Start (on)"
        )
    assert "CUDA out of memory" in (tmp_path / "results").parent.joinpath(ERROR_FILE).read_text()


def test_what_cannot_evaluate_with_vllm_stops_at_prepare(monkeypatch):
    import hipo.launch

    monkeypatch.setattr(hipo.launch, "find_spec", lambda name: None)  # no vLLM installed here
    with pytest.raises(LaunchError, match=r"launch\.backend=local: vLLM is not installed here"):
        preflight(build_config({"eval": {"engine": "vllm"}}))
    cluster = {"eval": {"engine": "vllm"}, "launch": {"backend": "pytorchjob"}}
    with pytest.raises(LaunchError, match=r"launch\.gpus_per_node is 0"):
        preflight(build_config(cluster))
    preflight(build_config({**cluster, "launch": {"backend": "trainjob", "gpus_per_node": 1}}))  # a job
    preflight(build_config({"launch": {"backend": "trainjob"}}))  # hf: in the step's pod

"""The cluster pipeline as compiled: committed and fresh, GPUs on training, Secrets by name, every
parameter typed with the run configuration's default."""

from __future__ import annotations

import inspect
import math

import yaml

from components import prepare
from hipo.parameters import PARAMETERS, default
from hipo.pipeline_run import COMPILED, compile_pipeline
from pipelines.hipo_pipeline import S3_SECRET_KEYS

CLUSTER_ONLY = {"arms": "hipo", "s3_secret": "hipo-s3", "api_key_secret": "hipo-judge"}
FREE_FORM = {"config_yaml": "", "config_overrides": []}


def _documents(path):
    spec, platform = yaml.safe_load_all(path.read_text())
    return spec, platform["platforms"]["kubernetes"]["deploymentSpec"]["executors"]


def test_the_committed_pipeline_is_not_stale(tmp_path):
    fresh = compile_pipeline(tmp_path / "hipo_pipeline.yaml")
    assert COMPILED.read_text() == fresh.read_text(), "pipelines/compiled is stale: run `make compile`"


def test_every_parameter_is_typed_with_its_default():
    spec, _ = _documents(COMPILED)
    declared = spec["root"]["inputDefinitions"]["parameters"]
    expected = {**{name: default(name) for name in PARAMETERS}, **CLUSTER_ONLY, **FREE_FORM}
    assert set(declared) == set(expected)
    kinds = {str: "STRING", int: "NUMBER_INTEGER", float: "NUMBER_DOUBLE", list: "LIST", bool: "BOOLEAN"}
    for name, value in expected.items():
        assert declared[name]["parameterType"] == kinds[type(value)], name
        got = declared[name]["defaultValue"] if value != "" else declared[name].get("defaultValue", "")
        if isinstance(value, float):
            assert math.isclose(got, value), name
        else:
            assert got == value, name


def test_prepare_takes_every_configuration_parameter():
    names = set(inspect.signature(prepare.python_func).parameters)
    assert set(PARAMETERS) <= names
    assert names - set(PARAMETERS) == {"config_yaml", "config_overrides", "config", "prompts", "metrics"}


def test_training_steps_request_gpus_on_gpu_nodes_with_shared_memory():
    spec, kube = _documents(COMPILED)
    executors = spec["deploymentSpec"]["executors"]
    training = {name for name in executors if name.startswith(("exec-sft", "exec-hipo-rl"))}
    assert len(training) == 5  # sft mix/on, hipo rl, grpo on/mix
    for name, executor in executors.items():
        accelerator = executor["container"].get("resources", {}).get("accelerator")
        if name in training:
            assert accelerator["resourceType"] == "nvidia.com/gpu"
            assert "pipelinechannel--gpus_per_node" in accelerator["resourceCount"]
            selector = kube[name]["nodeSelector"]["nodeSelectorJson"]["runtimeValue"]["constant"]
            assert selector == {"nvidia.com/gpu.present": "true"}
            assert kube[name]["tolerations"][0]["key"] == "nvidia.com/gpu"
            assert kube[name]["emptyDirMounts"][0]["mountPath"] == "/dev/shm"
        else:
            assert accelerator is None, name
            assert "nodeSelector" not in kube.get(name, {}), name


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
    text = COMPILED.read_text()
    for executor in spec["deploymentSpec"]["executors"].values():
        env = {e["name"] for e in executor["container"].get("env", [])}
        assert not env & {*S3_SECRET_KEYS, "OPENAI_API_KEY"}
    assert "REPLACE_ME" not in text and "password" not in text.lower()

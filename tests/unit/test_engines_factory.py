"""make_teacher maps data.teacher to an engine, with errors that name the field to set."""

import sys

import pytest

from hipo.config import DataConfig, EndpointConfig
from hipo.engines import EngineError, ScriptedEngine, make_teacher


def test_scripted_is_the_default():
    engine = make_teacher(DataConfig(seed=5))
    assert isinstance(engine, ScriptedEngine) and engine.name == "scripted"


@pytest.mark.parametrize("teacher", ["hf", "vllm"])
def test_model_teachers_need_a_model_directory(teacher, tmp_path):
    with pytest.raises(EngineError, match=r"set data\.teacher_model to a local model directory"):
        make_teacher(DataConfig(teacher=teacher))
    with pytest.raises(EngineError, match="not a model directory"):
        make_teacher(DataConfig(teacher=teacher, teacher_model=str(tmp_path)))


def test_openai_teacher_needs_a_model_and_a_key(monkeypatch):
    with pytest.raises(EngineError, match=r"teacher_endpoint\.model is empty"):
        make_teacher(DataConfig(teacher="openai"))
    monkeypatch.delenv("HIPO_TEST_ABSENT_KEY", raising=False)
    endpoint = EndpointConfig(
        base_url="https://api.example.invalid/v1", model="m", api_key_env="HIPO_TEST_ABSENT_KEY"
    )
    with pytest.raises(EngineError, match="set the environment variable HIPO_TEST_ABSENT_KEY"):
        make_teacher(DataConfig(teacher="openai", teacher_endpoint=endpoint))
    local = EndpointConfig(base_url="http://127.0.0.1:8000/v1", model="m", api_key_env="HIPO_TEST_ABSENT_KEY")
    engine = make_teacher(DataConfig(teacher="openai", teacher_endpoint=local), cache_dir=None)
    assert engine.name == "openai:m"


def test_without_vllm_the_error_says_how_to_install(monkeypatch, tmp_path):
    monkeypatch.setitem(sys.modules, "vllm", None)  # import vllm -> ImportError, installed or not
    from hipo.engines import VLLMEngine

    with pytest.raises(EngineError, match=r"vllm is not installed: pip install 'hipo-pipelines\[gpu\]'"):
        VLLMEngine(tmp_path)
    (tmp_path / "config.json").write_text("{}")
    with pytest.raises(EngineError, match="vllm is not installed"):
        make_teacher(DataConfig(teacher="vllm", teacher_model=str(tmp_path)))


def test_import_stays_light():
    import subprocess

    code = (
        "import hipo.engines, sys; print(any(m in sys.modules for m in ('transformers', 'openai', 'vllm')))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip() == "False"

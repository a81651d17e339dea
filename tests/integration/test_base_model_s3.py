"""A Hub base model copied once into object storage for cluster runs (hipo.launch.base_model), against
the S3 server on loopback; the Hub download is a stand-in that copies a saved model (no network)."""

from __future__ import annotations

import shutil

import pytest

from hipo import storage
from hipo.config import build_config
from hipo.launch import LaunchError
from hipo.launch.base_model import COMPLETE, is_hub_id, stage_base_model
from hipo.pipeline.steps import CONFIG_FILE, read_config
from hipo.pipeline.steps import stage_base_model as stage_step


def test_a_hub_base_model_is_copied_once_and_the_config_names_the_copy(s3_prefix, tiny_model_dir, tmp_path):
    """Defect: the GPU preset's base model was a Hub id while the training runtime sets HF_HUB_OFFLINE=1."""
    downloads = []

    def hub(repo_id: str, local_dir: str) -> None:
        downloads.append(repo_id)
        shutil.copytree(tiny_model_dir, local_dir, dirs_exist_ok=True)

    values = {"model": {"base": "HuggingFaceTB/SmolLM2-1.7B-Instruct"}, "launch": {"backend": "trainjob"}}
    config = build_config({**values, "launch": {"backend": "trainjob", "work_uri": s3_prefix}})
    staged = stage_base_model(config, download=hub)
    target = f"{s3_prefix}/base-models/HuggingFaceTB--SmolLM2-1.7B-Instruct"
    assert staged.model.base == target and storage.exists(f"{target}/config.json")
    assert storage.exists(f"{target}/{COMPLETE}")
    assert stage_base_model(config, download=hub).model.base == target and downloads == [config.model.base]
    assert staged.model_copy(update={"model": config.model}) == config  # nothing else changed

    (tmp_path / "in").mkdir()
    (tmp_path / "in" / CONFIG_FILE).write_text(config.to_yaml())
    stage_step(str(tmp_path / "in"), str(tmp_path / "out"))  # the step: the copy exists, no download
    assert read_config(tmp_path / "out").model.base == target and len(downloads) == 1


def test_local_runs_paths_and_s3_bases_are_left_alone(s3_prefix, tmp_path):
    def no_hub(repo_id: str, local_dir: str) -> None:
        raise AssertionError("no download expected")

    local = build_config({"model": {"base": "org/model"}})
    assert stage_base_model(local, download=no_hub) is local
    for base in ("tiny", f"{s3_prefix}/models/base", str(tmp_path)):
        cluster = build_config(
            {"model": {"base": base}, "launch": {"backend": "trainjob", "work_uri": s3_prefix}}
        )
        assert stage_base_model(cluster, download=no_hub).model.base == base
    assert is_hub_id("HuggingFaceTB/SmolLM2-135M-Instruct") and not is_hub_id("s3://b/m")


def test_no_work_uri_or_no_hub_is_a_clear_error(s3_prefix):
    config = build_config({"model": {"base": "org/model"}, "launch": {"backend": "pytorchjob"}})
    with pytest.raises(LaunchError, match=r"set launch\.work_uri .* or set model\.base to an s3:// copy"):
        stage_base_model(config)

    def offline(repo_id: str, local_dir: str) -> None:
        raise OSError("Cannot reach https://huggingface.co")

    reachable = build_config(
        {"model": {"base": "org/model"}, "launch": {"backend": "pytorchjob", "work_uri": s3_prefix}}
    )
    with pytest.raises(LaunchError, match=r"cannot download 'org/model' .*Cannot reach.*HF_TOKEN"):
        stage_base_model(reachable, download=offline)

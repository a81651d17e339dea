"""RL checkpoints: policy (save_pretrained + tokenizer, gathered under ZeRO-3), the updater's optimiser and
schedule (torch: ``optimizer.pt``; DeepSpeed: every rank's partition under ``deepspeed/``), every rank's
RNG states and the trainer state (step, data cursor, metrics tracker), under ``<dir>/step-NNNNNN``.

A checkpoint is written to a hidden temporary folder and renamed into place, so a killed run never
leaves a half-written one behind; the newest ``keep`` are kept locally. With a mirror (an s3:// or
local prefix) each checkpoint is uploaded and ``latest.json`` there is rewritten last, so a fresh
machine resumes from the newest complete upload.
"""

from __future__ import annotations

import json
import random
import shutil
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.distributed as td

from hipo import storage
from hipo.config import ConfigError, DistributedEnv, RunConfig
from hipo.models.policy import Policy, save_policy
from hipo.train import distributed
from hipo.train.optim import Updater

STATE_FILE = "trainer_state.pt"
META_FILE = "meta.json"
LATEST = "latest.json"
# fields a resumed run may change; any other difference would not reproduce the interrupted run
RESUMABLE_CHANGES = {
    "rl.steps", "rl.save_every", "rl.collapse_alarm_steps", "rl.stop_on_collapse", "rl.keep_checkpoints",
    "rl.vllm_gpu_memory_utilization",
}  # fmt: skip
TRAJECTORY_SECTIONS = ("seed", "task", "model", "rl", "rollout_sampling")


def _name(step: int) -> str:
    return f"step-{step:06d}"


def _rng_state() -> dict[str, Any]:
    numpy_state = np.random.get_state(legacy=False)
    numpy_state["state"]["key"] = numpy_state["state"]["key"].tolist()
    return {"python": random.getstate(), "numpy": numpy_state, "torch": torch.get_rng_state()}


def _set_rng_state(state: dict[str, Any]) -> None:
    random.setstate(state["python"])
    numpy_state = dict(state["numpy"])
    numpy_state["state"] = {**numpy_state["state"], "key": np.array(numpy_state["state"]["key"], np.uint32)}
    np.random.set_state(numpy_state)
    torch.set_rng_state(state["torch"])


def _all_rng_states() -> list[dict[str, Any]]:
    if not (td.is_available() and td.is_initialized()):
        return [_rng_state()]
    states: list[Any] = [None] * td.get_world_size()
    td.all_gather_object(states, _rng_state())
    return states


def flatten(tree: dict[str, Any], prefix: str = "") -> dict[str, Any]:
    """{"a.b": value} from nested dicts."""
    out: dict[str, Any] = {}
    for key, value in tree.items():
        if isinstance(value, dict):
            out.update(flatten(value, f"{prefix}{key}."))
        else:
            out[f"{prefix}{key}"] = value
    return out


def check_compatible(path: Path, config: RunConfig, env: DistributedEnv) -> None:
    """ConfigError naming every setting that differs from the checkpoint's run in a way that would not
    reproduce it (world size, seed, task, model, RL settings, rollout sampling)."""
    meta = json.loads((path / META_FILE).read_text())
    saved = flatten({k: meta["config"][k] for k in TRAJECTORY_SECTIONS})
    now = flatten({k: config.to_dict()[k] for k in TRAJECTORY_SECTIONS})
    diffs = [
        f"{key}: checkpoint {saved.get(key)!r}, now {now.get(key)!r}"
        for key in sorted(saved.keys() | now.keys())
        if saved.get(key) != now.get(key) and key not in RESUMABLE_CHANGES
    ]
    if meta["world_size"] != env.world_size:
        diffs.append(f"world size: checkpoint {meta['world_size']}, now {env.world_size}")
    if diffs:
        raise ConfigError(
            f"checkpoint {path} was written by an incompatible run; resume it with the same settings or use "
            "another output directory:\n  " + "\n  ".join(diffs)
        )


def latest(ckpt_dir: str | Path, mirror: str | None = None) -> Path | None:
    """The newest complete local checkpoint; failing that, the mirror's newest, downloaded first."""
    ckpt_dir = Path(ckpt_dir)
    found = sorted(ckpt_dir.glob("step-*")) if ckpt_dir.is_dir() else []
    if found:
        return found[-1]
    if mirror is None or not storage.exists(f"{mirror}/{LATEST}"):
        return None
    name = json.loads(storage.read_bytes(f"{mirror}/{LATEST}"))["name"]
    staging = ckpt_dir / f".download-{name}"
    shutil.rmtree(staging, ignore_errors=True)
    storage.download_prefix(f"{mirror}/{name}", staging)
    staging.rename(ckpt_dir / name)
    return ckpt_dir / name


def save(
    ckpt_dir: Path,
    step: int,
    policy: Policy,
    updater: Updater,
    trainer_state: dict[str, Any],
    meta: dict[str, Any],
    keep: int,
    mirror: str | None = None,
) -> Path:
    """Write checkpoint ``step`` (collective: every rank calls it; the main rank writes all but DeepSpeed's
    per-rank partitions, so ranks on several nodes need a shared ``ckpt_dir``). Returns its path."""
    rng = _all_rng_states()
    final, tmp = ckpt_dir / _name(step), ckpt_dir / f".tmp-{_name(step)}"
    if distributed.is_main():
        shutil.rmtree(tmp, ignore_errors=True)
        tmp.mkdir(parents=True)
    distributed.barrier()
    updater.save_state(tmp)
    with updater.full_parameters():
        if distributed.is_main():
            save_policy(policy, tmp)
    distributed.barrier()
    if distributed.is_main():
        torch.save({"rng": rng, **trainer_state}, tmp / STATE_FILE)
        (tmp / META_FILE).write_text(json.dumps({**meta, "step": step}, indent=2))
        shutil.rmtree(final, ignore_errors=True)
        tmp.rename(final)
        for old in sorted(ckpt_dir.glob("step-*"))[:-keep]:
            shutil.rmtree(old)
        if mirror is not None:
            storage.upload_dir(final, f"{mirror}/{final.name}")
            storage.write_bytes(f"{mirror}/{LATEST}", json.dumps({"name": final.name, "step": step}).encode())
    distributed.barrier()
    return final


def restore(path: Path, updater: Updater, rank: int) -> dict[str, Any]:
    """Load optimiser, schedule and this rank's RNG states from ``path``; returns the trainer state.

    The policy itself is loaded from ``path`` with ``load_policy`` before the updater is built.
    """
    updater.load_state(path)
    state = torch.load(path / STATE_FILE, weights_only=True)
    _set_rng_state(state.pop("rng")[rank])
    return state

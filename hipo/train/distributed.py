"""Process groups for torchrun / Kubeflow Trainer launches: gloo on CPU, nccl on GPU.

A single process runs without a process group unless a library insists on one (DeepSpeed): then
``init(env, always=True)`` plays the launcher, setting torchrun's variables for one process on a free
loopback port (DeepSpeed asserts LOCAL_RANK even then); ``close`` removes them again.
"""

from __future__ import annotations

import os
import random
import socket
import sys
from collections.abc import Sequence
from typing import TypeVar

import numpy as np
import torch
import torch.distributed as dist

from hipo.config import ConfigError, DistributedEnv

T = TypeVar("T")
_set_here: list[str] = []  # launcher variables that init() set and close() removes


def device_for(env: DistributedEnv) -> torch.device:
    return torch.device("cuda", env.local_rank) if torch.cuda.is_available() else torch.device("cpu")


def init(env: DistributedEnv, backend: str | None = None, always: bool = False) -> bool:
    """Join the launch's process group (torchrun's env:// rendezvous); True when this call created it."""
    if dist.is_initialized() or not (env.is_distributed or always):
        return False
    backend = backend or ("nccl" if torch.cuda.is_available() else "gloo")
    if torch.cuda.is_available():
        torch.cuda.set_device(env.local_rank)
    if not env.is_distributed:
        with socket.socket() as sock:
            sock.bind(("127.0.0.1", 0))
            port = sock.getsockname()[1]
        launcher = {"RANK": "0", "WORLD_SIZE": "1", "LOCAL_RANK": "0", "MASTER_ADDR": "127.0.0.1"}
        for name, value in {**launcher, "MASTER_PORT": str(port)}.items():
            if name not in os.environ:
                os.environ[name] = value
                _set_here.append(name)
    dist.init_process_group(backend, rank=env.rank, world_size=env.world_size)
    return True


def close(created: bool) -> None:
    """Destroy the process group (and the launcher variables) if ``init`` created it, once every rank
    is there (a rank leaving early can hang the others' teardown, e.g. of a DDP reducer). Through
    DeepSpeed when it joined the group: it caches subgroups that a later group could not use."""
    if created and dist.is_initialized():
        dist.barrier()
        deepspeed_comm = sys.modules.get("deepspeed.comm")
        if deepspeed_comm is not None and deepspeed_comm.is_initialized():
            deepspeed_comm.destroy_process_group()
        else:
            dist.destroy_process_group()
    if created:
        while _set_here:
            os.environ.pop(_set_here.pop(), None)


def barrier() -> None:
    if dist.is_initialized():
        dist.barrier()


def all_reduce_mean(tensor: torch.Tensor) -> torch.Tensor:
    """Average ``tensor`` over ranks in place (gloo has no AVG op: sum, then divide); returns it."""
    if dist.is_initialized() and dist.get_world_size() > 1:
        dist.all_reduce(tensor, op=dist.ReduceOp.SUM)
        tensor /= dist.get_world_size()
    return tensor


def all_reduce_sum(tensor: torch.Tensor) -> torch.Tensor:
    if dist.is_initialized() and dist.get_world_size() > 1:
        dist.all_reduce(tensor, op=dist.ReduceOp.SUM)
    return tensor


def all_reduce_max(tensor: torch.Tensor) -> torch.Tensor:
    if dist.is_initialized() and dist.get_world_size() > 1:
        dist.all_reduce(tensor, op=dist.ReduceOp.MAX)
    return tensor


def is_main() -> bool:
    return not dist.is_initialized() or dist.get_rank() == 0


def shard(items: Sequence[T], env: DistributedEnv) -> list[T]:
    """This rank's share of a global batch: every world_size-th item, starting at the rank."""
    if len(items) % env.world_size:
        raise ConfigError(
            f"a batch of {len(items)} does not divide across {env.world_size} ranks: make the batch "
            "size a multiple of the number of processes"
        )
    return list(items[env.rank :: env.world_size])


def seed_everything(seed: int, rank: int = 0) -> None:
    """Seed python, numpy and torch with ``seed + rank``: per-rank streams (sampling, dropout).

    What all ranks must agree on (initial weights, data order) uses its own seeded generators.
    """
    random.seed(seed + rank)
    np.random.seed((seed + rank) % 2**32)
    torch.manual_seed(seed + rank)

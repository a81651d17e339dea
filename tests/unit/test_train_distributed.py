"""Process-group helpers, batch arithmetic and the learning-rate schedule of data-parallel training."""

import os
import random

import pytest
import torch
import torch.distributed as dist

from hipo.config import ConfigError, DistributedEnv, OptimConfig, build_config
from hipo.train import distributed
from hipo.train.optim import accumulation_steps, lr_factor


def test_shard_gives_each_rank_its_share():
    items = list(range(8))
    shares = [distributed.shard(items, DistributedEnv(rank=r, world_size=2)) for r in (0, 1)]
    assert shares == [[0, 2, 4, 6], [1, 3, 5, 7]]
    assert distributed.shard(items, DistributedEnv()) == items
    with pytest.raises(ConfigError, match="a batch of 7 does not divide across 2 ranks"):
        distributed.shard(items[:7], DistributedEnv(rank=0, world_size=2))


def test_accumulation_steps():
    assert accumulation_steps(64, 16, 1) == 4
    assert accumulation_steps(64, 16, 2) == 2
    with pytest.raises(ConfigError, match=r"batch size 64 .* micro-batches of 16 on 3 rank\(s\)"):
        accumulation_steps(64, 16, 3)


def test_single_process_needs_no_group():
    assert distributed.init(DistributedEnv()) is False
    assert not dist.is_initialized() and distributed.is_main()
    distributed.barrier()
    value = torch.tensor([1.0, 3.0])
    assert distributed.all_reduce_mean(value) is value and value.tolist() == [1.0, 3.0]


def test_one_process_group_on_request_is_cleaned_up():
    created = distributed.init(DistributedEnv(), always=True)
    try:
        assert created and dist.is_initialized() and dist.get_backend() == "gloo"
        assert os.environ["LOCAL_RANK"] == "0" and distributed.is_main()
        assert distributed.all_reduce_sum(torch.tensor([2.0])).item() == 2.0
        assert distributed.init(DistributedEnv(), always=True) is False  # already there
    finally:
        distributed.close(created)
    assert not dist.is_initialized() and "LOCAL_RANK" not in os.environ


def test_seed_everything_is_per_rank():
    def draw(rank):
        distributed.seed_everything(7, rank)
        return random.random(), torch.rand(1).item()

    assert draw(0) == draw(0) != draw(1)


def test_lr_schedule_warms_up_then_decays_or_stays():
    cosine = OptimConfig(warmup_ratio=0.1)  # 2 warmup steps of 20, then 18 of cosine decay
    assert [lr_factor(step, cosine, 20) for step in (0, 1)] == [0.5, 1.0]
    assert lr_factor(11, cosine, 20) == pytest.approx(0.5)
    assert lr_factor(20, cosine, 20) == 0.0
    assert build_config().sft.optim.schedule == "cosine"
    constant = build_config({"rl": {"optim": {"lr": 1e-3}}}).rl.optim  # RL's defaults survive an override
    assert constant.schedule == "constant" and constant.warmup_ratio == 0.0
    assert {lr_factor(step, constant, 20) for step in range(21)} == {1.0}

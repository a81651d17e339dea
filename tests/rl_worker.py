"""Run by test_train_rl_distributed, alone or under torchrun.

``update MODEL OUT``: one policy update from the fixed synthetic global batch, each rank on its share of
the groups; the main rank saves the parameters and stats to OUT.
``loop MODEL OUT``: two steps of the RL loop.
"""

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # the repo root, for bench.policies

import torch
from rl_support import rl_config, synthetic_batch
from transformers import AutoModelForCausalLM

from hipo.config import build_config, distributed_env
from hipo.train import distributed
from hipo.train.rl import make_updater, train_rl
from hipo.train.update import policy_update


def update(model_dir: str, out: str) -> None:
    env = distributed_env()
    created = distributed.init(env)
    model = AutoModelForCausalLM.from_pretrained(model_dir).eval()
    batch = synthetic_batch(model.config.vocab_size, groups=4, group_size=4)
    mine = distributed.shard(list(range(batch.num_groups)), env)
    keep = torch.tensor([g in mine for g in range(batch.num_groups)])
    config = build_config({"rl": {"ppo_epochs": 2, "optim": {"micro_batch_size": 3, "lr": 5e-5}}})
    updater = make_updater(config, env, model)
    stats = policy_update(updater, batch.select_groups(keep), config.rl, norm_len=16)
    if distributed.is_main():
        params = torch.cat([p.detach().flatten() for p in model.parameters()])
        torch.save({"params": params, "stats": stats}, out)
    distributed.close(created)


def loop(model_dir: str, out: str) -> None:
    train_rl(rl_config({"rl": {"steps": 2, "save_every": 1}}), model_dir, out)


if __name__ == "__main__":
    {"update": update, "loop": loop}[sys.argv[1]](*sys.argv[2:])

"""The torch updater's AdamW runs fused (one kernel over all weights); it makes the same update as
torch's default per-tensor AdamW, up to float rounding."""

import copy

import torch
from transformers import AutoModelForCausalLM

from hipo.config import DistributedEnv, build_config
from hipo.train.optim import Updater, _param_groups


def test_fused_adamw_makes_the_default_update(tiny_model_dir):
    optim = build_config({"rl": {"optim": {"lr": 1e-3, "weight_decay": 0.1}}}).rl.optim
    model = AutoModelForCausalLM.from_pretrained(tiny_model_dir)
    reference = copy.deepcopy(model)
    updater = Updater(model, optim, steps=10, env=DistributedEnv())
    plain = torch.optim.AdamW(_param_groups(reference, optim.weight_decay), lr=optim.lr)
    assert updater.optimizer.defaults["fused"] and not plain.defaults["fused"]
    gen = torch.Generator().manual_seed(0)
    for _ in range(3):
        grads = [torch.randn(p.shape, generator=gen) for p in model.parameters()]
        for a, b, g in zip(model.parameters(), reference.parameters(), grads, strict=True):
            a.grad, b.grad = g.clone(), g.clone()
        updater.optimizer.step()
        plain.step()
    got = torch.cat([p.detach().flatten() for p in model.parameters()])
    expected = torch.cat([p.detach().flatten() for p in reference.parameters()])
    start = torch.cat(
        [p.detach().flatten() for p in AutoModelForCausalLM.from_pretrained(tiny_model_dir).parameters()]
    )
    assert (got - start).abs().max() > 1e-3
    assert torch.allclose(got, expected, atol=1e-6)

"""Rows that share a prompt run it once: in the update packed (hipo.train.logprobs), with the same
log-probs, entropies, gradients and updates as the plain layout up to float rounding; in generation
(hipo.engines.hf.sample) with one prefill per prompt and the same samples."""

import copy
from dataclasses import replace

import pytest
import torch
from rl_support import synthetic_batch
from transformers import AutoModelForCausalLM

from hipo.config import DistributedEnv, SamplingConfig, build_config
from hipo.engines.hf import sample
from hipo.train.logprobs import pack_by_prompt, response_logprobs, shares_prompts
from hipo.train.rl import make_updater
from hipo.train.rollout import pad_rows
from hipo.train.update import policy_update

WIDE = 10**6  # a hidden size at which packing always costs fewer FLOPs: the tiny model packed anyway


@pytest.fixture(scope="module")
def model(tiny_model_dir):
    return AutoModelForCausalLM.from_pretrained(tiny_model_dir).eval()


def _grouped(vocab, groups=3, group_size=4):
    """synthetic_batch with one prompt per group (as rollouts have), of different lengths per group."""
    batch = synthetic_batch(vocab, groups, group_size)
    ids, attention = batch.input_ids.clone(), batch.attention_mask.clone()
    width_p = batch.prompt_width
    for g in range(groups):
        first = g * group_size
        ids[first : first + group_size, :width_p] = ids[first, :width_p]
        attention[first : first + group_size, :width_p] = attention[first, :width_p]
    return replace(batch, input_ids=ids, attention_mask=attention)


def _logprobs_and_grads(model, batch, share):
    model.zero_grad(set_to_none=True)
    logp, ent = response_logprobs(
        model, batch.input_ids, batch.attention_mask, batch.prompt_width, True, WIDE if share else 0
    )
    (logp * batch.advantages * batch.response_mask).sum().backward()
    grads = torch.cat([p.grad.flatten() for p in model.parameters() if p.grad is not None])
    return logp.detach(), ent, grads


def test_packing_puts_each_prompt_once_and_every_response_after_it(model):
    batch = _grouped(model.config.vocab_size)
    rows = torch.tensor([0, 5, 1, 4, 9])  # groups 0, 1, 0, 1, 2, out of order
    ids, attention = batch.input_ids[rows], batch.attention_mask[rows]
    width_p = batch.prompt_width
    packed = pack_by_prompt(ids, attention, width_p, WIDE)
    assert packed is not None and packed.input_ids.shape[0] == 3
    lengths = attention[:, width_p:].sum(-1)
    for row in range(len(rows)):
        seq, n = packed.sequence[row], int(lengths[row])
        assert packed.input_ids[seq, :width_p].tolist() == ids[row, :width_p].tolist()
        start = width_p + int(packed.logit_index[row, 1]) if n > 1 else None
        if start is not None:  # token j sits one column after the logit that predicts it
            response = packed.input_ids[seq, start - 1 : start - 1 + n].tolist()
            assert response == ids[row, width_p : width_p + n].tolist()
    assert pack_by_prompt(ids[[0, 1]], attention[[0, 1]], width_p, WIDE) is None  # no prompt twice


def test_shared_prompts_give_the_plain_logprobs_entropies_and_gradients(model):
    assert shares_prompts(model) == model.config.hidden_size
    batch = _grouped(model.config.vocab_size)
    plain, packed = (_logprobs_and_grads(model, batch, share) for share in (False, True))
    mask = batch.response_mask
    assert torch.allclose(plain[0], packed[0], atol=1e-5)
    assert (plain[0][~mask] == 0).all() and (packed[0][~mask] == 0).all()
    assert torch.allclose(plain[1], packed[1], atol=1e-5)
    scale = plain[2].abs().max()  # gradients up to ~100 here: float rounding is relative to that
    assert scale > 1e-3 and torch.allclose(plain[2], packed[2], rtol=1e-4, atol=1e-5 * float(scale))
    assert (plain[2] - packed[2]).norm() < 1e-5 * plain[2].norm()


def test_a_policy_update_with_shared_prompts_equals_the_plain_one(model, monkeypatch):
    batch = _grouped(model.config.vocab_size, groups=4)
    config = build_config({"rl": {"kl_beta": 0.0, "optim": {"micro_batch_size": 6, "lr": 2e-4}}})
    results = []
    for share in (False, True):
        monkeypatch.setattr("hipo.train.update.shares_prompts", lambda _, s=share: WIDE if s else 0)
        trained = copy.deepcopy(model)
        stats = policy_update(make_updater(config, DistributedEnv(), trained), batch, config.rl, 16)
        results.append((torch.cat([p.detach().flatten() for p in trained.parameters()]), stats))
    (plain, plain_stats), (packed, packed_stats) = results
    start = torch.cat([p.detach().flatten() for p in model.parameters()])
    assert (packed - start).abs().max() > 1e-4
    assert torch.allclose(plain, packed, atol=2e-5)  # Adam on float noise, as in test_rl_parts
    for key in ("loss", "clip_frac", "grad_norm", "entropy"):
        assert plain_stats[key] == pytest.approx(packed_stats[key], rel=1e-4, abs=1e-6), key


def test_packing_happens_only_where_it_costs_fewer_flops(model):
    """Packing trades the repeated prompts for longer sequences (attention ~ length squared)."""
    cases = [(40, 4, 576, True), (40, 400, 576, False), (4, 40, 8, False), (4, 40, 576, True)]
    for prompt, response, hidden, packs in cases:  # 8 rows of one prompt
        ids, attention, width_p, _ = pad_rows([[1] * prompt] * 8, [[2] * response] * 8, pad_id=0)
        assert (pack_by_prompt(ids, attention, width_p, hidden) is not None) == packs


def test_a_model_without_sdpa_attention_or_with_sliding_windows_runs_the_plain_layout(model):
    eager, windowed = copy.deepcopy(model), copy.deepcopy(model)
    eager.config._attn_implementation = "eager"
    windowed.config.layer_types = ["sliding_attention"] * windowed.config.num_hidden_layers
    assert shares_prompts(eager) == shares_prompts(windowed) == shares_prompts(lambda **_: None) == 0


def test_equal_rows_share_one_prefill_and_decode_as_they_would_alone(model):
    """Generation: the rows [a, b, a, a] prefill two prompts, and each row decodes as it does alone."""
    gen = torch.Generator().manual_seed(0)
    a, b = (torch.randint(2, model.config.vocab_size, (n,), generator=gen) for n in (5, 3))
    ids = torch.stack([a, torch.cat([torch.zeros(2, dtype=torch.long), b]), a, a])
    attention = (torch.arange(5) >= torch.tensor([0, 2, 0, 0])[:, None]).long()
    greedy = SamplingConfig(temperature=0.0, max_new_tokens=6)
    prefill_rows = []
    hook = model.register_forward_pre_hook(
        lambda _, args, kwargs: prefill_rows.append(kwargs["input_ids"].shape), with_kwargs=True
    )
    try:
        together = sample(model, ids, attention, greedy, [-1], 0, gen)
    finally:
        hook.remove()
    assert prefill_rows[0] == (2, 5)
    for row in range(4):
        alone = sample(model, ids[row : row + 1], attention[row : row + 1], greedy, [-1], 0, gen)
        assert together.tokens[row].tolist() == alone.tokens[0].tolist()
        assert torch.allclose(together.logprobs[row], alone.logprobs[0], atol=1e-5)

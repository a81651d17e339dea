"""The response format of docs/algorithm.md §1: render/parse round trips, garbage, tokens, spans."""

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from hipo import template as T

ON_TEXT = (
    "<judge>\nCarries across three columns.\n</judge>\n<think_on>\n<think>\n5+7=12\n</think>\n"
    "<answer>\n112\n</answer>"
)


def test_render_think_on_exact_text():
    assert T.render("on", "Carries across three columns.", "112", think="5+7=12") == ON_TEXT


def test_render_think_off_has_no_think_block():
    text = T.render("off", "One digit each.", "7")
    assert text == "<judge>\nOne digit each.\n</judge>\n<think_off>\n<answer>\n7\n</answer>"


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"mode": "on", "judge": "j", "answer": "1"}, "think block is required"),
        ({"mode": "off", "judge": "j", "answer": "1", "think": "x"}, "not allowed"),
        ({"mode": "maybe", "judge": "j", "answer": "1"}, "mode must be"),
        ({"mode": "off", "judge": "j", "answer": "<answer>1"}, "must not contain"),
    ],
)
def test_render_rejects_inconsistent_input(kwargs, message):
    with pytest.raises(ValueError, match=message):
        T.render(**kwargs)


def test_parse_well_formed_think_on():
    p = T.parse(ON_TEXT)
    assert p.format_ok and p.problems == ()
    assert (p.mode, p.judge, p.think, p.answer) == ("on", "Carries across three columns.", "5+7=12", "112")
    assert ON_TEXT[: p.judge_end].endswith("<think_on>")


def test_parse_tolerates_whitespace_and_end_of_turn():
    text = "  <judge>why</judge><think_off>\n\n  <answer> 7 </answer>\n<|im_end|>\n"
    p = T.parse(text)
    assert p.format_ok and p.mode == "off" and p.answer == "7" and p.judge == "why"


@pytest.mark.parametrize(
    ("text", "problem"),
    [
        ("<judge>j</judge><answer>1</answer>", "no mode tag"),
        ("<judge>j</judge><think_off><think>x</think><answer>1</answer>", "out of order"),
        ("<judge>j</judge><think_on><answer>1</answer>", "out of order"),
        ("<judge>j</judge><think_on><think_off><answer>1</answer>", "both mode tags"),
        ("<judge>j</judge><think_off><answer>1</answer><answer>2</answer>", "appears 2 times"),
        ("hello <judge>j</judge><think_off><answer>1</answer>", "text outside"),
        ("<judge>j</judge><think_off>so<answer>1</answer>", "text outside"),
        ("<judge>j</judge><think_off><answer>1</answer> trailing", "text outside"),
        ("<think_off><answer>1</answer>", "out of order"),
        ("<judge>j</judge><think_off><answer>1", "out of order"),
    ],
)
def test_parse_names_structural_problems(text, problem):
    p = T.parse(text)
    assert not p.format_ok
    assert any(problem in x for x in p.problems), p.problems


def test_parse_is_best_effort_on_broken_output():
    p = T.parse("<judge>j</judge><think_on><answer>42</answer> and more")
    assert not p.format_ok and p.mode == "on" and p.answer == "42"


@pytest.mark.parametrize("value", [None, 3, b"<judge>", ["x"]])
def test_parse_non_strings(value):
    assert not T.parse(value).format_ok


def test_prefill_is_a_prefix_of_the_rendered_response():
    assert T.render("off", "easy", "3").startswith(T.prefill("off", "easy"))
    assert T.prefill("on").endswith("<think_on>\n")


_content = st.text(alphabet=st.characters(blacklist_categories=("Cs",)), max_size=40).filter(
    lambda s: not T._TAG_SPLIT.search(s)
)


@settings(max_examples=300, deadline=None)
@given(st.sampled_from(["on", "off"]), _content, _content, _content)
def test_render_parse_round_trip(mode, judge, answer, think):
    p = T.parse(T.render(mode, judge, answer, think if mode == "on" else None))
    assert p.format_ok, p.problems
    assert p.mode == mode and p.judge == judge.strip() and p.answer == answer.strip()
    assert p.think == (think.strip() if mode == "on" else None)


_garbage = st.lists(
    st.one_of(st.sampled_from([*T.HIPO_TAGS, T.TURN_END, "<judge", "answer>"]), st.text(max_size=8)),
    max_size=20,
).map("".join)


@settings(max_examples=500, deadline=None)
@given(st.one_of(_garbage, st.text()))
def test_parse_never_raises_and_is_consistent(text):
    p = T.parse(text)
    assert p.format_ok == (p.problems == ())
    if p.format_ok:
        assert p.mode is not None and p.answer is not None and p.judge is not None
        assert (p.think is not None) == (p.mode == "on")
    if p.mode is None:
        assert p.judge_end is None


# ---------------------------------------------------------------- tokenizer side


@pytest.fixture(scope="module")
def tokenizer():
    from hipo.config import ModelConfig
    from hipo.models.tiny import build_tiny

    _, tok = build_tiny(ModelConfig(tiny_hidden=32, tiny_layers=1, tiny_heads=1))
    return tok, T.add_hipo_tokens(tok)


def test_add_hipo_tokens_makes_every_tag_one_token(tokenizer):
    tok, ids = tokenizer
    encoded = tok.encode(ON_TEXT, add_special_tokens=False)
    assert encoded.count(ids.think_on) == 1 and ids.think_off not in encoded
    assert tok.decode(encoded) == ON_TEXT
    assert tok.eos_token == T.TURN_END and tok.pad_token is not None


def test_tags_survive_skip_special_tokens(tokenizer):
    tok, _ = tokenizer
    encoded = tok.encode(ON_TEXT + T.TURN_END, add_special_tokens=False)
    assert tok.decode(encoded, skip_special_tokens=True) == ON_TEXT


def test_add_hipo_tokens_is_idempotent(tokenizer):
    tok, ids = tokenizer
    size = len(tok)
    assert T.add_hipo_tokens(tok) == ids and len(tok) == size


def test_chat_template_auto_and_forced_modes(tokenizer):
    tok, _ = tokenizer
    msgs = [{"role": "user", "content": "What is 2 + 3?"}]
    auto = tok.apply_chat_template(msgs, tokenize=False, add_generation_prompt=True)
    assert auto == "<|im_start|>user\nWhat is 2 + 3?<|im_end|>\n<|im_start|>assistant\n"
    forced = tok.apply_chat_template(msgs, tokenize=False, add_generation_prompt=True, mode="off")
    assert forced == auto + T.prefill("off")
    judged = tok.apply_chat_template(
        msgs, tokenize=False, add_generation_prompt=True, mode="on", judge="hard"
    )
    assert judged == auto + T.prefill("on", "hard")
    full = tok.apply_chat_template([*msgs, {"role": "assistant", "content": ON_TEXT}], tokenize=False)
    assert full.endswith(ON_TEXT + "<|im_end|>\n")


def test_judge_span_lengths_and_modes(tokenizer):
    tok, ids = tokenizer
    texts = [ON_TEXT, T.render("off", "x", "7"), "<answer>7</answer>"]
    rows = [tok.encode(t, add_special_tokens=False) for t in texts]
    width = max(map(len, rows)) + 2
    batch = torch.full((3, width), tok.pad_token_id)
    mask = torch.zeros(3, width, dtype=torch.bool)
    for i, row in enumerate(rows):
        batch[i, : len(row)] = torch.tensor(row)
        mask[i, : len(row)] = True
    lengths = T.judge_span_lengths(batch, mask, ids)
    for i, text in enumerate(texts[:2]):
        prefix = text[: T.parse(text).judge_end]
        assert lengths[i] == len(tok.encode(prefix, add_special_tokens=False))
        assert batch[i, lengths[i] - 1] in (ids.think_on, ids.think_off)
    assert lengths[2] == 0
    assert T.token_modes(batch, mask, ids).tolist() == [1, 0, -1]
    # a mode tag in the padding does not count
    batch[2, -1] = ids.think_on
    assert T.judge_span_lengths(batch, mask, ids)[2] == 0
    # batched over leading dims
    assert T.judge_span_lengths(batch.view(3, 1, -1), mask.view(3, 1, -1), ids).shape == (3, 1)

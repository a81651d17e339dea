"""The tiny Qwen3: random weights of ``model.tiny_*`` size and a byte-level BPE tokenizer trained here on
chat-shaped arithmetic text, so the same seed always gives the same model."""

from __future__ import annotations

import random
from collections.abc import Iterable
from typing import Any

import torch
from transformers import PreTrainedTokenizerFast, Qwen3Config, Qwen3ForCausalLM

from hipo import template
from hipo.config import ModelConfig

TURN_MARKERS = (template.TURN_START, template.TURN_END)


def default_corpus(seed: int = 0, n: int = 600) -> list[str]:
    """Chat-shaped arithmetic text (prompts, teacher responses in both modes, templated rationales)."""
    from hipo.tasks.arithmetic import ArithmeticTask
    from hipo.tasks.rationale import RationaleRequest, TemplateRationaleWriter
    from hipo.tasks.teacher import PLACEHOLDER_JUDGE, ScriptedTeacher

    rng = random.Random(seed)
    teacher = ScriptedTeacher(seed=seed)
    texts = []
    for problem in ArithmeticTask().problems("train", n, seed):
        mode = rng.choice(("on", "off"))
        p_on, p_off = rng.choice((0.75, 0.875, 1.0)), rng.choice((0.0, 0.125, 0.5, 0.875, 1.0))
        request = RationaleRequest(problem.id, problem.prompt, mode, p_on, p_off, 8, problem.answer)
        response = teacher.respond(problem, mode, rng)
        rationale = TemplateRationaleWriter.one(request)
        texts.append(f"user\n{problem.prompt}\nassistant\n{response.replace(PLACEHOLDER_JUDGE, rationale)}")
    return texts


def _train_tokenizer(corpus: Iterable[str], vocab_size: int) -> PreTrainedTokenizerFast:
    """Byte-level BPE whose pre-tokenizer makes every digit its own token (the arithmetic needs it).

    The tags are cut out of the corpus: they become single tokens anyway (add_hipo_tokens).
    """
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers

    def untagged() -> Iterable[str]:
        for text in corpus:
            for tag in (*template.HIPO_TAGS, *TURN_MARKERS):
                text = text.replace(tag, "\n")
            yield text

    byte_level = pre_tokenizers.ByteLevel(add_prefix_space=False, use_regex=True)
    bpe = Tokenizer(models.BPE(unk_token=None))
    bpe.pre_tokenizer = pre_tokenizers.Sequence([pre_tokenizers.Digits(individual_digits=True), byte_level])
    bpe.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(
        vocab_size=vocab_size,
        special_tokens=list(TURN_MARKERS),
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
        show_progress=False,
    )
    bpe.train_from_iterator(untagged(), trainer)
    return PreTrainedTokenizerFast(tokenizer_object=bpe, eos_token=template.TURN_END, padding_side="left")


def build_tiny(
    config: ModelConfig, corpus: Iterable[str] | None = None, seed: int = 0, vocab_size: int = 512
) -> tuple[Any, Any]:
    """A random-init Qwen3 of ``config.tiny_*`` size with a tokenizer trained here; same seed, same model.

    head_dim is at least 32 (vLLM's CPU attention needs it), key/value heads are half the heads.
    """
    tokenizer = _train_tokenizer(default_corpus(seed) if corpus is None else corpus, vocab_size)
    hidden, heads = config.tiny_hidden, config.tiny_heads
    qwen = Qwen3Config(
        vocab_size=len(tokenizer),
        hidden_size=hidden,
        intermediate_size=3 * hidden,
        num_hidden_layers=config.tiny_layers,
        num_attention_heads=heads,
        num_key_value_heads=max(1, heads // 2),
        head_dim=max(32, hidden // heads),
        max_position_embeddings=4096,
        rope_parameters={"rope_type": "default", "rope_theta": config.tiny_rope_theta},
        tie_word_embeddings=True,
        bos_token_id=None,
        eos_token_id=tokenizer.eos_token_id,
        pad_token_id=tokenizer.eos_token_id,
    )
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        model = Qwen3ForCausalLM(qwen)
    return model, tokenizer

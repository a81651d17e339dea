"""Model folders: refuse, before any weights load, a folder ``from_pretrained`` would fail on, and
load one that passes. Every refusal is a :class:`ModelError` that names the folder and the fix."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import torch
from transformers import AutoModelForCausalLM, AutoTokenizer

from hipo import template
from hipo.config import ConfigError

TOKENIZER_FILES = ("tokenizer.json", "tokenizer.model", "vocab.json")  # one of them holds the vocabulary


class ModelError(ConfigError):
    """The policy named by ``model.base`` cannot be built or loaded; the message says why and the fix."""


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


def from_dir(path: Path) -> tuple[Any, Any]:
    check_model_folder(path)
    try:
        tokenizer = AutoTokenizer.from_pretrained(path)
        model = AutoModelForCausalLM.from_pretrained(path, dtype=torch.float32)
    except Exception as error:  # any failure to load a user's folder is that folder's problem
        raise ModelError(f"model folder {path}: {load_problem(error)}") from None
    return model, tokenizer

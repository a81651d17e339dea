"""The hybrid SFT dataset (docs/algorithm.md §2, step 7): its schema, and reading a dataset directory
(local or s3://) into one frame, with a clear error for every bad input.

One directory holds ``train.parquet`` and ``eval.parquet`` (``.jsonl`` is accepted too). The kinds are
pandas dtype names, so ``frame.astype(DATASET_COLUMNS)`` gives a frame the quality gate accepts:
``string`` columns hold text, ``Int64`` is pandas' nullable integer (``level`` is the only nullable
column). Both formats go through Arrow so that column types do not depend on the format: text becomes
pandas ``string``, integers nullable ``Int64`` (a null does not silently turn them into floats),
booleans nullable ``boolean``. Integer columns that the schema declares float are widened (JSONL
writes ``1`` for ``1.0``); nothing else is converted, so a wrong type reaches the gate and is
reported there.
"""

from __future__ import annotations

import io
import json
from dataclasses import dataclass
from pathlib import Path

import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq

from hipo import storage

DATASET_COLUMNS: dict[str, str] = {
    "id": "string",
    "source": "string",
    "prompt": "string",
    "response": "string",  # the full HiPO-format target
    "mode": "string",  # "on" | "off"
    "preferred_mode": "string",  # the mode the pass rates prefer: the label for mode-choice accuracy
    "answer": "string",  # the answer block text of the response
    "reference_answer": "string",  # the gold answer
    "p_on": "float64",
    "p_off": "float64",
    "difficulty": "string",  # pass-rate bucket
    "level": "Int64",  # the task's own difficulty where it has one
    "n_tokens": "int64",
    "random_mode": "bool",
    "rationale_model": "string",
    "teacher": "string",
    "seed": "int64",
    "config_hash": "string",
}
NULLABLE_COLUMNS = frozenset({"level"})
SPLITS = ("train", "eval")
FORMATS = (".parquet", ".jsonl")  # searched in this order per split
COLD_START_SETS = ("mix", "on")  # the data pipeline writes one dataset folder for each
MODES = ("on", "off")
DIFFICULTIES = ("easy", "medium", "hard")
SPLIT_COLUMN = "_split"
ROW_COLUMN = "_row"  # the row's position in its file, to find it where ids are missing or repeated


class DatasetError(ValueError):
    """The dataset cannot be read at all; the message names the file and the cause."""


@dataclass(frozen=True)
class Dataset:
    """All rows of every split (``_split`` says which), the files read and what each lacks."""

    frame: pd.DataFrame
    files: dict[str, str]  # split -> URI
    row_counts: dict[str, int]
    missing_columns: dict[str, list[str]]  # split -> schema columns absent from its file


def _existing(base: str, split: str) -> str | None:
    for suffix in FORMATS:
        uri = storage.join_uri(base, split + suffix)
        try:
            if storage.exists(uri):
                return uri
        except storage.StorageError as error:
            raise DatasetError(f"cannot look for {uri}: {error}") from None
    return None


def _find(base: str, split: str) -> str:
    uri = _existing(base, split)
    if uri is not None:
        return uri
    names = " or ".join(split + suffix for suffix in FORMATS)
    message = f"dataset {base} has no {split} split: expected {names} in it"
    inside = [name for name in COLD_START_SETS if _existing(storage.join_uri(base, name), split)]
    if inside:  # the data pipeline's output folder, one level above its Cold-Start sets
        message += "; it holds the Cold-Start sets " + " and ".join(inside)
        message += ": pass " + " or ".join(storage.join_uri(base, name) for name in inside)
    raise DatasetError(message)


def _arrow_type(kind: pa.DataType) -> pd.api.extensions.ExtensionDtype | None:
    if pa.types.is_string(kind) or pa.types.is_large_string(kind):
        return pd.StringDtype()
    if pa.types.is_integer(kind):
        return pd.Int64Dtype()
    if pa.types.is_boolean(kind):
        return pd.BooleanDtype()
    return None


def _read_parquet(uri: str, data: bytes) -> pa.Table:
    if not data.startswith(b"PAR1"):
        raise DatasetError(f"{uri} is not a Parquet file (it does not start with the PAR1 magic bytes)")
    try:
        return pq.read_table(io.BytesIO(data))
    except (pa.ArrowException, OSError, ValueError) as error:
        raise DatasetError(f"{uri} is a corrupt or truncated Parquet file: {error}") from None


def _read_jsonl(uri: str, data: bytes) -> pa.Table:
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError as error:
        line = data[: error.start].count(b"\n") + 1
        raise DatasetError(
            f"{uri} is not UTF-8 text: byte 0x{data[error.start]:02x} at offset {error.start} "
            f"(line {line}); write the file as UTF-8"
        ) from None
    rows = []
    for number, line in enumerate(text.split("\n"), start=1):  # not splitlines: U+2028 is valid in JSON
        if not line.strip():
            continue
        try:
            row = json.loads(line)
        except json.JSONDecodeError as error:
            raise DatasetError(f"{uri} line {number} is not valid JSON: {error.msg}") from None
        if not isinstance(row, dict):
            raise DatasetError(f"{uri} line {number} is not a JSON object: {line[:80]!r}")
        rows.append(row)
    if not rows:
        return pa.table({})
    try:
        return pa.Table.from_pylist(rows)
    except (pa.ArrowException, TypeError, ValueError) as error:
        raise DatasetError(f"{uri}: a column holds values of different types across rows: {error}") from None


def _scalar_columns(uri: str, table: pa.Table) -> pa.Table:
    """``table`` with its binary schema columns as text; refused when a schema column holds lists or
    structs (one scalar per row is the schema) or bytes that are not UTF-8."""
    for name in DATASET_COLUMNS:
        if name not in table.column_names:
            continue
        kind = table.schema.field(name).type
        if pa.types.is_nested(kind):
            raise DatasetError(
                f"{uri}: column {name!r} holds {kind} values, not one {DATASET_COLUMNS[name]} per row"
            )
        if pa.types.is_binary(kind) or pa.types.is_large_binary(kind):
            try:
                text = table.column(name).cast(pa.string())
            except pa.ArrowInvalid:
                raise DatasetError(f"{uri}: column {name!r} holds bytes that are not UTF-8 text") from None
            table = table.set_column(table.schema.get_field_index(name), name, text)
    return table


def _read(uri: str) -> pd.DataFrame:
    try:
        data = storage.read_bytes(uri)
    except storage.StorageError as error:
        raise DatasetError(f"cannot read {uri}: {error}") from None
    if not data:
        raise DatasetError(f"{uri} is empty (0 bytes): was it written completely?")
    table = _read_parquet(uri, data) if uri.endswith(".parquet") else _read_jsonl(uri, data)
    table = _scalar_columns(uri, table)
    try:
        frame = table.to_pandas(types_mapper=_arrow_type).reset_index(drop=True)
    except UnicodeDecodeError as error:
        raise DatasetError(f"{uri}: a text column holds bytes that are not UTF-8 ({error.reason})") from None
    for name, kind in DATASET_COLUMNS.items():
        if kind == "float64" and name in frame and pd.api.types.is_integer_dtype(frame[name]):
            frame[name] = frame[name].astype("Float64").astype("float64")
    return frame


def load_dataset(dataset_dir: str | Path) -> Dataset:
    """Read every split of ``dataset_dir`` (a local directory or an s3:// prefix)."""
    base = str(dataset_dir)
    if not base.startswith("s3://"):
        path = Path(base.removeprefix("file://"))
        if not path.exists():
            raise DatasetError(f"dataset directory {path} does not exist (resolved to {path.resolve()})")
        if not path.is_dir():
            raise DatasetError(f"dataset path {path} is a file, not a directory holding train/eval files")
        base = str(path)
    files = {split: _find(base, split) for split in SPLITS}
    frames = {split: _read(uri) for split, uri in files.items()}
    missing = {s: [c for c in DATASET_COLUMNS if c not in f] for s, f in frames.items()}
    lacking = {c for columns in missing.values() for c in columns}
    # a column that one split lacks is dropped everywhere, so the column check names it
    frame = pd.concat(
        [
            f.drop(columns=[c for c in lacking if c in f]).assign(
                **{SPLIT_COLUMN: s, ROW_COLUMN: range(len(f))}
            )
            for s, f in frames.items()
        ],
        ignore_index=True,
    )
    return Dataset(
        frame=frame,
        files=files,
        row_counts={split: len(f) for split, f in frames.items()},
        missing_columns={s: columns for s, columns in missing.items() if columns},
    )

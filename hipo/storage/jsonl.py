"""Append-only JSON-lines files that survive a crash: whole lines are durable, a torn last line is cut.

The data pipeline and evaluation write their per-sample results this way, so a rerun with the same
output directory continues where a crashed run stopped.
"""

from __future__ import annotations

import json
import os
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import IO, Any


def read_complete(path: Path) -> Iterator[dict[str, Any]]:
    """Every complete line of ``path`` as a dict (a torn last line is ignored); nothing if absent."""
    if path.exists():
        with path.open(encoding="utf-8") as f:
            yield from (json.loads(line) for line in f if line.endswith("\n"))


def cut_torn_tail(path: Path) -> None:
    """Drop a last line that a crash cut short, so appends start on a line boundary."""
    data = path.read_bytes() if path.exists() else b""
    if data and not data.endswith(b"\n"):
        path.write_bytes(data[: data.rfind(b"\n") + 1])


def append_durably(out: IO[str], rows: Iterable[dict[str, Any]]) -> None:
    """Write rows as lines and force them to disk before returning."""
    out.write("".join(json.dumps(r, ensure_ascii=False) + "\n" for r in rows))
    out.flush()
    os.fsync(out.fileno())

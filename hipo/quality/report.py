"""The gate's report: ``result.json`` and a self-contained ``report.html`` for the KFP UI.

The HTML has inline CSS only and no external references (no scripts, links, images or URLs), which is
why it is written here rather than with great-expectations Data Docs (they load assets from a CDN).
"""

from __future__ import annotations

import html
import json
from pathlib import Path
from typing import TYPE_CHECKING, Any

from hipo import storage
from hipo.storage import join_uri
from hipo.storage.html import BASE_CSS

if TYPE_CHECKING:
    from hipo.quality.gate import CheckResult, GateResult

# each report adds its own rules after the shared BASE_CSS
_CSS = """
h2{font-size:1.1em;margin-top:1.5em}
td,th{text-align:left;vertical-align:top}
.badge{display:inline-block;padding:.1em .6em;border-radius:.8em;color:#fff;font-weight:bold;font-size:.85em}
.pass{background:#2e7d32}.fail{background:#c62828}.skip{background:#757575}
.examples td{font-family:monospace;white-space:pre-wrap;max-width:40em}
.check{margin:.6em 0;padding:.4em .6em;border-left:4px solid #ccc}
.check.fail{border-color:#c62828;background:#fff5f5}
"""


def _text(value: Any) -> str:
    """Escaped text; '://' is written as an entity so that no URL from the data appears in the file."""
    shown = value if isinstance(value, str) else json.dumps(value, ensure_ascii=False)
    return html.escape(shown).replace("://", ":&#47;&#47;")


def _badge(success: bool | None) -> str:
    label, css = {True: ("PASS", "pass"), False: ("FAIL", "fail"), None: ("NOT RUN", "skip")}[success]
    return f'<span class="badge {css}">{label}</span>'


def _examples(rows: list[dict[str, Any]]) -> str:
    if not rows:
        return ""
    columns = list(dict.fromkeys(k for row in rows for k in row))
    head = "".join(f"<th>{_text(c)}</th>" for c in columns)
    body = "".join(
        "<tr>" + "".join(f"<td>{_text(row.get(c))}</td>" for c in columns) + "</tr>" for row in rows
    )
    return f'<table class="examples"><tr>{head}</tr>{body}</table>'


def _check(c: CheckResult) -> str:
    css = "check fail" if c.success is False else "check"
    facts = [f"<code>{_text(c.expectation)}</code>"]
    if c.unexpected_count is not None:
        facts.append(f"offending rows: {c.unexpected_count}")
    if c.observed is not None:
        facts.append(f"observed: {_text(c.observed)}")
    if c.note:
        facts.append(_text(c.note))
    return (
        f'<div class="{css}">{_badge(c.success)} <b>{_text(c.name)}</b> — {_text(c.description)}'
        f'<div class="muted">{" · ".join(facts)}</div>{_examples(c.examples)}</div>'
    )


def render_html(result: GateResult) -> str:
    """The whole report as one HTML document."""
    failed = len(result.failures)
    summary = [
        ("result", _badge(result.passed)),
        ("dataset", _text(result.dataset)),
        *((f"rows ({split})", str(n)) for split, n in result.row_counts.items()),
        ("expectations", f"{len(result.checks)} ({failed} failed, {len(result.skipped)} not run)"),
        ("seconds", f"{result.seconds:.2f}"),
    ]
    rows = "".join(f"<tr><th>{k}</th><td>{v}</td></tr>" for k, v in summary)
    ordered = sorted(result.checks, key=lambda c: {False: 0, None: 1, True: 2}[c.success])
    return (
        '<!DOCTYPE html><html lang="en"><head><meta charset="utf-8"><title>HiPO data-quality gate</title>'
        f"<style>{BASE_CSS}{_CSS}</style></head><body><h1>HiPO data-quality gate</h1><table>{rows}</table>"
        f"<h2>Expectations</h2>{''.join(_check(c) for c in ordered)}</body></html>"
    )


def write_report(result: GateResult, out_dir: str | Path) -> dict[str, str]:
    """Write ``result.json`` and ``report.html`` into ``out_dir`` (local or s3://); their URIs by name."""
    written = {name: join_uri(str(out_dir), name) for name in ("result.json", "report.html")}
    storage.write_bytes(written["result.json"], json.dumps(result.to_dict(), indent=2).encode())
    storage.write_bytes(written["report.html"], result.html().encode())
    return written

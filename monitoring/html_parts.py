"""The pieces every HTML page of monitoring is built from: its CSS, a table, a figure, and how a
figure or a share is written in a cell. Inline only: the pages are self-contained."""

from __future__ import annotations

from html import escape
from typing import Any

CSS = """
body { font: 14px/1.45 system-ui, sans-serif; margin: 2em auto; max-width: 1200px;
       color: #222; padding: 0 1em; }
h1 { font-size: 1.6em; } h2 { margin-top: 2em; border-bottom: 1px solid #ddd; }
table { border-collapse: collapse; margin: .5em 0 1em; }
td, th { border: 1px solid #ddd; padding: 3px 8px; text-align: right; }
th { background: #f4f4f4; } td.l, th.l { text-align: left; }
.alert { background: #fde8e8; border-left: 5px solid #c62828; padding: .6em 1em; }
.ok { background: #e8f5e9; border-left: 5px solid #2e7d32; padding: .6em 1em; }
tr.drifted td { background: #fff3e0; } .muted { color: #777; }
figure { margin: 1em 0; } svg { max-width: 100%; height: auto; }
"""


def cell(value: Any, digits: int = 3) -> str:
    if value is None:
        return '<span class="muted">n/a</span>'
    if isinstance(value, float):
        return f"{value:.{digits}f}"
    return escape(str(value))


def percent(value: float | None) -> str:
    return '<span class="muted">n/a</span>' if value is None else f"{value:.1%}"


def table(
    headers: list[str], rows: list[list[str]], left: int = 1, classes: list[str] | None = None
) -> str:
    head = "".join(
        f'<th class="{"l" if i < left else ""}">{escape(h)}</th>' for i, h in enumerate(headers)
    )
    body = []
    for k, row in enumerate(rows):
        cls = f' class="{classes[k]}"' if classes and classes[k] else ""
        cells = "".join(
            f'<td class="{"l" if i < left else ""}">{c}</td>' for i, c in enumerate(row)
        )
        body.append(f"<tr{cls}>{cells}</tr>")
    return f"<table><tr>{head}</tr>{''.join(body)}</table>"


def figure(svg: str, caption: str) -> str:
    return f"<figure>{svg}<figcaption class='muted'>{escape(caption)}</figcaption></figure>"

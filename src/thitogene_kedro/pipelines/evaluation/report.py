"""One self-contained HTML page with a run's tables and figures (images inline)."""

from __future__ import annotations

import base64
import html
import io
from collections.abc import Callable, Mapping
from datetime import UTC, datetime
from typing import Any

import pandas as pd
from PIL import Image

_STYLE = """
body{font-family:system-ui,sans-serif;margin:2rem auto;max-width:1100px;color:#222}
h1{font-size:1.6rem}h2{font-size:1.25rem;margin-top:2rem;border-bottom:1px solid #ddd}
table{border-collapse:collapse;font-size:.85rem;margin:.5rem 0}td,th{border:1px solid #ccc;padding:.2rem .5rem}
th{background:#f3f3f3}img{max-width:100%;border:1px solid #eee;margin:.5rem 0}.note{color:#666;font-size:.85rem}
"""


def _image(image: Image.Image, title: str) -> str:
    buffer = io.BytesIO()
    image.save(buffer, format="PNG")
    data = base64.b64encode(buffer.getvalue()).decode()
    return f'<figure><img alt="{html.escape(title)}" src="data:image/png;base64,{data}"><figcaption class="note">{html.escape(title)}</figcaption></figure>'


def _table(table: pd.DataFrame, rows: int = 60) -> str:
    if table is None or table.empty:
        return '<p class="note">(empty)</p>'
    shown = table.head(rows)
    more = f'<p class="note">first {rows} of {len(table)} rows</p>' if len(table) > rows else ""
    return shown.to_html(index=False, float_format=lambda v: f"{v:.4g}", border=0, na_rep="NaN") + more


def build_report(
    title: str,
    tables: Mapping[str, pd.DataFrame],
    figures: Mapping[str, Image.Image | Callable[[], Image.Image]],
    notes: Mapping[str, str] | None = None,
) -> str:
    """The HTML page: ``tables`` and ``figures`` in the given order, with optional notes per section."""
    notes = dict(notes or {})
    parts = [
        f"<!doctype html><html><head><meta charset='utf-8'><title>{html.escape(title)}</title><style>{_STYLE}</style></head><body>"
    ]
    parts.append(f"<h1>{html.escape(title)}</h1><p class='note'>generated {datetime.now(UTC):%Y-%m-%d %H:%M} UTC</p>")
    for name, table in tables.items():
        parts.append(f"<h2>{html.escape(name)}</h2>")
        if name in notes:
            parts.append(f"<p class='note'>{html.escape(notes[name])}</p>")
        parts.append(_table(table))
    parts.append("<h2>Figures</h2>")
    for name, figure in figures.items():
        image: Any = figure() if callable(figure) else figure
        parts.append(_image(image, name))
    parts.append("</body></html>")
    return "\n".join(parts)

"""One self-contained HTML page with a run's provenance, tables and figures (images inline)."""

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
.synthetic{background:#fff3cd;border:1px solid #e0c060;padding:.5rem 1rem}
table.sortable th{cursor:pointer}table.sortable th:after{content:" \\2195";color:#aaa}
.scroll{max-height:28rem;overflow:auto;display:inline-block}input.filter{margin:.3rem 0;padding:.2rem;width:20rem}
"""

# Filter rows by a text box and sort by a clicked header (numbers as numbers); no external library.
_SCRIPT = """
document.querySelectorAll('input.filter').forEach(function(box){
  var rows=document.getElementById(box.dataset.table).tBodies[0].rows;
  box.addEventListener('input',function(){var q=box.value.toLowerCase();
    for(var r of rows){r.style.display=r.textContent.toLowerCase().includes(q)?'':'none';}});});
document.querySelectorAll('table.sortable').forEach(function(table){
  table.querySelectorAll('th').forEach(function(th,i){var up=true;th.addEventListener('click',function(){
    var body=table.tBodies[0],rows=Array.from(body.rows);
    rows.sort(function(a,b){var x=a.cells[i].textContent,y=b.cells[i].textContent,p=parseFloat(x),q=parseFloat(y);
      var c=(!isNaN(p)&&!isNaN(q))?p-q:x.localeCompare(y);return up?c:-c;});
    up=!up;rows.forEach(function(r){body.appendChild(r);});});});});
"""


def _image(image: Image.Image, title: str) -> str:
    buffer = io.BytesIO()
    image.save(buffer, format="PNG")
    data = base64.b64encode(buffer.getvalue()).decode()
    return f'<figure><img alt="{html.escape(title)}" src="data:image/png;base64,{data}"><figcaption class="note">{html.escape(title)}</figcaption></figure>'


def _table(table: pd.DataFrame | None, why_empty: str, rows: int = 60) -> str:
    if table is None or table.empty:
        return f'<p class="note">(empty: {html.escape(why_empty)})</p>'
    shown = table.head(rows)
    more = f'<p class="note">first {rows} of {len(table)} rows</p>' if len(table) > rows else ""
    return shown.to_html(index=False, float_format=lambda v: f"{v:.4g}", border=0, na_rep="–") + more


def _searchable_table(table: pd.DataFrame, key: str) -> str:
    """Every row, with a filter box and sortable columns."""
    body = table.to_html(
        index=False, float_format=lambda v: f"{v:.4g}", border=0, na_rep="–", table_id=key, classes="sortable"
    )
    box = f'<input class="filter" data-table="{key}" placeholder="filter the {len(table)} rows (e.g. ERBB2)">'
    return f'{box}<p class="note">click a column header to sort</p><div class="scroll">{body}</div>'


def _key_values(values: Mapping[str, str]) -> str:
    rows = []
    for key, value in values.items():
        shown = html.escape(str(value))
        if str(value).startswith(("http://", "https://")):
            shown = f'<a href="{shown}">{shown}</a>'
        rows.append(f"<tr><th>{html.escape(key)}</th><td>{shown}</td></tr>")
    return f"<table>{''.join(rows)}</table>"


def build_report(  # noqa: PLR0913 - the page's parts, each its own mapping
    title: str,
    tables: Mapping[str, pd.DataFrame],
    figures: Mapping[str, Image.Image | Callable[[], Image.Image]],
    notes: Mapping[str, str] | None = None,
    *,
    provenance: Mapping[str, str] | None = None,
    parameters: Mapping[str, str] | None = None,
    searchable: tuple[str, ...] = (),
    why_empty: Mapping[str, str] | None = None,
    banner: str = "",
) -> str:
    """The HTML page: the provenance, ``tables`` (``searchable`` ones whole, filterable and
    sortable; an empty one says why, from ``why_empty``), ``figures`` in the given order and the
    parameters, with optional notes per section."""
    notes, why_empty = dict(notes or {}), dict(why_empty or {})
    parts = [
        f"<!doctype html><html><head><meta charset='utf-8'><title>{html.escape(title)}</title><style>{_STYLE}</style></head><body>"
    ]
    parts.append(f"<h1>{html.escape(title)}</h1><p class='note'>generated {datetime.now(UTC):%Y-%m-%d %H:%M} UTC</p>")
    if banner:
        parts.append(f"<p class='synthetic'>{html.escape(banner)}</p>")
    if provenance:
        parts.append("<h2>Provenance</h2>" + _key_values(provenance))
    for index, (name, table) in enumerate(tables.items()):
        parts.append(f"<h2>{html.escape(name)}</h2>")
        if name in notes:
            parts.append(f"<p class='note'>{html.escape(notes[name])}</p>")
        if name in searchable and table is not None and not table.empty:
            parts.append(_searchable_table(table, f"table{index}"))
        else:
            parts.append(_table(table, why_empty.get(name, "nothing to show")))
    parts.append("<h2>Figures</h2>")
    for name, figure in figures.items():
        image: Any = figure() if callable(figure) else figure
        parts.append(_image(image, name))
    if parameters:
        parts.append("<h2>Parameters</h2><details><summary>every parameter of the run</summary>")
        parts.append(_key_values(parameters) + "</details>")
    parts.append(f"<script>{_SCRIPT}</script></body></html>")
    return "\n".join(parts)

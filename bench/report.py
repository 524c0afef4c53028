"""The measuring scripts' shared report parts: the machine's name, and a report written into a
markdown file between a pair of markers."""

from __future__ import annotations

from pathlib import Path

from thitogene_kedro import markdown_blocks
from thitogene_kedro.provenance import cpu_name

__all__ = ["cpu_name", "write_block"]


def write_block(path: Path, text: str, name: str = "bench") -> None:
    """:func:`thitogene_kedro.markdown_blocks.write_block`, block ``bench`` unless named."""
    markdown_blocks.write_block(path, text, name)

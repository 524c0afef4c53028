"""The measuring scripts' shared report parts: the machine's name, and a report written into a
markdown file between a pair of markers."""

from __future__ import annotations

import platform
from pathlib import Path

from thitogene_kedro import markdown_blocks


def cpu_name() -> str:
    """The CPU model (``/proc/cpuinfo``), else what ``platform`` knows."""
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def write_block(path: Path, text: str, name: str = "bench") -> None:
    """:func:`thitogene_kedro.markdown_blocks.write_block`, block ``bench`` unless named."""
    markdown_blocks.write_block(path, text, name)

"""Generated blocks in hand-written markdown files: ``<!-- name:begin -->`` … ``<!-- name:end -->``.

The commands that measure something (``make bench``, ``make gpu-check``, ``kedro study``) write
their report into such a block, so the figures in ``docs/`` come from the command that wrote them.
"""

from __future__ import annotations

from pathlib import Path


def markers(name: str) -> tuple[str, str]:
    return f"<!-- {name}:begin -->", f"<!-- {name}:end -->"


def write_block(path: Path, text: str, name: str) -> None:
    """Replace the text of block ``name`` in ``path`` (appending the block if the file has none);
    the file is replaced in one move, never left half-written."""
    begin, end = markers(name)
    document = path.read_text() if path.exists() else ""
    block = f"{begin}\n{text}\n{end}"
    if begin in document and end in document:
        head, rest = document.split(begin, 1)
        document = head + block + rest.split(end, 1)[1]
    else:
        document = document.rstrip("\n") + ("\n\n" if document else "") + block + "\n"
    temporary = path.with_name(f".{path.name}.tmp")
    temporary.write_text(document)
    temporary.replace(path)

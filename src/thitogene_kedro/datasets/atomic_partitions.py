"""A partitioned dataset whose save replaces the whole folder only once every partition is written."""

from __future__ import annotations

import base64
import io
import json
import shutil
from pathlib import Path
from typing import Any

from kedro_datasets._typing import ImagePreview, JSONPreview
from kedro_datasets.partitions import PartitionedDataset
from PIL import Image, ImageDraw


class AtomicPartitionedDataset(PartitionedDataset):
    """``PartitionedDataset`` with ``overwrite: true`` made atomic for local folders.

    The partitions (lazy ones included: the node's work happens during the save) are written into
    a hidden staging folder beside ``path``; only when all are written does it take the place of
    the old folder. A save that fails or is interrupted removes the staging folder and leaves the
    previous partitions as the last good run wrote them. Other filesystems save as the base class.
    """

    _staging: str | None = None  # while saving: the folder partitions are written to

    @property
    def _normalized_path(self) -> str:
        return self._staging or super()._normalized_path

    def save(self, data: dict[str, Any]) -> None:
        if not self._overwrite or self._protocol != "file":
            super().save(data)
            return
        final = Path(self._filesystem._strip_protocol(self._normalized_path))
        staging, retired = final.with_name(f".{final.name}.partial"), final.with_name(f".{final.name}.old")
        shutil.rmtree(staging, ignore_errors=True)
        self._staging = str(staging)
        try:
            super().save(data)
        except BaseException:
            shutil.rmtree(staging, ignore_errors=True)
            raise
        finally:
            self._staging = None
        shutil.rmtree(retired, ignore_errors=True)
        if final.exists():
            final.rename(retired)
        staging.rename(final)
        shutil.rmtree(retired, ignore_errors=True)
        self._invalidate_caches()

    def preview(self, names: int = 20) -> JSONPreview:
        """kedro-viz's preview: how many partitions, their names, and the first one's own preview."""
        loaders = self.load()
        summary: dict[str, Any] = {"partitions": len(loaders), "names": sorted(loaders)[:names]}
        first = getattr(loaders[min(loaders)], "__self__", None)  # the partition's dataset
        if hasattr(first, "preview"):
            found = first.preview()
            summary[f"first ({min(loaders)})"] = json.loads(found) if isinstance(found, str) else found
        return JSONPreview(json.dumps(summary, indent=1, default=str, ensure_ascii=False))


class FigureFolderDataset(AtomicPartitionedDataset):
    """A folder of PNG figures (one per section), saved atomically, previewed in kedro-viz as one
    contact sheet of up to ``12`` of them."""

    def preview(self, limit: int = 12, width: int = 480) -> ImagePreview:  # type: ignore[override]
        loaders = self.load()
        tiles = []
        for name in sorted(loaders)[:limit]:
            image = loaders[name]().convert("RGB")
            image.thumbnail((width, width))
            tiles.append((name, image))
        columns = min(3, len(tiles))
        rows = -(-len(tiles) // columns)
        cell = (width, max(t.height for _, t in tiles) + 18)
        sheet = Image.new("RGB", (columns * cell[0], rows * cell[1]), "white")
        draw = ImageDraw.Draw(sheet)
        for index, (name, tile) in enumerate(tiles):
            x, y = (index % columns) * cell[0], (index // columns) * cell[1]
            draw.text((x + 4, y + 2), name, fill="black")
            sheet.paste(tile, (x, y + 18))
        buffer = io.BytesIO()
        sheet.save(buffer, format="PNG")
        return ImagePreview(base64.b64encode(buffer.getvalue()).decode("utf-8"))

"""A gene list file: one symbol a line (``.txt``) or a NumPy array of symbols (``.npy``)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
from kedro.io import AbstractDataset, DatasetError

from thitogene_kedro.processing.genes import GeneList


class GeneListDataset(AbstractDataset[list[str], list[str] | None]):
    """Loads an ordered gene list (a :class:`GeneList` naming its file); ``filepath: null`` means
    "no list configured" and loads ``None``.

    Accepts the reference code's ``her_hvg_cut_1000.npy`` as well as a text file. Blank lines and
    ``#`` comments are ignored; duplicates are an error.
    """

    def __init__(self, filepath: str | None = None, metadata: dict[str, Any] | None = None):
        self._filepath = Path(filepath) if filepath else None
        self.metadata = metadata

    def load(self) -> list[str] | None:
        if self._filepath is None:
            return None
        if not self._filepath.is_file():
            raise DatasetError(f"{self._filepath}: gene list file does not exist")
        if self._filepath.suffix == ".npy":
            genes = [str(g) for g in np.load(self._filepath, allow_pickle=True).ravel()]
        else:
            lines = self._filepath.read_text().splitlines()
            genes = [line.strip() for line in lines if line.strip() and not line.lstrip().startswith("#")]
        if not genes:
            raise DatasetError(f"{self._filepath}: gene list is empty")
        seen: set[str] = set()
        duplicates = [g for g in genes if g in seen or seen.add(g)]
        if duplicates:
            raise DatasetError(f"{self._filepath}: duplicate genes {duplicates[:5]}")
        return GeneList(genes, source=str(self._filepath))

    def save(self, data: list[str]) -> None:
        if self._filepath is None:
            raise DatasetError("GeneListDataset has no filepath to save to")
        self._filepath.parent.mkdir(parents=True, exist_ok=True)
        self._filepath.write_text("".join(f"{g}\n" for g in data))

    def _exists(self) -> bool:
        return self._filepath is not None and self._filepath.is_file()

    def _describe(self) -> dict[str, Any]:
        return {"filepath": str(self._filepath) if self._filepath else None}

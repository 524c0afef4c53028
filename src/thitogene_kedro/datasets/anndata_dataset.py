"""AnnData ``.h5ad`` files as a versioned Kedro dataset."""

from __future__ import annotations

import json
from typing import Any

import anndata as ad
from kedro.io.core import DatasetError, Version
from kedro_datasets._typing import JSONPreview

from thitogene_kedro.datasets._versioned_file import VersionedFileDataset


class AnnDataDataset(VersionedFileDataset[ad.AnnData, ad.AnnData]):
    """Loads and saves an :class:`anndata.AnnData` as ``.h5ad`` (local files).

    Example catalog entry::

        section:
          type: thitogene_kedro.datasets.AnnDataDataset
          filepath: data/02_intermediate/section.h5ad
    """

    def __init__(
        self,
        filepath: str,
        save_args: dict[str, Any] | None = None,
        version: Version | None = None,
        metadata: dict[str, Any] | None = None,
    ):
        super().__init__(filepath, version, metadata)
        if self._protocol != "file":
            raise DatasetError(f"AnnDataDataset reads local files only, not {self._protocol!r}: {filepath}")
        self._save_args = {"compression": "gzip", **(save_args or {})}

    def load(self) -> ad.AnnData:
        return ad.read_h5ad(self._load_path())

    def save(self, data: ad.AnnData) -> None:
        if not isinstance(data, ad.AnnData):
            raise DatasetError(f"AnnDataDataset expects an AnnData, got {type(data).__name__}")
        with self._writing() as path:
            data.write_h5ad(path, **self._save_args)
        self._invalidate_cache()

    def preview(self, rows: int = 5) -> JSONPreview:
        """kedro-viz's preview: the shape, the first ``rows`` of ``obs`` and ``var``, and what else it holds."""
        adata = ad.read_h5ad(self._load_path(), backed="r")
        try:
            return JSONPreview(json.dumps(anndata_summary(adata, rows), indent=1, default=str, ensure_ascii=False))
        finally:
            adata.file.close()


def anndata_summary(adata: ad.AnnData, rows: int = 5) -> dict[str, Any]:
    """What an AnnData holds, in a few lines: shape, ``obs``/``var`` heads, layers, obsm, uns keys."""
    libraries = adata.uns.get("spatial", {})
    return {
        "shape": f"{adata.n_obs} spots × {adata.n_vars} genes",
        "source": str(adata.uns.get("source", "")),
        "obs": {str(k): {c: str(v) for c, v in row.items()} for k, row in adata.obs.head(rows).iterrows()},
        "var": [str(g) for g in adata.var_names[:rows]]
        + ([f"... {adata.n_vars - rows} more"] if adata.n_vars > rows else []),
        "layers": list(adata.layers.keys()),
        "obsm": list(adata.obsm.keys()),
        "uns": sorted(adata.uns.keys()),
        "spatial libraries": {lib: sorted(found.get("images", {})) for lib, found in libraries.items()},
    }

"""Shared test fixtures: small data written by the tests, and the real her2st copy when present."""

from __future__ import annotations

import contextlib
import os
import shutil
from collections.abc import Iterator
from pathlib import Path

import mlflow
import numpy as np
import pandas as pd
import pytest
from kedro.framework.session import KedroSession
from kedro.framework.startup import bootstrap_project
from PIL import Image

PROJECT_ROOT = Path(__file__).resolve().parents[1]
SHARED_DATA = Path(os.environ.get("THITOGENE_SHARED_DATA", PROJECT_ROOT.parent / "shared" / "data"))
HER2ST_REAL = Path(os.environ.get("HER2ST_DIR", SHARED_DATA / "her2st"))
GENE_LIST_785 = SHARED_DATA / "gene-lists" / "her2st_785_genes.txt"
C3_WINDOW = SHARED_DATA / "fixtures" / "her2st_C3_window"


def make_project_copy(folder: Path) -> Path:
    """Copy conf/ (no conf/local) and pyproject.toml into ``folder``; data/ is written there.

    The package itself is the installed one, so ``src/`` only has to exist.
    """
    shutil.copytree(PROJECT_ROOT / "conf", folder / "conf", ignore=shutil.ignore_patterns("local"))
    (folder / "conf" / "local").mkdir()
    shutil.copy(PROJECT_ROOT / "pyproject.toml", folder)
    (folder / "src").mkdir()
    bootstrap_project(folder)
    return folder


@contextlib.contextmanager
def module_project(tmp_path_factory, name: str) -> Iterator[tuple[Path, str]]:
    """A project folder with its own MLflow store, for one module's tests to share: ``(folder, store)``.

    Inside the block the folder is the working folder and the store the tracking URI (for a run that
    prepares it); tests then take it with :func:`use_module_project`.
    """
    project = make_project_copy(tmp_path_factory.mktemp(name))
    store = f"sqlite:///{tmp_path_factory.mktemp(f'{name}-mlflow') / 'mlflow.db'}"
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("MLFLOW_TRACKING_URI", store)
        patch.setenv("KEDRO_DISABLE_TELEMETRY", "true")
        patch.chdir(project)
        try:
            yield project, store
        finally:
            while mlflow.active_run():
                mlflow.end_run(status="FAILED")


def use_module_project(shared: tuple[Path, str], monkeypatch: pytest.MonkeyPatch) -> Path:
    """Make a :func:`module_project` the working folder and its store the tracking URI for one test."""
    project, store = shared
    monkeypatch.setenv("MLFLOW_TRACKING_URI", store)
    monkeypatch.chdir(project)
    bootstrap_project(project)
    return project


@pytest.fixture
def project_copy(tmp_path, monkeypatch) -> Path:
    """A project folder (:func:`make_project_copy`) as the working folder."""
    monkeypatch.chdir(tmp_path)
    yield make_project_copy(tmp_path)
    while mlflow.active_run():  # a failed session must not leave its run open for the next test
        mlflow.end_run(status="FAILED")


def kedro_session(folder: Path, plan: bool = True, **kwargs) -> KedroSession:
    """A session on ``folder``; ``plan`` first writes the fold plan for its environment and runtime
    parameters, as a user runs ``kedro folds plan`` with the same ``--env``/``--params``."""
    if plan:
        from thitogene_kedro.cli import plan_folds  # noqa: PLC0415

        plan_folds(folder, kwargs.get("env"), kwargs.get("runtime_params") or {})
    return KedroSession.create(project_path=folder, **kwargs)


@pytest.fixture(autouse=True)
def _isolated_mlflow(tmp_path_factory, monkeypatch):
    """No test writes into the user's MLflow store."""
    store = tmp_path_factory.mktemp("mlflow") / "mlflow.db"
    monkeypatch.setenv("MLFLOW_TRACKING_URI", f"sqlite:///{store}")
    monkeypatch.setenv("KEDRO_DISABLE_TELEMETRY", "true")


def write_her2st_section(
    root: Path,
    section: str,
    counts: pd.DataFrame,
    spots: pd.DataFrame,
    image: np.ndarray | None = None,
    labels: pd.DataFrame | None = None,
    image_name: str = "HE.jpg",
) -> Path:
    """Write one section in the almaan/her2st layout under ``root``; returns ``root``."""
    data = root / "data"
    for folder in ("ST-cnts", "ST-spotfiles", "ST-pat/lbl"):
        (data / folder).mkdir(parents=True, exist_ok=True)
    counts.to_csv(data / "ST-cnts" / f"{section}.tsv.gz", sep="\t")
    spots.to_csv(data / "ST-spotfiles" / f"{section}_selection.tsv", sep="\t", index=False)
    if labels is not None:
        labels.to_csv(data / "ST-pat" / "lbl" / f"{section}_labeled_coordinates.tsv", sep="\t", index=False)
    if image is not None:
        folder = data / "ST-imgs" / section[0] / section
        folder.mkdir(parents=True, exist_ok=True)
        Image.fromarray(image).save(folder / image_name, quality=95)
    return root


def toy_section_tables(n_side: int = 4, n_genes: int = 5, pitch: int = 40, seed: int = 0):
    """A small grid section: counts (spots x genes), spot table and a matching RGB image."""
    rng = np.random.default_rng(seed)
    xs, ys = np.meshgrid(np.arange(1, n_side + 1), np.arange(1, n_side + 1))
    xs, ys = xs.ravel(), ys.ravel()
    ids = [f"{x}x{y}" for x, y in zip(xs, ys, strict=True)]
    counts = pd.DataFrame(
        rng.poisson(5, size=(len(ids), n_genes)), index=ids, columns=[f"G{i}" for i in range(n_genes)]
    )
    spots = pd.DataFrame(
        {
            "x": xs,
            "y": ys,
            "new_x": xs + 0.01,
            "new_y": ys - 0.01,
            "pixel_x": xs * pitch + 0.5,
            "pixel_y": ys * pitch + 0.25,
            "selected": 1,
        }
    )
    size = (n_side + 1) * pitch
    image = rng.integers(0, 256, size=(size, size, 3), dtype=np.uint8)
    return counts, spots, image


@pytest.fixture
def toy_her2st(tmp_path) -> Path:
    """A her2st-layout folder with sections A1 (image) and A2 (no image)."""
    counts, spots, image = toy_section_tables()
    write_her2st_section(tmp_path, "A1", counts, spots, image=image, image_name="HE.png")
    counts2, spots2, _ = toy_section_tables(seed=1)
    write_her2st_section(tmp_path, "A2", counts2, spots2)
    return tmp_path


def write_slide(path: Path, image: np.ndarray, compression: str | None, mpp: float, flavour: str = "tiff") -> Path:
    """A small pyramidal, tiled slide of ``image`` as scanners write them (tifffile, imagecodecs).

    ``flavour``: ``svs`` (Aperio description with ``MPP``, levels as following pages), ``ome``
    (OME-XML ``PhysicalSizeX``, levels as sub-IFDs) or ``tiff`` (resolution tags in cm, sub-IFDs).
    """
    import tifffile  # noqa: PLC0415

    levels = [image, image[::2, ::2], image[::4, ::4]]
    tiles = {"tile": (128, 128), "compression": compression, "photometric": "rgb"}
    with tifffile.TiffWriter(path, bigtiff=flavour != "svs", ome=flavour == "ome") as tif:
        if flavour == "svs":
            height, width = image.shape[:2]
            description = (
                f"Aperio Image Library v12.0.15\n{width}x{height} (128x128) JPEG/RGB Q=70|AppMag = 20|MPP = {mpp}"
            )
            tif.write(levels[0], description=description, **tiles)
            for level in levels[1:]:
                tif.write(level, description="", **tiles)
            return path
        options = (
            {"metadata": {"axes": "YXS", "PhysicalSizeX": mpp, "PhysicalSizeXUnit": "µm"}} if flavour == "ome" else {}
        )
        tags = {"resolution": (1e4 / mpp, 1e4 / mpp), "resolutionunit": "CENTIMETER"} if flavour == "tiff" else {}
        tif.write(levels[0], subifds=len(levels) - 1, **tiles, **options, **tags)
        for level in levels[1:]:
            tif.write(level, subfiletype=1, **tiles)
    return path

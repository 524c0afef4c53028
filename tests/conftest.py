"""Shared test fixtures: small data written by the tests, and the real her2st copy when present."""

from __future__ import annotations

import contextlib
import io
import json
import os
import shutil
import warnings
from collections.abc import Iterator
from pathlib import Path

import anndata
import mlflow
import numpy as np
import pandas as pd
import pytest
import yaml
from kedro.framework.session import KedroSession
from kedro.framework.startup import bootstrap_project
from PIL import Image
from scipy import sparse

PROJECT_ROOT = Path(__file__).resolve().parents[1]
SHARED_DATA = Path(os.environ.get("THITOGENE_SHARED_DATA", PROJECT_ROOT.parent / "shared" / "data"))
HER2ST_REAL = Path(os.environ.get("HER2ST_DIR", SHARED_DATA / "her2st"))
GENE_LIST_785 = SHARED_DATA / "gene-lists" / "her2st_785_genes.txt"
C3_WINDOW = SHARED_DATA / "fixtures" / "her2st_C3_window"


_DEMO_RAW_DATA: dict[Path, Path] = {}


def demo_raw_data(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The demo's raw SYNTHETIC data set, as the catalog configures it, drawn once per test process.

    Drawing it takes ~15 s; every project copy gets a copy instead, which the dataset accepts as
    its own (same generator version and configuration in the manifest), so a run does not redraw it.
    """
    base = tmp_path_factory.getbasetemp()
    if base not in _DEMO_RAW_DATA:
        from thitogene_kedro.sections import synthetic  # noqa: PLC0415

        entry = yaml.safe_load((PROJECT_ROOT / "conf" / "base" / "catalog.yml").read_text())["raw_sections"]
        assert entry["source"] == "synthetic", entry
        root = tmp_path_factory.mktemp("demo-raw-data") / "synthetic"
        _DEMO_RAW_DATA[base] = synthetic.generate(root, synthetic.SyntheticConfig(**entry["options"]))
    return _DEMO_RAW_DATA[base]


def make_project_copy(folder: Path, raw_data: Path | None = None) -> Path:
    """Copy conf/ (no conf/local) and pyproject.toml into ``folder``; data/ is written there.

    ``raw_data``: the demo's raw data (:func:`demo_raw_data`), copied to ``data/01_raw/synthetic``.
    The package itself is the installed one, so ``src/`` only has to exist.
    """
    if raw_data is not None:
        shutil.copytree(raw_data, folder / "data" / "01_raw" / "synthetic")
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
    project = make_project_copy(tmp_path_factory.mktemp(name), demo_raw_data(tmp_path_factory))
    store = f"sqlite:///{empty_mlflow_store(tmp_path_factory, f'{name}-mlflow')}"
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
def project_copy(tmp_path, tmp_path_factory, monkeypatch) -> Path:
    """A project folder (:func:`make_project_copy`, with the demo's raw data) as the working folder."""
    monkeypatch.chdir(tmp_path)
    yield make_project_copy(tmp_path, demo_raw_data(tmp_path_factory))
    while mlflow.active_run():  # a failed session must not leave its run open for the next test
        mlflow.end_run(status="FAILED")


def assert_scanpy_and_squidpy_draw_it_over_the_tissue(adata: anndata.AnnData, color: str | None = None) -> None:
    """``sc.pl.spatial`` and ``sq.pl.spatial_scatter``, with no layout arguments, draw the spots
    (coloured by ``color``, default the first gene) over the slide's hires image."""
    import matplotlib  # noqa: PLC0415

    matplotlib.use("Agg")
    import scanpy as sc  # noqa: PLC0415

    with warnings.catch_warnings():
        warnings.simplefilter("ignore", SyntaxWarning)  # docrep's, on importing squidpy
        import squidpy as sq  # noqa: PLC0415

    (library,) = adata.uns["spatial"]
    images, scalefactors = adata.uns["spatial"][library]["images"], adata.uns["spatial"][library]["scalefactors"]
    assert max(images["hires"].shape[:2]) <= 2000 and max(images["lowres"].shape[:2]) <= 600
    assert images["hires"].dtype == np.uint8 and scalefactors["spot_diameter_fullres"] > 0
    assert adata.uns["source"] and {"in_tissue", "array_row", "array_col"} <= set(adata.obs.columns)
    color = color or adata.var_names[0]
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", FutureWarning)  # scanpy 1.11 points to squidpy.pl.spatial_scatter
        axes = sc.pl.spatial(adata, color=color, show=False)
    assert axes[0].images[0].get_array().shape[:2] == images["hires"].shape[:2]  # the tissue is under the spots
    axis = sq.pl.spatial_scatter(adata, color=color, return_ax=True)
    drawn = axis.images[0].get_array()
    assert drawn.ndim == 3 and drawn.shape[0] > 50 and float(np.asarray(drawn).std()) > 1  # an image, not a blank
    assert len(axis.collections) >= 1  # the spots
    matplotlib.pyplot.close("all")


def kedro_session(folder: Path, plan: bool = True, **kwargs) -> KedroSession:
    """A session on ``folder``; ``plan`` first writes the fold plan for its environment and runtime
    parameters, as a user runs ``kedro folds plan`` with the same ``--env``/``--params``."""
    if plan:
        from thitogene_kedro.cli import plan_folds  # noqa: PLC0415

        plan_folds(folder, kwargs.get("env"), kwargs.get("runtime_params") or {})
    return KedroSession.create(project_path=folder, **kwargs)


_EMPTY_STORES: dict[Path, Path] = {}


def empty_mlflow_store(tmp_path_factory: pytest.TempPathFactory, name: str = "mlflow") -> Path:
    """A new, empty SQLite MLflow store: a copy of one MLflow created (and migrated) once per test
    process, so each store does not replay the schema migrations (about 1.6 s each)."""
    base = tmp_path_factory.getbasetemp()
    if base not in _EMPTY_STORES:
        template = tmp_path_factory.mktemp("mlflow-template") / "mlflow.db"
        mlflow.MlflowClient(tracking_uri=f"sqlite:///{template}").search_experiments()  # creates and migrates it
        _EMPTY_STORES[base] = template
    store = tmp_path_factory.mktemp(name) / "mlflow.db"
    shutil.copy(_EMPTY_STORES[base], store)
    return store


@pytest.fixture(autouse=True)
def _isolated_mlflow(tmp_path_factory, monkeypatch):
    """No test writes into the user's MLflow store."""
    monkeypatch.setenv("MLFLOW_TRACKING_URI", f"sqlite:///{empty_mlflow_store(tmp_path_factory)}")
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


def _jpeg_with_restart_markers(image: np.ndarray, blocks: int) -> tuple[bytes, list[int]]:
    """``image`` as a baseline JPEG with a restart marker every ``blocks`` MCUs, and the offsets at
    which each restart interval's entropy-coded data begins (NDPI's ``McuStarts``)."""
    buffer = io.BytesIO()
    Image.fromarray(image).save(buffer, format="JPEG", quality=90, subsampling="4:2:0", restart_marker_blocks=blocks)
    jpeg = buffer.getvalue()
    at = 2
    while int.from_bytes(jpeg[at : at + 2], "big") != 0xFFDA:  # walk the marker segments to start-of-scan
        at += 2 + int.from_bytes(jpeg[at + 2 : at + 4], "big")
    starts = [at + 2 + int.from_bytes(jpeg[at + 2 : at + 4], "big")]
    starts += [i + 2 for i in range(starts[0], len(jpeg) - 1) if jpeg[i] == 0xFF and 0xD0 <= jpeg[i + 1] <= 0xD7]
    return jpeg, starts


def write_ndpi(path: Path, image: np.ndarray, mpp: float, tile_width: int = 256, mcu_starts: bool = True) -> Path:
    """A Hamamatsu NDPI file as the scanners write it: a classic little-endian TIFF with 64-bit IFD
    offsets (the NDPI extension: an 8-byte first-IFD offset and next-IFD offset, and four high bytes
    per tag after the entries), level 0 as one JPEG stream with restart markers every ``tile_width``
    pixels and their offsets in ``McuStarts`` (65426), the resolution in pixels per cm, ``Make``
    Hamamatsu and the NDPI format tag (65420); ``mcu_starts=False`` leaves that tag out, as some
    files do. Width and height must be multiples of 16 and ``tile_width``. Written by hand: no
    library writes NDPI."""
    import struct  # noqa: PLC0415

    height, width = image.shape[:2]
    jpeg, starts = _jpeg_with_restart_markers(image, blocks=tile_width // 16)
    out = bytearray(b"II" + struct.pack("<HQ", 42, 0))
    strip = len(out)
    out += jpeg

    def block(data: bytes) -> int:
        out.extend(b"\0" * (len(out) % 2))
        out.extend(data)
        return len(out) - len(data)

    per_cm = round(1e4 / mpp * 1000)
    rational = struct.pack("<II", per_cm, 1000)
    tags = [  # code, type (3 SHORT, 4 LONG, 2 ASCII, 5 RATIONAL, 9 SLONG, 11 FLOAT), count, value or offset
        (256, 4, 1, width), (257, 4, 1, height), (258, 3, 3, block(struct.pack("<3H", 8, 8, 8))),
        (259, 3, 1, 7), (262, 3, 1, 6), (271, 2, 10, block(b"Hamamatsu\0")), (273, 4, 1, strip),
        (277, 3, 1, 3), (278, 4, 1, height), (279, 4, 1, len(jpeg)), (282, 5, 1, block(rational)),
        (283, 5, 1, block(rational)), (296, 3, 1, 3), (65420, 4, 1, 1),
        (65421, 11, 1, struct.unpack("<I", struct.pack("<f", 20.0))[0]),  # source lens (magnification)
        (65422, 9, 1, 0), (65423, 9, 1, 0), (65424, 9, 1, 0),  # x, y, z offset from the slide centre (nm)
        (65426, 4, len(starts), block(struct.pack(f"<{len(starts)}I", *starts))),
    ][: None if mcu_starts else -1]  # fmt: skip
    ifd = block(struct.pack("<H", len(tags)))
    for code, kind, count, value in tags:
        out += struct.pack("<HHI", code, kind, count) + struct.pack("<I" if kind != 3 or count > 1 else "<HH", *(
            (value,) if kind != 3 or count > 1 else (value, 0)))  # fmt: skip
    out += struct.pack("<Q", 0) + b"\0" * (4 * len(tags))  # no next IFD; the tags' high bytes are all zero
    out[4:12] = struct.pack("<Q", ifd)
    path.write_bytes(bytes(out))
    return path


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
            tif.write(levels[0], description=description, metadata=None, **tiles)  # one description, as Aperio's
            for level in levels[1:]:
                tif.write(level, description="", metadata=None, **tiles)
            return path
        options = (
            {"metadata": {"axes": "YXS", "PhysicalSizeX": mpp, "PhysicalSizeXUnit": "µm"}} if flavour == "ome" else {}
        )
        tags = {"resolution": (1e4 / mpp, 1e4 / mpp), "resolutionunit": "CENTIMETER"} if flavour == "tiff" else {}
        tif.write(levels[0], subifds=len(levels) - 1, **tiles, **options, **tags)
        for level in levels[1:]:
            tif.write(level, subfiletype=1, **tiles)
    return path


def write_hest_sample(  # noqa: PLR0913 - the sample's facts, keyword-only
    root: Path,
    sample: str,
    counts: pd.DataFrame,
    spots: pd.DataFrame,
    image: np.ndarray | None,
    *,
    patient: str,
    mpp: float,
    outside_spot: bool = True,
) -> Path:
    """One HEST-1k sample in its published layout under ``root``, from a her2st section's counts
    (spots ``"{x}x{y}"``), spot table and image: ``st/`` (zero-padded ``"{x:03}x{y:03}"`` barcodes,
    raw counts, HEST's ``uns['spatial']['ST']``), ``wsis/`` (a pyramidal, tiled BigTIFF, lossless),
    ``metadata/`` (with a wrong embedded pixel size, as some samples have) and ``patches/``
    (224 px at 0.5 µm/px, top-left corners). ``outside_spot`` adds one spot with ``in_tissue == 0``."""
    import h5py  # noqa: PLC0415

    table = spots.assign(spot=spots["x"].astype(int).astype(str) + "x" + spots["y"].astype(int).astype(str))
    table = table.set_index("spot").loc[counts.index]
    barcodes = [f"{int(x):03d}x{int(y):03d}" for x, y in zip(table["x"], table["y"], strict=True)]
    obs = pd.DataFrame({"in_tissue": 1, "array_row": table["y"].astype(int).to_numpy(),
                        "array_col": table["x"].astype(int).to_numpy(),
                        "pxl_col_in_fullres": table["pixel_x"].to_numpy(), "pxl_row_in_fullres": table["pixel_y"].to_numpy()},
                       index=pd.Index(barcodes))  # fmt: skip
    matrix = counts.to_numpy(dtype=np.float32)
    if outside_spot:
        obs.loc["999x999"] = [0, 999, 999, 1.0, 1.0]
        matrix = np.vstack([matrix, np.ones((1, matrix.shape[1]), np.float32)])
    st = anndata.AnnData(X=sparse.csr_matrix(matrix), obs=obs, var=pd.DataFrame(index=counts.columns.astype(str)))
    st.obsm["spatial"] = obs[["pxl_col_in_fullres", "pxl_row_in_fullres"]].to_numpy(dtype=np.float64)
    for folder in ("st", "wsis", "metadata", "patches"):
        (root / folder).mkdir(parents=True, exist_ok=True)
    if image is not None:
        shrink = min(1.0, 1000 / max(image.shape[:2]))
        small = np.asarray(
            Image.fromarray(image).resize((round(image.shape[1] * shrink), round(image.shape[0] * shrink)))
        )
        st.uns["spatial"] = {"ST": {"images": {"downscaled_fullres": small}, "scalefactors": {
            "tissue_downscaled_fullres_scalef": shrink, "spot_diameter_fullres": 100 / mpp}}}  # fmt: skip
        write_slide(root / "wsis" / f"{sample}.tif", image, "zlib", mpp)
        source_px = round(224 * 0.5 / mpp)
        inside = obs["in_tissue"].to_numpy() == 1
        centres = st.obsm["spatial"][inside]
        corners = np.floor(centres - source_px / 2).astype(np.int64)
        padded = np.pad(image, ((source_px, source_px), (source_px, source_px), (0, 0)), constant_values=255)
        crops = [padded[y + source_px : y + 2 * source_px, x + source_px : x + 2 * source_px] for x, y in corners]
        img = np.stack([np.asarray(Image.fromarray(c).resize((224, 224), Image.Resampling.BILINEAR)) for c in crops])
        with h5py.File(root / "patches" / f"{sample}.h5", "w") as handle:
            handle["img"] = img
            handle["img"].attrs.update({"patch_size_src": source_px, "patch_size_target": 224, "pixel_size": mpp})
            handle["coords"] = corners
            handle["barcode"] = np.asarray([[b.encode()] for b in obs.index[inside]])
    st.write_h5ad(root / "st" / f"{sample}.h5ad")
    metadata = {"id": sample, "dataset_title": "her2st, rewritten in the HEST-1k layout", "patient": patient,
                "st_technology": "Spatial Transcriptomics", "spot_diameter": 100.0, "inter_spot_dist": 200.0,
                "pixel_size_um_estimated": mpp, "pixel_size_um_embedded": 1.0, "organ": "Breast",
                "species": "Homo sapiens", "license": "CC BY 4.0"}  # fmt: skip
    (root / "metadata" / f"{sample}.json").write_text(json.dumps(metadata))
    return root


# Files whose tests take minutes (clean-clone CI durations on 2 cores), heaviest first. `make test`
# hands whole files to two workers in collection order (`--dist loadfile`); starting with these lets
# the short files fill in around them, so both workers finish together.
HEAVY_FILES = (
    "tests/test_run.py",
    "tests/test_cli.py",
    "tests/pipelines/training/test_pipeline.py",
    "tests/test_study.py",
    "tests/deploy/test_slurm_fanout.py",
    "tests/pipelines/inference/test_pipeline.py",
    "tests/test_bench.py",
    "tests/test_cli_errors.py",
    "tests/integration/test_her2st_real.py",
)


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """Collect the :data:`HEAVY_FILES` first (in that order), the rest as they come."""
    rank = {name: i for i, name in enumerate(HEAVY_FILES)}

    def key(item: pytest.Item) -> int:
        return rank.get(Path(item.path).relative_to(PROJECT_ROOT).as_posix(), len(rank))

    items.sort(key=key)  # stable: tests keep their order within a file and among the rest

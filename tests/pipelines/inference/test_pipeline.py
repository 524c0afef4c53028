"""The inference pipeline and the REST-served model, after a short training run on the synthetic demo."""

from __future__ import annotations

import base64
import json
import os
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import anndata as ad
import mlflow
import numpy as np
import pytest
from kedro.io import DatasetError
from PIL import Image

from tests.conftest import (
    C3_WINDOW,
    assert_scanpy_and_squidpy_draw_it_over_the_tissue,
    kedro_session,
    module_project,
    use_module_project,
    write_ndpi,
    write_slide,
)
from thitogene_kedro.errors import ProjectError
from thitogene_kedro.sections.schema import SectionDataError

pytestmark = pytest.mark.integration

FAST = {"training": {"epochs": 2, "cv": {"folds": ["SYN_A1"]}}}


@pytest.fixture(scope="module")
def trained_once(tmp_path_factory) -> Iterator[tuple[Path, str]]:
    """One short training run for the module's tests."""
    with module_project(tmp_path_factory, "trained") as (project, store):
        with kedro_session(project, runtime_params=FAST) as session:
            session.run(pipeline_names=["training"])
        yield project, store


@pytest.fixture
def trained(trained_once, monkeypatch) -> Path:
    return use_module_project(trained_once, monkeypatch)


def test_given_spots_reproduce_the_model_on_the_training_data_path(trained):
    data = trained / "data"
    spots = data / "01_raw" / "synthetic" / "data" / "ST-spotfiles" / "SYN_A1_selection.tsv"
    with kedro_session(trained, runtime_params={"inference": {"spots": str(spots)}}) as session:
        session.run(pipeline_names=["inference"])
    predicted = ad.read_h5ad(data / "07_model_output" / "inference" / "predictions.h5ad")
    assert predicted.uns["model"]["name"] == "synthetic_thitogene" and predicted.uns["model"]["version"] == "1"
    assert predicted.uns["slide"]["spots_from"] == "table" and predicted.obsm["spatial"].shape == (predicted.n_obs, 2)
    assert_scanpy_and_squidpy_draw_it_over_the_tissue(predicted)

    # the same spots through the data pipelines' patches and graph, straight into the registered model
    patches = np.load(data / "04_feature" / "patches" / "SYN_A1.npz")["patches"]
    graph = np.load(data / "04_feature" / "spot_graphs" / "SYN_A1.npz")
    model = mlflow.pyfunc.load_model("models:/synthetic_thitogene@champion")
    request = {"patches": patches, "positions": graph["positions"], "edge_index": graph["edge_index"]}
    direct = model.predict(request)  # clamped at 0, as served
    raw = model.predict(request | {"clamp_at_zero": False})
    direct.index = graph["spot_ids"]
    assert set(direct.index) == set(predicted.obs_names)  # spot ids "{x}x{y}" join to the measured counts
    # the same values, clamped at 0 in the pipeline as by the registered model (uns['prediction'] counts them)
    np.testing.assert_allclose(predicted[direct.index].X, direct.to_numpy(), rtol=1e-5, atol=1e-5)
    np.testing.assert_array_equal(direct.to_numpy(), np.maximum(raw.to_numpy(), 0))
    assert predicted.uns["prediction"]["n_clamped"] == int((raw.to_numpy() < 0).sum())
    assert (data / "08_reporting" / "inference" / "predicted_genes.png").stat().st_size > 10_000
    assert predicted.uns["prediction"]["values"] == "log-normalised expression, clamped at 0"
    assert (predicted.X >= 0).all()
    run = mlflow.search_runs(experiment_names=["thitogene_kedro"], output_format="list", order_by=["start_time DESC"])[
        0
    ]
    logged = {a.path for a in mlflow.MlflowClient().list_artifacts(run.info.run_id, "inference")}
    assert {
        "inference/predicted_genes.png",
        "inference/predictions.h5ad",
    } <= logged  # one level, not inference/inference

    with kedro_session(trained, runtime_params={"inference": {"mpp": 1.6667}}) as session:  # a grid over the tissue
        session.run(pipeline_names=["inference"])
    grid = ad.read_h5ad(data / "07_model_output" / "inference" / "predictions.h5ad")
    assert grid.uns["slide"]["spots_from"] == "grid" and 100 < grid.n_obs < 200 and np.isfinite(grid.X).all()

    # a failed run leaves no earlier prediction that passes for its own
    with kedro_session(trained, runtime_params={"inference": {"spots": str(trained / "no_such.csv")}}) as session:
        with pytest.raises(DatasetError, match="no_such.csv"):
            session.run(pipeline_names=["inference"])
    output = data / "07_model_output" / "inference"
    assert not (output / "predictions.h5ad").exists() and (output / "predictions.stale.h5ad").is_file()
    assert not (data / "08_reporting" / "inference").exists() and (data / "08_reporting" / "inference.stale").is_dir()


def test_inference_cuts_patches_the_way_the_model_was_trained(project_copy):
    """Trained under non-default patching (transposed crops, black padding), the model is applied to a
    slide with those settings although the run's own ``patching`` parameters are the defaults."""
    patching = {"patching": {"orientation": "reference_transposed", "pad_value": 0}}
    with kedro_session(project_copy, runtime_params={**FAST, **patching}) as session:
        session.run(pipeline_names=["training"])
    data = project_copy / "data"
    spots = data / "01_raw" / "synthetic" / "data" / "ST-spotfiles" / "SYN_A1_selection.tsv"
    with kedro_session(project_copy, plan=False, runtime_params={"inference": {"spots": str(spots)}}) as session:
        session.run(pipeline_names=["inference"])
    predicted = ad.read_h5ad(data / "07_model_output" / "inference" / "predictions.h5ad")
    model = mlflow.pyfunc.load_model("models:/synthetic_thitogene@champion")
    trained = model.unwrap_python_model().trained
    assert trained.inputs.patching.orientation == "reference_transposed" and trained.inputs.patching.pad_value == 0
    graph = np.load(data / "04_feature" / "spot_graphs" / "SYN_A1.npz")
    stored = np.load(data / "04_feature" / "patches" / "SYN_A1.npz")["patches"]  # cut transposed by patching
    direct = model.predict({"patches": stored, "positions": graph["positions"], "edge_index": graph["edge_index"]})
    np.testing.assert_allclose(predicted[list(graph["spot_ids"])].X, direct.to_numpy(), rtol=1e-5, atol=1e-5)
    standard = model.predict(
        {"patches": np.ascontiguousarray(stored.transpose(0, 2, 1, 3)), "positions": graph["positions"],
         "edge_index": graph["edge_index"]}
    )  # fmt: skip
    assert not np.allclose(predicted[list(graph["spot_ids"])].X, standard.to_numpy(), atol=1e-5)


def test_bad_inputs_are_named(trained):
    not_an_image = trained / "slide.png"
    not_an_image.write_text("this is not an image")
    with kedro_session(trained, runtime_params={"inference": {"image": str(not_an_image)}}) as session:
        with pytest.raises(DatasetError, match="slide.png"):
            session.run(pipeline_names=["inference"])
    far = trained / "far.csv"
    far.write_text("spot_id,pixel_x,pixel_y\na,10,10\nb,99999,10\n")
    with kedro_session(trained, runtime_params={"inference": {"spots": str(far)}}) as session:
        with pytest.raises(SectionDataError, match="outside the"):
            session.run(pipeline_names=["inference"])
    with kedro_session(trained, runtime_params={"inference": {"model": "models:/no_such_model@champion"}}) as session:
        with pytest.raises(DatasetError, match="no_such_model"):
            session.run(pipeline_names=["inference"])


@pytest.mark.skipif(not C3_WINDOW.is_dir(), reason="real C3 fixture (../shared/data) not present")
def test_a_synthetic_model_and_an_unknown_resolution_are_refused_on_a_real_slide(trained):
    real = {"image": str(C3_WINDOW / "C3_window.jpg")}
    with kedro_session(trained, runtime_params={"inference": real}) as session:
        with pytest.raises(
            ProjectError, match=r"C3_window.jpg: model synthetic_thitogene v1 was trained on the SYNTHETIC"
        ):
            session.run(pipeline_names=["inference"])
    # allowed anyway: the grid still needs a resolution the JPEG does not give (its 72 dpi is not a scan's)
    allowed = {**real, "allow_synthetic_model": True}
    with kedro_session(trained, runtime_params={"inference": allowed}) as session:
        with pytest.raises(ProjectError, match=r"a spot grid needs the slide's resolution .* set inference.mpp"):
            session.run(pipeline_names=["inference"])


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_registered_model_serves_predictions_over_rest(trained):
    port = _free_port()
    bin_dir = Path(sys.executable).parent
    env = {**os.environ, "PATH": f"{bin_dir}{os.pathsep}{os.environ['PATH']}"}
    server = subprocess.Popen(
        [str(bin_dir / "mlflow"), "models", "serve", "-m", "models:/synthetic_thitogene@champion",
         "--env-manager", "local", "-h", "127.0.0.1", "-p", str(port)],
        cwd=trained, env=env, start_new_session=True, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
    )  # fmt: skip
    try:
        deadline = time.time() + 180
        while True:
            try:
                if urllib.request.urlopen(f"http://127.0.0.1:{port}/ping", timeout=2).status == 200:
                    break
            except OSError:
                pass
            if server.poll() is not None or time.time() > deadline:
                pytest.fail(
                    f"model server did not start: {server.stderr.read().decode()[-2000:] if server.poll() is not None else 'timeout'}"
                )
            time.sleep(0.5)
        patches = np.load(trained / "data" / "04_feature" / "patches" / "SYN_B1.npz")["patches"][:8]
        positions = np.load(trained / "data" / "04_feature" / "spot_graphs" / "SYN_B1.npz")["positions"][:8]
        body = json.dumps({"inputs": {"patches": patches.tolist(), "positions": positions.tolist()}}).encode()

        def request_for(payload: bytes) -> urllib.request.Request:
            return urllib.request.Request(
                f"http://127.0.0.1:{port}/invocations", data=payload, headers={"Content-Type": "application/json"}
            )

        answer = json.loads(urllib.request.urlopen(request_for(body), timeout=60).read())["predictions"]
        expected = mlflow.pyfunc.load_model("models:/synthetic_thitogene@champion").predict(
            {"patches": patches, "positions": positions}
        )
        assert len(answer) == 8 and list(answer[0]) == list(expected.columns)
        np.testing.assert_allclose(
            [[row[g] for g in expected.columns] for row in answer], expected.to_numpy(), rtol=1e-5, atol=1e-5
        )
        # compact: the raw uint8 bytes in base64, a third of the JSON integers' size
        compact = {"patches_b64": base64.b64encode(patches.tobytes()).decode(), "patches_shape": list(patches.shape),
                   "positions": positions.tolist()}  # fmt: skip
        small = json.dumps({"inputs": compact}).encode()
        assert len(small) < len(body) / 2.5
        answer = json.loads(urllib.request.urlopen(request_for(small), timeout=60).read())["predictions"]
        np.testing.assert_allclose(
            [[row[g] for g in expected.columns] for row in answer], expected.to_numpy(), rtol=1e-5, atol=1e-5
        )
        # input the model cannot take: HTTP 400, the message says what is wrong, no stack trace
        wrong = json.dumps({"inputs": {"patches": patches[:, :50, :, 0].tolist(), "positions": positions.tolist()}})
        with pytest.raises(urllib.error.HTTPError) as refused:
            urllib.request.urlopen(request_for(wrong.encode()), timeout=60)
        error = json.loads(refused.value.read())
        assert refused.value.code == 400 and "stack_trace" not in error
        assert error["message"] == "the model expects 112×112 RGB patches, (N, 112, 112, 3), got (8, 50, 112)"
    finally:
        os.killpg(server.pid, signal.SIGTERM)
        server.wait(timeout=30)


@pytest.mark.skipif(not C3_WINDOW.is_dir(), reason="real C3 fixture (../shared/data) not present")
@pytest.mark.parametrize("scanner", ["aperio_svs", "hamamatsu_ndpi"])
def test_scanner_slides_are_predicted_at_the_resolution_they_record(trained, tmp_path, scanner):
    """Real tissue as a JPEG-tiled Aperio SVS (µm/px in its description) and as a Hamamatsu NDPI (one
    JPEG stream read by restart interval, µm/px in its resolution tags), through the pipeline."""
    with Image.open(C3_WINDOW / "C3_window.jpg") as image:
        tissue = np.asarray(image.convert("RGB"))
    if scanner == "aperio_svs":
        slide = write_slide(tmp_path / "C3_window.svs", tissue, "jpeg", 0.687, "svs")
    else:
        slide = write_ndpi(tmp_path / "C3_window.ndpi", tissue[:2304, :2176].copy(), 0.687, tile_width=128)
    params = {"inference": {"image": str(slide), "allow_synthetic_model": True}}  # the demo model, on purpose
    with kedro_session(trained, runtime_params=params) as session:
        session.run(pipeline_names=["inference"])
    predicted = ad.read_h5ad(trained / "data" / "07_model_output" / "inference" / "predictions.h5ad")
    assert predicted.uns["slide"]["mpp"] == pytest.approx(0.687) and predicted.uns["slide"]["spots_from"] == "grid"
    assert predicted.uns["slide"]["patch_px"] == round(112 * 1.6667 / 0.687)
    assert predicted.n_obs > 10 and np.isfinite(predicted.X).all()
    assert_scanpy_and_squidpy_draw_it_over_the_tissue(predicted)

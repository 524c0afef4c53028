"""Kedro sessions of the real project configuration, in a temporary copy of the project folder."""

from __future__ import annotations

import json
import os
import random
import shutil
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import anndata
import mlflow
import numpy as np
import pandas as pd
import pytest

from tests.conftest import (
    PROJECT_ROOT,
    assert_scanpy_and_squidpy_draw_it_over_the_tissue,
    kedro_session,
    module_project,
    use_module_project,
)

pytestmark = pytest.mark.integration

HELD_OUT = ["SYN_A1", "SYN_B1"]  # one section of each synthetic patient


@pytest.fixture(scope="module")
def default_run(tmp_path_factory):
    """``kedro run`` with the shipped defaults (model, 60 epochs, data, evaluation, clustering, report)
    on two of the demo's four folds, one per patient, and the final model: the suite's largest cost
    (two more folds would add 40 % to it and test nothing new; `make run` trains all four)."""
    _start_chromium_install()
    with module_project(tmp_path_factory, "default-run") as shared:
        with kedro_session(shared[0], runtime_params={"training": {"cv": {"folds": HELD_OUT}}}) as session:
            session.run()
        yield shared


def test_default_run_on_synthetic_demo(default_run, monkeypatch):
    """The default run's outputs: data, folds, scores, figures, the report and what scanpy reads."""
    project_copy = use_module_project(default_run, monkeypatch)
    data = project_copy / "data"
    all_sections = sorted(p.stem for p in (data / "03_primary" / "sections").glob("*.h5ad"))
    assert all_sections == ["SYN_A1", "SYN_A2", "SYN_B1", "SYN_B2"]
    sections = HELD_OUT
    assert sorted(p.stem for p in (data / "04_feature" / "patches").glob("*.npz")) == all_sections
    assert sorted(p.stem for p in (data / "04_feature" / "spot_graphs").glob("*.npz")) == all_sections
    stored = np.load(data / "04_feature" / "patches" / "SYN_A1.npz")
    patches = stored["patches"]
    graph = np.load(data / "04_feature" / "spot_graphs" / "SYN_A1.npz")
    assert stored["spot_ids"].tolist() == graph["spot_ids"].tolist()  # joined by id in training
    assert patches.dtype == np.uint8 and patches.shape[1:] == (112, 112, 3)
    report = pd.read_csv(data / "08_reporting" / "preprocessing_report.csv")
    assert (report["source"] == "synthetic").all()
    runs = mlflow.search_runs(experiment_names=["thitogene_kedro"])
    assert len(runs) == 1 and runs["status"].iloc[0] == "FINISHED"
    assert runs["tags.mlflow.runName"].iloc[0] == "local·__default__"
    cv = pd.read_csv(data / "08_reporting" / "cv_summary.csv")
    assert sorted(cv["section"]) == sections
    # Held-out PCC well above chance (0): the synthetic expression follows the image.
    assert cv["pcc_mean"].mean() > 0.2, cv
    assert runs["metrics.cv.pcc_mean_over_sections"].iloc[0] == pytest.approx(cv["pcc_mean"].mean())
    # evaluation, clustering, figures and the report
    summary = pd.read_csv(data / "08_reporting" / "evaluation" / "summary.csv").set_index("score")
    assert summary.loc["pcc_mean", "mean"] == pytest.approx(cv["pcc_mean"].mean())
    clustering = pd.read_csv(data / "08_reporting" / "clustering" / "scores.csv").set_index(["section", "source"])
    assert clustering.xs("observed", level="source")["ari"].notna().all()  # every section's own counts
    predicted = clustering.xs("predicted", level="source")
    assert predicted.loc[sections, "ari"].notna().all()
    unpredicted = sorted(set(all_sections) - set(sections))
    assert predicted.loc[unpredicted, "ari"].isna().all() and predicted.loc[unpredicted, "note"].str.startswith(
        "no held-out prediction").all()  # fmt: skip
    figures = data / "08_reporting" / "figures"
    pngs = [figures / f"{n}.png" for n in ("pcc_boxplot", "model_bars", "training_curves")]
    pngs += [figures / "spatial_maps" / f"{s}_top_genes.png" for s in sections]
    pngs += [figures / "cluster_maps" / f"{s}_clusters.png" for s in all_sections]
    assert all(p.stat().st_size > 10_000 for p in pngs)
    report = (data / "08_reporting" / "report.html").read_text()
    assert report.count("<img") == len(pngs) and "Held-out sections" in report
    artifacts = {a.path for a in mlflow.MlflowClient().list_artifacts(runs["run_id"].iloc[0], "figures")}
    assert {"figures/pcc_boxplot.png", "figures/spatial_maps", "figures/cluster_maps"} <= artifacts


def test_the_default_runs_report_and_anndata_outputs_carry_their_provenance(default_run, monkeypatch):
    """The report says the data are synthetic and names the run, code and data; the held-out
    predictions and clustered sections open in scanpy and squidpy over the tissue."""
    data = use_module_project(default_run, monkeypatch) / "data"
    runs = mlflow.search_runs(experiment_names=["thitogene_kedro"])
    report = (data / "08_reporting" / "report.html").read_text()
    # the report: synthetic said in the title, the provenance, every gene in a table a user can filter
    run_id = runs["run_id"].iloc[0]
    assert (
        "on the SYNTHETIC demo</h1>" in report and f"local·__default__ ({run_id})" in report and "git commit" in report
    )
    assert f"/#/experiments/{runs['experiment_id'].iloc[0]}/runs/{run_id}" in report
    genes = pd.read_csv(data / "08_reporting" / "evaluation" / "genes.csv")
    assert 'class="filter"' in report and report.count("<tr>") >= len(genes)
    assert "(empty: no earlier finished run of this MLflow experiment" in report  # the first run: nothing to compare
    # held-out predictions and clustered sections open in scanpy and squidpy over the tissue
    held_out = anndata.read_h5ad(data / "07_model_output" / "fold_SYN_A1" / "test_predictions.h5ad")
    assert held_out.uns["provenance"]["mlflow"]["run_id"] == run_id
    assert held_out.uns["provenance"]["model"]["fold"] == "fold_SYN_A1"
    clustered = anndata.read_h5ad(data / "08_reporting" / "clustering" / "sections" / "SYN_A1.h5ad")
    assert_scanpy_and_squidpy_draw_it_over_the_tissue(clustered, color="predicted_clusters")
    colours = {k: dict(zip(clustered.obs[k].cat.categories, clustered.uns[f"{k}_colors"], strict=True))
               for k in ("annotation", "predicted_clusters")}  # fmt: skip
    assert all(colours["predicted_clusters"][c] == colour for c, colour in colours["annotation"].items())


_CHROMIUM_INSTALL: list[subprocess.Popen] = []


def _start_chromium_install() -> None:
    """Debian's headless Chromium, installed with apt-get as root where absent (the SLURM test's
    way), in the background while the default run trains, so the install costs the suite no time."""
    if shutil.which("chromium") or os.geteuid() != 0 or shutil.which("apt-get") is None:
        return
    env = {**os.environ, "DEBIAN_FRONTEND": "noninteractive"}
    command = "apt-get update -qq && apt-get install -y -qq chromium"
    _CHROMIUM_INSTALL.append(
        subprocess.Popen(["bash", "-c", command], env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    )


def _chromium() -> str | None:
    """The Chromium the install above left (waiting for it), or one already on PATH."""
    for install in _CHROMIUM_INSTALL:
        install.wait(timeout=900)
    return shutil.which("chromium")


def _free_port() -> int:
    """A free port below 49152 (kedro-viz refuses the ephemeral range the OS hands out for port 0)."""
    for port in random.Random(os.getpid()).sample(range(20000, 40000), 50):
        with socket.socket() as probe:
            if probe.connect_ex(("127.0.0.1", port)) != 0:
                return port
    raise RuntimeError("no free port between 20000 and 40000")


def test_kedro_viz_in_a_headless_browser_shows_pipelines_a_fold_and_previews(default_run, monkeypatch, tmp_path):
    """``kedro viz run`` on the default run's project, opened in headless Chromium: the pipelines,
    a fold namespace, an image preview of a figure folder; the catalog layers, namespaces, AnnData
    previews and shapes in its API (checked first, also where no browser can be had)."""
    project = use_module_project(default_run, monkeypatch)
    port = _free_port()
    kedro = Path(sys.executable).with_name("kedro")
    env = {**os.environ, "KEDRO_DISABLE_TELEMETRY": "true"}
    log = (tmp_path / "viz.log").open("w")
    server = subprocess.Popen(
        [str(kedro), "viz", "run", "--no-browser", "--host", "127.0.0.1", "--port", str(port)],
        cwd=project, env=env, stdin=subprocess.DEVNULL, stdout=log, stderr=subprocess.STDOUT, start_new_session=True,
    )  # fmt: skip
    try:  # kedro-viz serves from a child process: the whole session is stopped at the end
        base = f"http://127.0.0.1:{port}"
        try:
            main = _get_json(f"{base}/api/main", wait_s=180)
        except OSError as error:
            raise AssertionError((tmp_path / "viz.log").read_text()[-3000:]) from error
        ids = {n["name"]: n["id"] for n in main["nodes"]}
        layers = ["raw", "primary", "feature", "model_input", "models", "model_output", "reporting", "registry"]
        assert main["layers"] == layers
        assert {"__default__", "preprocessing", "patching", "graph_building", "training"} <= {
            p["id"] for p in main["pipelines"]
        }
        assert {f"fold_{s}" for s in HELD_OUT} | {"final"} <= set(main["modular_pipelines"])  # the run's fold plan
        assert sum(n["name"] == "params:preprocessing" for n in main["nodes"]) == 1  # one node per parameter set
        held_out = _get_json(f"{base}/api/nodes/{ids['fold_SYN_A1.test_predictions']}")
        assert held_out["preview_type"] == "JSONPreview" and "spots × " in held_out["preview"]
        predictions = anndata.read_h5ad(project / "data" / "07_model_output" / "fold_SYN_A1" / "test_predictions.h5ad")
        assert held_out["stats"]["rows"] == predictions.n_obs and held_out["stats"]["columns"] == predictions.n_vars
        sections = _get_json(f"{base}/api/nodes/{ids['preprocessed_sections']}")
        assert json.loads(sections["preview"])["partitions"] == 4
        chromium = _chromium()
        if chromium is None:
            pytest.skip(
                "no Chromium: not installed and apt-get cannot install it here (needs root and a package mirror)"
            )
        page = subprocess.run(
            [chromium, "--headless", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage",
             "--window-size=1500,950", "--virtual-time-budget=20000", "--dump-dom",
             f"{base}/?pid=__default__&sid={ids['spatial_maps']}"],
            capture_output=True, text=True, timeout=120, check=True,
        ).stdout  # fmt: skip
        assert "fold_SYN_A1" in page and "plot_spatial_maps" in page  # the flowchart and its namespaces
        assert 'class="pipeline-metadata__plot-image" src="data:image/png;base64,' in page  # the figure preview
    finally:
        os.killpg(server.pid, signal.SIGTERM)
        server.wait(timeout=30)
        log.close()


def _get_json(url: str, wait_s: float = 0) -> dict:
    deadline = time.monotonic() + wait_s
    while True:
        try:
            with urllib.request.urlopen(url, timeout=30) as response:
                return json.loads(response.read())
        except OSError:
            if time.monotonic() > deadline:
                raise
            time.sleep(1)


def test_the_tutorial_notebook_runs_on_the_default_runs_registered_model(default_run, monkeypatch):
    """notebooks/tutorial.ipynb, executed top to bottom in a kernel (nbclient) in the project folder,
    on the demo's registered model and section: its PCC table and squidpy maps come out."""
    import nbclient  # noqa: PLC0415
    import nbformat  # noqa: PLC0415

    project = use_module_project(default_run, monkeypatch)
    notebook = nbformat.read(PROJECT_ROOT / "notebooks" / "tutorial.ipynb", as_version=4)
    nbclient.NotebookClient(
        notebook, timeout=300, kernel_name="python3", resources={"metadata": {"path": str(project)}}
    ).execute()
    outputs = [o for cell in notebook.cells if cell.cell_type == "code" for o in cell.get("outputs", [])]
    assert not [o for o in outputs if o.output_type == "error"]
    text = "".join(o.get("text", "") for o in outputs if o.output_type == "stream")
    assert "models:/synthetic_thitogene@champion: thitogene" in text and "mean PCC over" in text
    pcc = float(text.split("mean PCC over")[1].split(":")[1].split()[0])
    assert pcc > 0.2  # a section the final model trained on: the notebook says so
    assert sum("image/png" in o.get("data", {}) for o in outputs) >= 2  # the two squidpy maps

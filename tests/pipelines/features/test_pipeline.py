"""The features pipeline on the synthetic demo: a small encoder from a local weights file encodes
every section once; a second run finds them cached; another weights file gets its own partitions."""

from __future__ import annotations

import json
import os

import anndata as ad
import h5py
import mlflow
import numpy as np
import pandas as pd
import pytest
import torch
import yaml
from mlflow import MlflowClient
from PIL import Image

from tests.conftest import C3_WINDOW, GENE_LIST_785, HER2ST_REAL, kedro_session, write_hest_sample
from tests.encoders.test_frozen import SMALL, small_weights
from thitogene_kedro.datasets import SectionImagesDataset
from thitogene_kedro.encoders import encoder_spec, load_encoder
from thitogene_kedro.encoders.features import FeatureParams, section_features
from thitogene_kedro.errors import ProjectError
from thitogene_kedro.sections.spatial_layout import section_mpp


def use_encoder(project, weights, env: str = "local") -> None:
    """The small encoder at ``weights`` as the run's ``frozen_encoder`` (in ``env``'s catalog)."""
    catalog = project / "conf" / env / "catalog.yml"
    entries = yaml.safe_load(catalog.read_text()) or {} if catalog.exists() else {}
    entries["frozen_encoder"] = {"type": "thitogene_kedro.datasets.FrozenEncoderDataset", "encoder": "uni",
                                 "weights": str(weights), "overrides": SMALL}  # fmt: skip
    catalog.write_text(yaml.safe_dump(entries))


def store_client() -> MlflowClient:
    """The test's store (this process's MLflow may still point at an earlier test's)."""
    return MlflowClient(tracking_uri=os.environ["MLFLOW_TRACKING_URI"])


def run_features(project, **session_args) -> None:
    with kedro_session(project, plan=False, **session_args) as session:
        session.run(pipeline_names=["features"])


def test_features_are_computed_once_per_encoder_and_section(project_copy, tmp_path):
    _, weights = small_weights(tmp_path, "uni")
    use_encoder(project_copy, weights)
    run_features(project_copy)
    identity = json.loads((project_copy / "data" / "04_feature" / "encoder_identity.json").read_text())
    folder = project_copy / "data" / "04_feature" / "encoder_features" / identity["key"]
    files = sorted(folder.glob("*.npz"))
    report = pd.read_csv(project_copy / "data" / "08_reporting" / "features_report.csv")
    assert [f.stem for f in files] == sorted(report.loc[report["status"] == "computed", "section"])
    assert identity["dim"] == SMALL["embed_dim"] and identity["field_um"] == 112.0 and len(files) >= 2

    # the stored features are the encoder's on patches cut at its field of view, by spot id
    stored = dict(np.load(files[0]))
    section = files[0].stem
    adata = ad.read_h5ad(project_copy / "data" / "03_primary" / "sections" / f"{section}.h5ad")
    encoder = load_encoder(encoder_spec("uni"), weights, SMALL)
    with SectionImagesDataset("synthetic", str(project_copy / "data" / "01_raw" / "synthetic")).load()[
        section
    ]() as image:
        expected = section_features(
            encoder, image, np.asarray(adata.obsm["spatial"]), section_mpp(adata), FeatureParams(batch_size=7)
        )
    np.testing.assert_allclose(stored["features"], expected, rtol=1e-5, atol=1e-5)
    assert stored["spot_ids"].tolist() == adata.obs_names.tolist() and stored["features"].shape == (adata.n_obs, 48)
    client = store_client()
    runs = client.search_runs([client.get_experiment_by_name("thitogene_kedro").experiment_id])
    artifacts = {a.path for a in client.list_artifacts(runs[0].info.run_id, "features")}
    assert {"features/encoder_identity.json", "features/features_report.csv"} <= artifacts

    # a second run encodes nothing; other weights get their own partitions
    stamps = {f: f.stat().st_mtime_ns for f in files}
    run_features(project_copy)
    again = pd.read_csv(project_copy / "data" / "08_reporting" / "features_report.csv")
    assert (
        set(again["status"]) <= {"cached", "skipped: no image"} and {f: f.stat().st_mtime_ns for f in files} == stamps
    )
    other = tmp_path / "other"
    other.mkdir()
    _, second = small_weights(other, "uni")
    state = torch.load(second, weights_only=True)
    state["norm.weight"] = state["norm.weight"] * 2
    torch.save(state, second)
    use_encoder(project_copy, second)
    run_features(project_copy)
    keys = sorted(p.name for p in (project_copy / "data" / "04_feature" / "encoder_features").iterdir())
    assert len(keys) == 2 and identity["key"] in keys


def test_the_spatial_head_and_the_probe_train_score_and_register_on_features(project_copy, tmp_path):
    """feature_training on the demo: features once, then THItoGene's spatial head and the linear
    probe through the same folds, held-out scores and registry, each carrying its encoder."""
    _, weights = small_weights(tmp_path, "uni")
    use_encoder(project_copy, weights)
    client = store_client()
    for model in ("thitogene_head", "linear_probe"):
        params = {"training": {"epochs": 2, "cv": {"folds": ["SYN_A1"]}, "model": {"name": model, "preset": "small"}}}
        with kedro_session(project_copy, runtime_params=params) as session:
            session.run(pipeline_names=["feature_training"])
        scores = pd.read_csv(project_copy / "data" / "08_reporting" / "fold_SYN_A1" / "test_scores.csv")
        assert scores["section"].tolist() == ["SYN_A1"] and np.isfinite(scores["pcc_mean"]).all()
        version = client.get_model_version_by_alias(f"synthetic_{model}_uni", "champion")
        run = client.get_run(version.run_id)
        assert run.data.params["training.model.name"] == model
    identity = json.loads((project_copy / "data" / "04_feature" / "encoder_identity.json").read_text())
    report = pd.read_csv(project_copy / "data" / "08_reporting" / "features_report.csv")
    assert set(report["status"]) <= {"cached", "skipped: no image"}  # the second model reused the features
    predictions = ad.read_h5ad(project_copy / "data" / "07_model_output" / "fold_SYN_A1" / "test_predictions.h5ad")
    model_uns = predictions.uns["provenance"]["model"]
    assert model_uns["encoder"] == "uni" and model_uns["encoder_weights_sha256"] == identity["weights_sha256"]

    # a new slide through the inference pipeline: features from the model's encoder, the same predictions
    # as the stored features give the registered model; no weights, or other weights, are refused
    spots = project_copy / "data" / "01_raw" / "synthetic" / "data" / "ST-spotfiles" / "SYN_A1_selection.tsv"
    uri = "models:/synthetic_thitogene_head_uni@champion"
    inference = {"inference": {"spots": str(spots), "model": uri, "encoder_weights": str(weights)}}
    with kedro_session(project_copy, plan=False, runtime_params=inference) as session:
        session.run(pipeline_names=["inference"])
    predicted = ad.read_h5ad(project_copy / "data" / "07_model_output" / "inference" / "predictions.h5ad")
    stored = dict(np.load(project_copy / "data" / "04_feature" / "encoder_features" / identity["key"] / "SYN_A1.npz"))
    graph = np.load(project_copy / "data" / "04_feature" / "spot_graphs" / "SYN_A1.npz")
    assert graph["spot_ids"].tolist() == stored["spot_ids"].tolist()
    registered = mlflow.pyfunc.load_model(uri)
    request = {"features": stored["features"], "positions": graph["positions"], "edge_index": graph["edge_index"]}
    direct = registered.predict(request | {"encoder_weights_sha256": identity["weights_sha256"]})
    np.testing.assert_allclose(predicted[list(graph["spot_ids"])].X, direct.to_numpy(), rtol=1e-4, atol=1e-4)
    assert predicted.uns["provenance"]["model"]["encoder_weights_sha256"] == identity["weights_sha256"]
    with pytest.raises(Exception, match=r"features were computed with weights sha256 0000"):
        registered.predict(request | {"encoder_weights_sha256": "0" * 64})
    with pytest.raises(Exception, match=r"predicts from uni features: give 'features'"):
        registered.predict({"patches": np.zeros((9, 112, 112, 3), np.uint8), "positions": graph["positions"][:9]})
    other = tmp_path / "other"
    other.mkdir()
    _, second = small_weights(other, "uni")
    state = torch.load(second, weights_only=True)
    torch.save(state | {"norm.weight": state["norm.weight"] * 2}, second)
    refusals = {str(second): r"but the model was trained on uni weights with sha256", None: r"give the weights it was"}
    for given, message in refusals.items():
        refused = {"inference": {"spots": str(spots), "model": uri, "encoder_weights": given}}
        with kedro_session(project_copy, plan=False, runtime_params=refused) as session:
            with pytest.raises(ProjectError, match=message):
                session.run(pipeline_names=["inference"])

    # a model on patches in the features pipeline (and the reverse) is one line naming the fix
    wrong = {"training": {"epochs": 1, "cv": {"folds": ["SYN_A1"]}, "model": {"name": "thitogene", "preset": "small"}}}
    with kedro_session(project_copy, runtime_params=wrong) as session:
        with pytest.raises(
            Exception, match=r"takes patches, this pipeline gives features; run it with kedro run --pipelines training"
        ):
            session.run(pipeline_names=["feature_training"])


@pytest.mark.skipif(not HER2ST_REAL.is_dir(), reason="real her2st copy (../shared/data/her2st) not present")
def test_on_real_her2st_sections_features_train_register_and_predict_a_slide(project_copy, tmp_path, monkeypatch):
    """her2st environment, three real sections with images, the 785 paper genes, a small encoder:
    features → spatial head and linear probe → held-out scores → registry → the real C3 slide
    through the inference pipeline, which recomputes the features the model was trained on."""
    monkeypatch.setenv("HER2ST_DIR", str(HER2ST_REAL))
    monkeypatch.setenv("HER2ST_GENE_LIST", str(GENE_LIST_785))
    _, weights = small_weights(tmp_path, "uni")
    use_encoder(project_copy, weights, env="her2st")
    data = project_copy / "data"
    for model in ("thitogene_head", "linear_probe"):
        params = {"preprocessing": {"sections": "B4 C2 C3"},
                  "training": {"epochs": 2, "cv": {"folds": ["C3"]}, "model": {"name": model, "preset": "small"}}}  # fmt: skip
        with kedro_session(project_copy, env="her2st", runtime_params=params) as session:
            session.run(pipeline_names=["feature_training"])
        scores = pd.read_csv(data / "08_reporting" / "fold_C3" / "test_scores.csv")
        assert scores["spots"].tolist() == [180] and scores["genes"].tolist() == [785]
        assert np.isfinite(scores["pcc_mean"]).all()
    identity = json.loads((data / "04_feature" / "encoder_identity.json").read_text())
    stored = dict(np.load(data / "04_feature" / "encoder_features" / identity["key"] / "C3.npz"))
    assert stored["features"].shape == (180, SMALL["embed_dim"])

    graph = np.load(data / "04_feature" / "spot_graphs" / "C3.npz")
    table = pd.read_csv(HER2ST_REAL / "data" / "ST-spotfiles" / "C3_selection.tsv", sep="\t")
    ids = table["x"].round().astype(int).astype(str) + "x" + table["y"].round().astype(int).astype(str)
    spots = tmp_path / "C3_counted_selection.tsv"  # the spots that have counts (the spot file lists 2 more)
    table[ids.isin(graph["spot_ids"])].to_csv(spots, sep="\t", index=False)
    image = next((HER2ST_REAL / "data" / "ST-imgs" / "C" / "C3").iterdir())
    for model in ("thitogene_head", "linear_probe"):
        uri = f"models:/her2st_{model}_uni@champion"
        inference = {"inference": {"image": str(image), "spots": str(spots), "model": uri,
                                   "encoder_weights": str(weights)}}  # fmt: skip
        with kedro_session(project_copy, env="her2st", plan=False, runtime_params=inference) as session:
            session.run(pipeline_names=["inference"])
        predicted = ad.read_h5ad(data / "07_model_output" / "inference" / "predictions.h5ad")
        assert predicted.shape == (180, 785) and predicted.uns["model"]["name"] == f"her2st_{model}_uni"
        order = dict(zip(stored["spot_ids"], range(180), strict=True))
        features = stored["features"][[order[s] for s in graph["spot_ids"]]]
        direct = mlflow.pyfunc.load_model(uri).predict(
            {"features": features, "positions": graph["positions"], "edge_index": graph["edge_index"]}
        )
        np.testing.assert_allclose(predicted[list(graph["spot_ids"])].X, direct.to_numpy(), rtol=1e-4, atol=1e-4)


def drop_stored_patch(path, barcode: str) -> None:
    """Rewrite a HEST patch file without ``barcode``'s patch (as for a spot HEST did not patch)."""
    with h5py.File(path, "r") as handle:
        keep = np.asarray([b[0].decode() != barcode for b in handle["barcode"][:]])
        kept = {k: handle[k][:][keep] for k in ("img", "coords", "barcode")}
        attrs = dict(handle["img"].attrs)
    with h5py.File(path, "w") as handle:
        for k, values in kept.items():
            handle[k] = values
        handle["img"].attrs.update(attrs)


@pytest.mark.skipif(not C3_WINDOW.is_dir(), reason="real C3 fixture (../shared/data) not present")
def test_hest_samples_are_encoded_from_their_own_patches_where_they_fit(project_copy, tmp_path, monkeypatch):
    """Two HEST copies of the real C3 crop: one with a patch for every spot is encoded from its
    patches/<id>.h5 (features equal to those of patches cut from its pyramidal slide); one whose
    patch file lacks a spot is cut from the slide and the report says why; ``patches: stored``
    refuses it before anything is encoded."""
    counts = pd.read_csv(C3_WINDOW / "C3_window_785genes.tsv.gz", sep="\t", index_col=0)
    spots = pd.read_csv(C3_WINDOW / "C3_window_selection.tsv", sep="\t")
    image = np.asarray(Image.open(C3_WINDOW / "C3_window.jpg").convert("RGB"))
    hest = project_copy / "hest"
    for sample, patient in (("SPA120", "Patient C"), ("SPA114", "Patient D")):
        write_hest_sample(hest, sample, counts, spots, image, patient=patient, mpp=0.69)
    with h5py.File(hest / "patches" / "SPA120.h5", "r") as handle:
        dropped = handle["barcode"][0][0].decode()
    drop_stored_patch(hest / "patches" / "SPA120.h5", dropped)
    monkeypatch.setenv("HEST_DIR", str(hest))
    _, weights = small_weights(tmp_path, "uni")
    use_encoder(project_copy, weights, env="hest")
    params = {"preprocessing": {"gene_selection": {"min_spots_expressed": 10}}}
    with kedro_session(project_copy, env="hest", runtime_params=params) as session:
        session.run(pipeline_names=["preprocessing"])

    stored_only = {**params, "features": {"patches": "stored"}}
    with pytest.raises(ProjectError, match=r"section SPA120's stored patches do not fit the encoder: 1 of \d+ spots"):
        run_features(project_copy, env="hest", runtime_params=stored_only)
    assert not (project_copy / "data" / "04_feature" / "encoder_features").exists()

    run_features(project_copy, env="hest", runtime_params=params)
    report = pd.read_csv(project_copy / "data" / "08_reporting" / "features_report.csv").set_index("section")
    assert report.loc["SPA114", "patches"] == "stored: SPA114.h5"
    assert report.loc["SPA120", "patches"].startswith("slide (1 of ") and dropped in report.loc["SPA120", "patches"]
    identity = json.loads((project_copy / "data" / "04_feature" / "encoder_identity.json").read_text())
    folder = project_copy / "data" / "04_feature" / "encoder_features" / identity["key"]
    from_patches, from_slide = dict(np.load(folder / "SPA114.npz")), dict(np.load(folder / "SPA120.npz"))
    assert str(from_patches["patch_source"]) == "stored" and str(from_slide["patch_source"]) == "slide"
    adata = ad.read_h5ad(project_copy / "data" / "03_primary" / "sections" / "SPA114.h5ad")
    encoder = load_encoder(encoder_spec("uni"), weights, SMALL)
    with SectionImagesDataset("hest", str(hest)).load()["SPA114"]() as slide:
        cut = section_features(encoder, slide, np.asarray(adata.obsm["spatial"]), section_mpp(adata), FeatureParams())
    assert from_patches["spot_ids"].tolist() == adata.obs_names.tolist()
    np.testing.assert_allclose(from_patches["features"], cut, rtol=1e-5, atol=1e-5)
    np.testing.assert_allclose(from_slide["features"], cut, rtol=1e-5, atol=1e-5)  # the same pixels, either way

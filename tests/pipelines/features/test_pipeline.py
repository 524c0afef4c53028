"""The features pipeline on the synthetic demo: a small encoder from a local weights file encodes
every section once; a second run finds them cached; another weights file gets its own partitions."""

from __future__ import annotations

import json
import os

import anndata as ad
import numpy as np
import pandas as pd
import pytest
import torch
import yaml
from mlflow import MlflowClient

from tests.conftest import kedro_session
from tests.encoders.test_frozen import SMALL, small_weights
from thitogene_kedro.datasets import SectionImagesDataset
from thitogene_kedro.encoders import encoder_spec, load_encoder
from thitogene_kedro.encoders.features import FeatureParams, section_features
from thitogene_kedro.sections.spatial_layout import section_mpp


def use_encoder(project, weights) -> None:
    catalog = {"frozen_encoder": {"type": "thitogene_kedro.datasets.FrozenEncoderDataset", "encoder": "uni",
                                  "weights": str(weights), "overrides": SMALL}}  # fmt: skip
    (project / "conf" / "local" / "catalog.yml").write_text(yaml.safe_dump(catalog))


def store_client() -> MlflowClient:
    """The test's store (this process's MLflow may still point at an earlier test's)."""
    return MlflowClient(tracking_uri=os.environ["MLFLOW_TRACKING_URI"])


def run_features(project) -> None:
    with kedro_session(project, plan=False) as session:
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

    # a model on patches in the features pipeline (and the reverse) is one line naming the fix
    wrong = {"training": {"epochs": 1, "cv": {"folds": ["SYN_A1"]}, "model": {"name": "thitogene", "preset": "small"}}}
    with kedro_session(project_copy, runtime_params=wrong) as session:
        with pytest.raises(
            Exception, match=r"takes patches, this pipeline gives features; run it with kedro run --pipelines training"
        ):
            session.run(pipeline_names=["feature_training"])

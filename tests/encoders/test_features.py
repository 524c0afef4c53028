"""When a HEST sample's own patches can stand in for patches cut at an encoder's field of view."""

from __future__ import annotations

import re
from dataclasses import replace

import numpy as np
import pandas as pd
import pytest
from PIL import Image

from tests.conftest import C3_WINDOW, write_hest_sample
from tests.encoders.test_frozen import SMALL, small_weights
from thitogene_kedro.encoders import encoder_spec, load_encoder
from thitogene_kedro.encoders.features import FeatureParams, stored_features, stored_patches_misfit
from thitogene_kedro.sections import hest


@pytest.mark.skipif(not C3_WINDOW.is_dir(), reason="real C3 fixture (../shared/data) not present")
def test_stored_patches_fit_only_at_the_encoders_field_for_every_spot_at_its_centre(tmp_path):
    counts = pd.read_csv(C3_WINDOW / "C3_window_785genes.tsv.gz", sep="\t", index_col=0)
    spots = pd.read_csv(C3_WINDOW / "C3_window_selection.tsv", sep="\t")
    image = np.asarray(Image.open(C3_WINDOW / "C3_window.jpg").convert("RGB"))
    write_hest_sample(tmp_path, "S1", counts, spots, image, patient="P", mpp=0.69)
    section = hest.read_section(tmp_path, "S1")
    ids, xy = np.asarray(section.obs_names, dtype=str), np.asarray(section.obsm["spatial"])
    _, weights = small_weights(tmp_path, "uni")
    encoder = load_encoder(encoder_spec("uni"), weights, SMALL)
    with hest.HestPatches(tmp_path, "S1") as stored:
        assert stored_patches_misfit(encoder, stored, ids, xy) is None
        shifted = stored_patches_misfit(encoder, stored, ids, xy + [0, 9])  # stored corners are whole pixels
        assert re.fullmatch(r"its patches lie up to (9|10) px from the spot centres of the counts file", shifted)
        unknown = np.append(ids, "999x999")
        assert stored_patches_misfit(encoder, stored, unknown, np.vstack([xy, [0, 0]])) == (
            f"1 of {len(unknown)} spots have no stored patch (e.g. ['999x999'])"
        )
        reversed_rows = stored.rows_of(ids[::-1])
        features = stored_features(encoder, stored, reversed_rows, FeatureParams(batch_size=5))
        in_file_order = stored_features(encoder, stored, np.arange(len(ids)), FeatureParams(batch_size=64))
        np.testing.assert_allclose(features, in_file_order[reversed_rows], rtol=1e-5, atol=1e-5)
        encoder.spec = replace(encoder.spec, mpp=1.0)  # a 224 µm field
        assert (
            stored_patches_misfit(encoder, stored, ids, xy) == "its patches cover 112 µm, the encoder's field is 224 µm"
        )

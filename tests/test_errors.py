"""One-line messages for user-fixable errors; interruptions; the run-start checks."""

from __future__ import annotations

import os
import signal

import pytest
import torch
from kedro.io.core import DatasetError
from pydantic import ValidationError

from thitogene_kedro.errors import ProjectError, RunInterrupted, interrupts_raise, one_line
from thitogene_kedro.models.registry import ModelSpec
from thitogene_kedro.pipelines.training.params import TrainingParams
from thitogene_kedro.run_checks import check_environment, check_training
from thitogene_kedro.sections.schema import SectionDataError


def test_the_innermost_project_error_is_shown_on_one_line():
    try:
        try:
            raise SectionDataError("data/ST-cnts/C3.tsv.gz", "C3", "spot 10x12 appears twice;\nremove one")
        except SectionDataError as error:
            raise DatasetError("Failed while saving data to dataset PartitionedDataset(...).") from error
    except DatasetError as wrapped:
        assert one_line(wrapped) == str(
            SectionDataError("data/ST-cnts/C3.tsv.gz", "C3", "spot 10x12 appears twice; remove one")
        )


def test_a_bug_is_not_taken_for_a_user_error():
    try:
        _ = 1 / 0
    except ZeroDivisionError as error:
        assert one_line(error) is None
    try:
        int("not a number")  # a ValueError raised outside this package's code
    except ValueError as error:
        assert one_line(error) is None


def test_a_dataset_error_without_a_project_cause_is_shown_as_it_is():
    try:
        try:
            raise OSError("disk full")
        except OSError as error:
            raise DatasetError("Failed while saving data to dataset X.\ndisk full") from error
    except DatasetError as wrapped:
        assert one_line(wrapped) == "Failed while saving data to dataset X.; disk full"


def test_an_unknown_preset_is_refused_when_parameters_are_read():
    with pytest.raises(ValidationError, match=r"training.model.preset: model 'thitogene' has no preset 'foo'"):
        TrainingParams.model_validate({"model": {"name": "thitogene", "preset": "foo"}})
    assert ModelSpec(name="hist2st", preset="small").preset == "small"


def test_the_run_start_checks_name_the_setting_and_the_fix(tmp_path):
    for env in ("base", "local", "her2st"):
        (tmp_path / env).mkdir()
    check_environment(tmp_path, "her2st")
    check_environment(tmp_path, None)
    with pytest.raises(ProjectError, match=r"--env her2sT: there is no environment 'her2sT' .*\['her2st', 'local'\]"):
        check_environment(tmp_path, "her2sT")
    check_training({"device": "cpu"})
    if not torch.cuda.is_available():
        with pytest.raises(ProjectError, match=r"training.device=cuda: .*set training.device=auto or cpu"):
            check_training(TrainingParams(device="cuda", epochs=1))


def test_signals_raise_an_interruption_inside_the_block_only():
    with interrupts_raise(), pytest.raises(RunInterrupted) as stopped:
        os.kill(os.getpid(), signal.SIGTERM)
    assert stopped.value.exit_code == 143 and signal.getsignal(signal.SIGTERM) is signal.SIG_DFL
    stopped.value.node = "preprocess_sections"
    assert str(stopped.value) == (
        "run interrupted by SIGTERM in node preprocess_sections; the outputs of finished nodes are kept; "
        "run the same command again to resume"
    )
    assert one_line(stopped.value) == str(stopped.value)
    assert RunInterrupted("SIGINT").at("fold_C2", 25, 25).tags() == {
        "interrupted_by": "SIGINT", "interrupted_in_fold": "fold_C2", "interrupted_after_epoch": "25",
        "last_checkpoint_epoch": "25",
    }  # fmt: skip

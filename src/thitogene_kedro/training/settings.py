"""Validated settings of the trainer that do not depend on a pipeline: the cross-validation scheme."""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid")


class CrossValidationParams(_Strict):
    """How sections are split into folds; each fold is one Kedro namespace ``fold_<id>``.

    - ``leave_one_section_out``: one fold per section (the papers' protocol; serial sections of the
      test patient stay in training).
    - ``leave_one_patient_out``: one fold per patient; no section of the test patient trains.
    - ``held_out``: one fold whose test sections are ``held_out_sections``.

    ``folds`` restricts the run to some fold ids (sections or patients), ``all`` keeps every one.
    ``validation_sections`` training sections per fold (chosen with ``training.seed``, never from
    the test patient's sections under leave_one_patient_out) serve early stopping only.
    ``final_model`` trains one more model on every section; it is the model registered.
    """

    scheme: Literal["leave_one_section_out", "leave_one_patient_out", "held_out"] = "leave_one_section_out"
    held_out_sections: list[str] = Field(default_factory=list)
    folds: Literal["all"] | list[str] = "all"
    validation_sections: int = Field(0, ge=0)
    final_model: bool = True

    @field_validator("held_out_sections", "folds", mode="before")
    @classmethod
    def _split_string(cls, value):
        if isinstance(value, str) and value != "all":
            return value.split()
        return value

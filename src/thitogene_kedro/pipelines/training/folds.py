"""Cross-validation folds: which sections test, train and validate in each fold."""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass

import numpy as np

from thitogene_kedro.pipelines.training.params import CrossValidationParams

FINAL = "final"


@dataclass(frozen=True)
class Fold:
    """One fold. ``name`` is its Kedro namespace; the final model is the fold named ``final``.

    ``unseen`` lists every section the fold must not look at, for anything: its test sections and,
    under leave_one_patient_out, all sections of the test patients (also those without an image,
    which could otherwise still inform gene selection).
    """

    name: str
    test: tuple[str, ...]
    train: tuple[str, ...]
    validation: tuple[str, ...] = ()
    unseen: tuple[str, ...] = ()

    def to_dict(self) -> dict[str, object]:
        return {k: list(v) if isinstance(v, tuple) else v for k, v in asdict(self).items()}

    @classmethod
    def from_dict(cls, data: Mapping[str, object]) -> Fold:
        return cls(
            name=str(data["name"]),
            test=tuple(data["test"]),
            train=tuple(data["train"]),
            validation=tuple(data.get("validation", ())),
            unseen=tuple(data.get("unseen", ())),
        )


def namespace(fold_id: str) -> str:
    """``fold_<id>`` with characters outside ``[A-Za-z0-9_]`` replaced by ``_``."""
    return "fold_" + re.sub(r"\W", "_", fold_id)


def _validation_split(train: list[str], n: int, seed: int, fold_id: str) -> tuple[list[str], list[str]]:
    if n == 0:
        return train, []
    if n >= len(train):
        raise ValueError(
            f"fold {fold_id}: training.cv.validation_sections={n} leaves no training section ({len(train)} available)"
        )
    rng = np.random.default_rng([seed, sum(map(ord, fold_id))])
    chosen = set(rng.choice(train, size=n, replace=False).tolist())
    return [s for s in train if s not in chosen], [s for s in train if s in chosen]


def plan_folds(
    sections: Sequence[str],
    patients: Mapping[str, str],
    params: CrossValidationParams,
    seed: int,
    counts_only: Sequence[str] = (),
) -> list[Fold]:
    """The folds of ``sections`` (in order) under ``params``, plus the final model if configured.

    ``counts_only`` are further sections without images: they never train or test, but their
    counts may inform gene selection unless the fold marks them ``unseen``.

    Raises:
        ValueError: too few sections, or named sections/folds that do not exist.
    """
    params = CrossValidationParams.model_validate(params)
    sections = list(sections)
    if len(sections) < 2:
        raise ValueError(f"cross-validation needs at least 2 sections with images, got {sections}")
    if params.scheme == "held_out":
        missing = [s for s in params.held_out_sections if s not in sections]
        if not params.held_out_sections or missing:
            raise ValueError(
                f"training.cv.held_out_sections must name sections among {sections}; got {params.held_out_sections}"
            )
        groups = {"held_out": list(params.held_out_sections)}
    elif params.scheme == "leave_one_section_out":
        groups = {s: [s] for s in sections}
    else:
        groups = {}
        for s in sections:
            groups.setdefault(patients[s], []).append(s)
        if len(groups) < 2:
            raise ValueError(f"leave_one_patient_out needs at least 2 patients, got {sorted(groups)}")
    if params.folds != "all":
        unknown = [f for f in params.folds if f not in groups]
        if unknown:
            raise ValueError(f"training.cv.folds names {unknown}, not among the fold ids {sorted(groups)}")
        groups = {f: groups[f] for f in params.folds}
    folds = []
    for fold_id, test in groups.items():
        test_patients = {patients[s] for s in test}
        train = [s for s in sections if s not in test]
        if params.scheme == "leave_one_patient_out":
            train = [s for s in train if patients[s] not in test_patients]
        train, validation = _validation_split(train, params.validation_sections, seed, fold_id)
        unseen = list(test)
        if params.scheme == "leave_one_patient_out":
            unseen += [s for s in [*sections, *counts_only] if patients[s] in test_patients and s not in test]
        folds.append(Fold(namespace(fold_id), tuple(test), tuple(train), tuple(validation), tuple(unseen)))
    if params.final_model:
        train, validation = _validation_split(sections, params.validation_sections, seed, FINAL)
        folds.append(Fold(FINAL, (), tuple(train), tuple(validation)))
    return folds

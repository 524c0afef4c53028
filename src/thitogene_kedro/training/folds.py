"""Cross-validation folds: which sections test, train and validate in each fold."""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence

import numpy as np
from pydantic import BaseModel, ConfigDict, Field

from thitogene_kedro.training.settings import CrossValidationParams

FINAL = "final"


class Fold(BaseModel):
    """One fold. ``name`` is its Kedro namespace; the final model is the fold named ``final``.

    ``unseen`` lists every section the fold must not look at, for anything: its test sections and,
    under leave_one_patient_out, all sections of the test patients (also those without an image,
    which could otherwise still inform gene selection).
    """

    model_config = ConfigDict(frozen=True, extra="forbid")

    name: str
    test: tuple[str, ...]
    train: tuple[str, ...]
    validation: tuple[str, ...] = ()
    unseen: tuple[str, ...] = ()

    def check_no_leakage(self) -> None:
        """Raises ValueError when an unseen (test) section also trains or validates."""
        leaked = sorted(set(self.unseen) & (set(self.train) | set(self.validation)))
        if leaked:
            raise ValueError(f"fold {self.name}: unseen sections {leaked} also train")


class PlanBasis(BaseModel):
    """What a fold plan was made from: the data's sections and the cross-validation settings."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    source: str
    sections: tuple[str, ...]
    counts_only: tuple[str, ...] = ()
    patients: dict[str, str] = Field(default_factory=dict)
    cv: CrossValidationParams = CrossValidationParams()
    seed: int = 0


class FoldPlan(BaseModel):
    """The folds of a run and what they were planned from (``conf/<env>/parameters_folds.yml``)."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    basis: PlanBasis
    folds: tuple[Fold, ...]

    @property
    def names(self) -> list[str]:
        return [fold.name for fold in self.folds]

    def fold(self, name: str) -> Fold:
        """The fold named ``name``. Raises KeyError naming the planned folds."""
        for fold in self.folds:
            if fold.name == name:
                return fold
        raise KeyError(f"fold {name} is not in the fold plan {self.names}; rerun `kedro folds plan`")

    def differences(self, current: FoldPlan) -> list[str]:
        """Why this plan does not fit ``current`` (the plan the data and parameters give now); empty if it fits."""
        mine, now = self.basis, current.basis
        reasons = []
        if mine.source != now.source:
            reasons.append(f"it was planned on data source {mine.source!r}, this run reads {now.source!r}")
        for section in [s for s in mine.sections if s not in now.sections]:
            why = "has no image in this run's data" if section in now.counts_only else "is not among the run's sections"
            reasons.append(f"section {section} trains or is tested in the plan but {why}")
        for section in [s for s in now.sections if s not in mine.sections]:
            reasons.append(f"section {section} has an image in this run's data but is in no fold of the plan")
        seed_matters = mine.cv.validation_sections > 0  # the seed draws validation sections, nothing else
        if mine.cv != now.cv or (seed_matters and mine.seed != now.seed):
            reasons.append(
                f"training.cv / training.seed differ (plan: {mine.cv.model_dump()}, seed {mine.seed}; "
                f"run: {now.cv.model_dump()}, seed {now.seed})"
            )
        if not reasons and self.folds != current.folds:
            reasons.append(f"the folds differ (plan {self.names}, now {current.names})")
        return reasons


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


def _test_groups(
    sections: list[str], patients: Mapping[str, str], params: CrossValidationParams
) -> dict[str, list[str]]:
    """Fold id → its test sections under the scheme, restricted to ``params.folds``."""
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
    return groups


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
    groups = _test_groups(sections, patients, params)
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
        folds.append(
            Fold(
                name=namespace(fold_id),
                test=tuple(test),
                train=tuple(train),
                validation=tuple(validation),
                unseen=tuple(unseen),
            )
        )
    if params.final_model:
        train, validation = _validation_split(sections, params.validation_sections, seed, FINAL)
        folds.append(Fold(name=FINAL, test=(), train=tuple(train), validation=tuple(validation)))
    return folds


def make_plan(
    source: str,
    sections: Sequence[str],
    counts_only: Sequence[str],
    patients: Mapping[str, str],
    cv: CrossValidationParams,
    seed: int,
) -> FoldPlan:
    """The one planner: :func:`plan_folds` with the basis it was made from."""
    cv = CrossValidationParams.model_validate(cv)
    basis = PlanBasis(
        source=source, sections=tuple(sections), counts_only=tuple(counts_only),
        patients={s: patients[s] for s in [*sections, *counts_only]}, cv=cv, seed=seed,
    )  # fmt: skip
    return FoldPlan(basis=basis, folds=tuple(plan_folds(sections, patients, cv, seed, counts_only)))

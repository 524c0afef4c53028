"""The fold plan from the data and the parameters (the one planner), and its YAML form.

``kedro folds plan`` calls :func:`plan_from_data` and writes :func:`plan_yaml` into the
environment's ``parameters_folds.yml``; pipelines are built from that file, and every run checks
it against the data when it starts (:func:`check_plan`).
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

import yaml

from thitogene_kedro.sections.choice import SectionChoice, choose_sections
from thitogene_kedro.training.folds import FoldPlan, make_plan
from thitogene_kedro.training.settings import CrossValidationParams

logger = logging.getLogger(__name__)

Loaders = Mapping[str, Callable[[], Any]]
PLAN_FILE = "parameters_folds.yml"


def plan_from_data(
    raw_sections: Loaders, raw_images: Loaders, sections: SectionChoice, cv: CrossValidationParams, seed: int
) -> FoldPlan:
    """Every fold of this configuration (the final model last), from the section and image listings.

    Only configured sections with an image train or are tested; the others still inform gene
    selection (``counts_only``). Nothing is read but the listings and the patients.
    """
    chosen = list(choose_sections(raw_sections, sections))
    with_images = [s for s in chosen if s in raw_images]
    counts_only = [s for s in chosen if s not in raw_images]
    if counts_only:
        logger.info("Cross-validation leaves out %d section(s) without an image: %s", len(counts_only), counts_only)
    source = getattr(raw_sections, "source", None)
    patients = {s: (source.patient_of(s) if source is not None else s) for s in chosen}
    name = getattr(source, "source", "data")
    return make_plan(name, with_images, counts_only, patients, cv, seed)


def plan_yaml(plan: FoldPlan, command: str) -> str:
    """The plan as a parameters file (``folds:``), with a header that says how it was made."""
    header = (
        f"# The cross-validation folds (one Kedro namespace each), written by:\n#   {command}\n"
        "# Every run checks this plan against the data and parameters when it starts; rerun the command\n"
        "# above after changing sections, data or training.cv / training.seed.\n"
    )
    return header + yaml.safe_dump({"folds": plan.model_dump(mode="json")}, sort_keys=False, width=120)


def write_plan(plan: FoldPlan, path: Path, command: str) -> None:
    """Write the plan file atomically."""
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(".tmp")
    tmp.write_text(plan_yaml(plan, command))
    tmp.replace(path)


def check_plan(planned: Mapping[str, Any] | FoldPlan | None, current: FoldPlan, where: str, fix: str) -> FoldPlan:
    """The planned folds, if they fit ``current``.

    Raises:
        ValueError: no plan, or one that does not fit the data and parameters; the message names
            the plan file (``where``), each difference, and the command that fixes it (``fix``).
    """
    if not planned:
        raise ValueError(f"no fold plan in {where}; run `{fix}`")
    plan = FoldPlan.model_validate(planned)
    reasons = plan.differences(current)
    if reasons:
        raise ValueError(f"the fold plan in {where} does not fit this run: {'; '.join(reasons)}. Run `{fix}`")
    return plan

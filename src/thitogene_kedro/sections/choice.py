"""Which sections a run uses: all, the published protocol's list, or the configured ones."""

from __future__ import annotations

import logging
from collections.abc import Callable, Mapping, Sequence
from typing import Literal

import anndata as ad

from thitogene_kedro.sections import cscc, her2st

logger = logging.getLogger(__name__)

SectionLoaders = Mapping[str, Callable[[], ad.AnnData]]
SectionChoice = Literal["all", "paper"] | list[str]


def paper_sections(available: SectionLoaders) -> list[str]:
    """The published protocol's sections that this source holds; absent ones are logged and skipped.

    Raises:
        ValueError: the source has no published section list (synthetic, Visium).
    """
    source = getattr(available, "source", None)
    name = getattr(source, "source", None)
    papers = {"her2st": her2st.PAPER_SECTIONS, "cscc": cscc.PAPER_SECTIONS}
    if name not in papers:
        raise ValueError(f"preprocessing.sections 'paper' needs a her2st or cSCC source, not {name!r}")
    missing = [s for s in papers[name] if s not in available]
    if missing:
        logger.warning(
            "The paper's %s list has %d section(s) this copy of the data lacks; they are skipped: %s",
            name, len(missing), missing,
        )  # fmt: skip
    return [s for s in papers[name] if s in available]


def choose_sections(
    available: SectionLoaders, sections: SectionChoice, held_out: Sequence[str] = ()
) -> dict[str, Callable[[], ad.AnnData]]:
    """The configured sections' loaders, in the configured order.

    ``all``: every section of the source, sorted; ``paper``: the published protocol's sections in
    its fold order (those the data holds); a list: exactly those.

    Raises:
        ValueError: a listed or held-out section the source does not hold.
    """
    if sections == "all":
        names = sorted(available)
    elif sections == "paper":
        names = paper_sections(available)
    else:
        names = list(sections)
    missing = [s for s in [*names, *held_out] if s not in available]
    if missing:
        raise ValueError(
            f"preprocessing.sections / gene_selection_excludes name section(s) {missing} that the data source "
            f"does not hold; available: {sorted(available)}"
        )
    if len(set(names)) != len(names):
        raise ValueError(f"preprocessing.sections lists a section twice: {names}")
    return {name: available[name] for name in names}

"""Model input: one or several sections, padded to a common spot count, with masks.

Every model takes a :class:`SectionBatch`. A batch of one section is the reference setting
(``reference-spec.md`` §1.4-4); several sections are padded to the largest, and ``mask`` marks the
real spots. Padded spots never reach a real spot's output (attention and graph masks exclude
them), so in evaluation mode a section gives the same prediction alone or in a batch.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import torch

Array = np.ndarray | torch.Tensor


def dense_adjacency(edge_index: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """``(B, N, N)`` bool adjacency from ``(2, E)`` edges over the flattened ``B·N`` spots."""
    b, n = mask.shape
    adjacency = torch.zeros((b, n, n), dtype=torch.bool, device=mask.device)
    adjacency[edge_index[0] // n, edge_index[0] % n, edge_index[1] % n] = True
    return adjacency


@dataclass(frozen=True)
class SectionExample:
    """The arrays of one section, as the data pipelines write them.

    Attributes:
        section_id: section name, used in error messages.
        patches: ``(N, H, W, 3)`` uint8 crops centred on the spots, or None for a section given
            by ``features``.
        positions: ``(N, 2)`` integer ``(x, y)`` array coordinates (position-embedding indices).
        edge_index: ``(2, E)`` directed edges ``[spot, neighbour]`` of the spot graph.
        targets: ``(N, G)`` normalised expression, or None at inference.
        counts: ``(N, G)`` raw counts of the same genes (needed by count losses such as ZINB).
        features: ``(N, D)`` float32 per-spot features of a frozen encoder, instead of patches
            (the models on frozen features, ``docs/encoders.md``).
    """

    section_id: str
    patches: Array | None
    positions: Array
    edge_index: Array
    targets: Array | None = None
    counts: Array | None = None
    features: Array | None = None

    @property
    def n_spots(self) -> int:
        return len(self.patches if self.patches is not None else self.features)

    def __post_init__(self) -> None:
        if (self.patches is None) == (self.features is None):
            raise ValueError(f"section {self.section_id}: give patches or features, exactly one of them")
        n = self.n_spots
        problems = []
        if self.patches is not None and (
            self.patches.ndim != 4 or self.patches.shape[-1] != 3 or self.patches.dtype not in (np.uint8, torch.uint8)
        ):
            problems.append(f"patches must be uint8 (N, H, W, 3), got {self.patches.dtype} {tuple(self.patches.shape)}")
        if self.features is not None and self.features.ndim != 2:
            problems.append(f"features must be (N, D), got {tuple(self.features.shape)}")
        if self.positions.shape != (n, 2):
            problems.append(f"positions must be ({n}, 2), got {tuple(self.positions.shape)}")
        if self.edge_index.ndim != 2 or self.edge_index.shape[0] != 2:
            problems.append(f"edge_index must be (2, E), got {tuple(self.edge_index.shape)}")
        elif self.edge_index.shape[1] and (self.edge_index.min() < 0 or self.edge_index.max() >= n):
            problems.append(f"edge_index refers to spots outside 0..{n - 1}")
        for name in ("targets", "counts"):
            value = getattr(self, name)
            if value is not None and (value.ndim != 2 or len(value) != n):
                problems.append(f"{name} must be ({n}, G), got {tuple(value.shape)}")
        if problems:
            raise ValueError(f"section {self.section_id}: " + "; ".join(problems))


@dataclass
class SectionBatch:
    """Padded tensors of B sections with at most N spots each.

    Attributes:
        patches: ``(B, N, H, W, 3)`` uint8, or None for sections given by features.
        positions: ``(B, N, 2)`` int64.
        edge_index: ``(2, E)`` int64 edges ``[spot, neighbour]`` over the flattened ``B·N`` spots
            (spot i of section b is ``b·N + i``): the spot graphs as neighbour lists, never N×N.
        mask: ``(B, N)`` bool, True for real spots. A batch of one section is never padded.
        targets: ``(B, N, G)`` float32 or None.
        counts: ``(B, N, G)`` float32 or None.
        section_ids: the B section names.
        features: ``(B, N, D)`` float32 frozen-encoder features, or None for sections given by patches.
    """

    patches: torch.Tensor | None
    positions: torch.Tensor
    edge_index: torch.Tensor
    mask: torch.Tensor
    targets: torch.Tensor | None = None
    counts: torch.Tensor | None = None
    section_ids: list[str] = dataclasses.field(default_factory=list)
    features: torch.Tensor | None = None

    def to(self, device: torch.device | str) -> SectionBatch:
        """The same batch on ``device`` (non-blocking copies)."""
        moved = {
            f.name: getattr(self, f.name).to(device, non_blocking=True)
            for f in dataclasses.fields(self)
            if isinstance(getattr(self, f.name), torch.Tensor)
        }
        return dataclasses.replace(self, **moved)

    @property
    def adjacency(self) -> torch.Tensor:
        """``(B, N, N)`` bool, ``adjacency[b, i, j]`` True when j is a neighbour of i (built on request)."""
        return dense_adjacency(self.edge_index, self.mask)

    @property
    def n_spots(self) -> torch.Tensor:
        """``(B,)`` real spot count per section."""
        return self.mask.sum(dim=1)


def _tensor(array: Array, dtype: torch.dtype, device: torch.device | str | None = None) -> torch.Tensor:
    if isinstance(array, torch.Tensor):
        return array.to(device=device or array.device, dtype=dtype)
    return torch.as_tensor(np.ascontiguousarray(array)).to(device=device, dtype=dtype)


def _pad(arrays: Sequence[Array], n_max: int, dtype: torch.dtype, device: torch.device) -> torch.Tensor:
    out = torch.zeros((len(arrays), n_max, *arrays[0].shape[1:]), dtype=dtype, device=device)
    for b, array in enumerate(arrays):
        out[b, : len(array)] = _tensor(array, dtype, device)
    return out


def examples_on(examples: Sequence[SectionExample], device: torch.device | str) -> list[SectionExample]:
    """The sections as tensors on ``device`` (patches stay uint8), so batches are built there.

    Used to keep a whole training set on the GPU: the 32 HER2+ sections are ~0.4 GB as uint8.
    """
    converted = []
    for example in examples:
        optional = {
            name: None if getattr(example, name) is None else _tensor(getattr(example, name), torch.float32, device)
            for name in ("targets", "counts", "features")
        }
        converted.append(
            SectionExample(
                example.section_id,
                None if example.patches is None else _tensor(example.patches, torch.uint8, device),
                _tensor(example.positions, torch.long, device),
                _tensor(example.edge_index, torch.long, device),
                **optional,
            )
        )
    return converted


def collate_sections(examples: Sequence[SectionExample]) -> SectionBatch:
    """Pad sections into one :class:`SectionBatch` (usable as a DataLoader ``collate_fn``).

    Raises:
        ValueError: no sections, or sections whose patch sizes or gene counts differ.
    """
    if not examples:
        raise ValueError("cannot build a batch from zero sections")
    first = examples[0]
    for example in examples[1:]:
        for name, label in (("patches", "patch"), ("features", "feature")):
            a, b = getattr(first, name), getattr(example, name)
            if (a is None) != (b is None) or (a is not None and a.shape[1:] != b.shape[1:]):
                shapes = [None if x is None else tuple(x.shape[1:]) for x in (b, a)]
                raise ValueError(f"section {example.section_id}: {label} shape {shapes[0]} differs from {shapes[1]} "
                                 f"in section {first.section_id}")  # fmt: skip
        for name in ("targets", "counts"):
            a, b = getattr(first, name), getattr(example, name)
            if (a is None) != (b is None) or (a is not None and a.shape[1] != b.shape[1]):
                raise ValueError(f"section {example.section_id}: {name} do not match section {first.section_id}")
    n_max = max(e.n_spots for e in examples)
    device = first.positions.device if isinstance(first.positions, torch.Tensor) else torch.device("cpu")
    mask = torch.zeros((len(examples), n_max), dtype=torch.bool, device=device)
    edges = []
    for b, example in enumerate(examples):
        edges.append(_tensor(example.edge_index, torch.long, device) + b * n_max)
        mask[b, : example.n_spots] = True
    targets, counts = first.targets, first.counts
    return SectionBatch(
        patches=None if first.patches is None else _pad([e.patches for e in examples], n_max, torch.uint8, device),
        features=None if first.features is None else _pad([e.features for e in examples], n_max, torch.float32, device),
        positions=_pad([e.positions for e in examples], n_max, torch.long, device),
        edge_index=torch.cat(edges, dim=1),
        mask=mask,
        targets=None if targets is None else _pad([e.targets for e in examples], n_max, torch.float32, device),
        counts=None if counts is None else _pad([e.counts for e in examples], n_max, torch.float32, device),
        section_ids=[e.section_id for e in examples],
    )

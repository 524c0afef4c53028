"""Device and precision selection, shared by training, evaluation and inference."""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from typing import Literal

import torch

Precision = Literal["fp32", "bf16", "fp16"]

_AUTOCAST_DTYPES = {"bf16": torch.bfloat16, "fp16": torch.float16}


def resolve_device(name: str = "auto") -> torch.device:
    """``auto`` → ``cuda`` when a GPU is visible, else ``cpu``; anything else is taken literally.

    Raises:
        ValueError: a CUDA device was asked for and none is available.
    """
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    device = torch.device(name)
    if device.type == "cuda" and not torch.cuda.is_available():
        raise ValueError(f"device {name!r} was requested but CUDA is not available on this machine")
    if device.type == "cuda" and device.index is not None and device.index >= torch.cuda.device_count():
        raise ValueError(f"device {name!r} was requested but this machine has {torch.cuda.device_count()} CUDA devices")
    return device


@contextlib.contextmanager
def autocast(device: torch.device, precision: Precision = "fp32") -> Iterator[None]:
    """Mixed precision for the forward pass: ``fp32`` (off), ``bf16`` or ``fp16`` autocast."""
    if precision == "fp32":
        yield
        return
    with torch.autocast(device_type=device.type, dtype=_AUTOCAST_DTYPES[precision]):
        yield

"""Device, precision and host-memory settings, shared by training, evaluation and inference."""

from __future__ import annotations

import contextlib
import ctypes
import logging
import platform
from collections.abc import Iterator
from typing import Literal

import torch

Precision = Literal["fp32", "bf16", "fp16"]

_AUTOCAST_DTYPES = {"bf16": torch.bfloat16, "fp16": torch.float16}

logger = logging.getLogger(__name__)


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


def module_device(module: torch.nn.Module) -> torch.device:
    """The device a module's tensors are on (its first parameter's, else its first buffer's: a
    closed-form model such as the linear probe has only buffers); CPU for a module with neither."""
    for tensor in (*module.parameters(), *module.buffers()):
        return tensor.device
    return torch.device("cpu")


def native_bf16(device: torch.device) -> bool:
    """Whether ``device`` computes bf16 natively: a CUDA GPU that supports it, or a CPU whose oneDNN
    has bf16 kernels (AVX512-BF16 or AMX); elsewhere bf16 is emulated and slower than fp32."""
    if device.type == "cuda":
        return torch.cuda.is_bf16_supported()
    return device.type == "cpu" and bool(torch.ops.mkldnn._is_mkldnn_bf16_supported())


def resolve_precision(precision: str, device: torch.device) -> Precision:
    """``auto``: bf16 autocast on a CUDA GPU that supports it, else fp32 — also on a CPU with native
    bf16, until the fp32/bf16 parity of ``docs/results.md`` has been measured on one (``docs/training.md``).
    An explicit ``bf16`` on a device without native bf16 runs, with a warning that it is emulated."""
    if precision == "auto":
        return "bf16" if device.type == "cuda" and torch.cuda.is_bf16_supported() else "fp32"
    if precision == "bf16" and not native_bf16(device):
        capability = torch.backends.cpu.get_cpu_capability() if device.type == "cpu" else device.type
        logger.warning(
            "training.precision=bf16 on %s (%s) without native bf16: autocast runs emulated bf16, slower than fp32",
            device, capability,
        )  # fmt: skip
    return precision  # type: ignore[return-value]


@contextlib.contextmanager
def autocast(device: torch.device, precision: Precision = "fp32") -> Iterator[None]:
    """Mixed precision for the forward pass: ``fp32`` (off), ``bf16`` or ``fp16`` autocast."""
    if precision == "fp32":
        yield
        return
    with torch.autocast(device_type=device.type, dtype=_AUTOCAST_DTYPES[precision]):
        yield


_M_TRIM_THRESHOLD, _M_MMAP_THRESHOLD, _M_MMAP_MAX = -1, -3, -4  # glibc's mallopt parameters
# on exit: where glibc's own dynamic thresholds settle once large buffers have been freed (mallopt
# cannot turn the dynamic adjustment back on; its 128 KiB starting point would mmap every activation)
_GLIBC_SETTLED = {_M_MMAP_THRESHOLD: 32 * 2**20, _M_TRIM_THRESHOLD: 64 * 2**20, _M_MMAP_MAX: 65536}


def _glibc() -> ctypes.CDLL | None:
    """The C library when it is glibc (it has ``mallopt`` and ``malloc_trim``), else None."""
    if platform.system() != "Linux":
        return None
    try:
        libc = ctypes.CDLL(None)
        libc.mallopt.argtypes, libc.malloc_trim.argtypes = [ctypes.c_int, ctypes.c_int], [ctypes.c_size_t]
    except (OSError, AttributeError):
        return None
    return libc


# Largest number of spots per step for which ``auto`` reuses freed host memory. Measured on 2 cores
# (docs/benchmarks.md): at 283 and 1,000 spots reuse makes a step 1.0–1.2× faster for at most
# +0.3 GiB of peak; at 3,000 spots 1.25× faster, but the retained heap fragments, +1.7 GiB of peak.
HOST_MEMORY_REUSE_MAX_SPOTS = 1500


def resolve_host_memory_reuse(setting: bool | Literal["auto"], spots_per_step: int) -> bool:
    """``auto``: reuse freed host memory when a step holds at most ``HOST_MEMORY_REUSE_MAX_SPOTS`` spots."""
    if setting == "auto":
        return spots_per_step <= HOST_MEMORY_REUSE_MAX_SPOTS
    return bool(setting)


@contextlib.contextmanager
def reuse_freed_host_memory(enabled: bool = True) -> Iterator[bool]:
    """Keep freed host memory in the process while the block runs; yields whether it could.

    glibc serves every allocation above 32 MiB (and, by default, many smaller ones) with a fresh
    ``mmap`` and returns it on free, so each training step page-faults its large activations and
    gradients back in: on the 2-core machines of ``docs/benchmarks.md`` that first touch costs
    about ten times the arithmetic of an elementwise pass over the same tensor. Inside the block
    large allocations come from the heap and freed memory stays there for the next step (glibc's
    ``mallopt``: no ``mmap``, no trimming); on exit the thresholds go back to those glibc's dynamic
    defaults settle at (buffers above 32 MiB mapped on their own) and the free memory is handed
    back to the system (``malloc_trim``). Values are unaffected. Elsewhere than glibc (macOS, musl)
    nothing changes.
    """
    libc = _glibc() if enabled else None
    if libc is None:
        yield False
        return
    libc.mallopt(_M_MMAP_MAX, 0)
    libc.mallopt(_M_TRIM_THRESHOLD, 2**31 - 1)
    try:
        yield True
    finally:
        for parameter, value in _GLIBC_SETTLED.items():
            libc.mallopt(parameter, value)
        libc.malloc_trim(0)

"""Device and precision helpers."""

from __future__ import annotations

import ctypes
import platform

import pytest
import torch

from thitogene_kedro.models import autocast, resolve_device
from thitogene_kedro.models.runtime import reuse_freed_host_memory


def test_auto_picks_cuda_only_when_available():
    assert resolve_device("auto").type == ("cuda" if torch.cuda.is_available() else "cpu")
    assert resolve_device("cpu") == torch.device("cpu")


@pytest.mark.skipif(torch.cuda.is_available(), reason="checks the error on a machine without CUDA")
def test_asking_for_cuda_without_a_gpu_is_a_clear_error():
    with pytest.raises(ValueError, match="CUDA is not available"):
        resolve_device("cuda:0")


def test_autocast_precisions():
    x = torch.randn(4, 4)
    with autocast(torch.device("cpu"), "fp32"):
        assert (x @ x).dtype == torch.float32
    with autocast(torch.device("cpu"), "bf16"):
        assert (x @ x).dtype == torch.bfloat16


class MallInfo2(ctypes.Structure):
    _fields_ = [  # noqa: RUF012 - ctypes layout
        (name, ctypes.c_size_t)
        for name in ("arena", "ordblks", "smblks", "hblks", "hblkhd", "usmblks", "fsmblks", "uordblks", "fordblks")
    ] + [("keepcost", ctypes.c_size_t)]


def malloc_mib() -> dict[str, float]:
    """glibc's own accounting in MiB: ``mmapped`` (separate mmaps), ``heap_used`` and ``heap_free``."""
    mallinfo2 = ctypes.CDLL(None).mallinfo2
    mallinfo2.restype = MallInfo2
    info = mallinfo2()
    return {"mmapped": info.hblkhd / 2**20, "heap_used": info.uordblks / 2**20, "heap_free": info.fordblks / 2**20}


def mmapped_mib_of_a_large_buffer() -> float:
    before = malloc_mib()["mmapped"]
    buffer = torch.empty(48 * 2**18)  # 48 MiB of float32
    mmapped = malloc_mib()["mmapped"] - before
    del buffer
    return mmapped


@pytest.mark.skipif(platform.system() != "Linux", reason="glibc's allocator settings")
def test_reusing_freed_host_memory_keeps_large_buffers_in_the_heap_for_the_next_step():
    assert mmapped_mib_of_a_large_buffer() >= 48  # glibc's default: its own mmap, unmapped on free
    with reuse_freed_host_memory() as reusing:
        assert reusing
        before = malloc_mib()
        buffer = torch.empty(48 * 2**18)
        during = malloc_mib()
        assert during["mmapped"] == before["mmapped"] and during["heap_used"] - before["heap_used"] >= 48
        del buffer
        assert malloc_mib()["heap_free"] >= 48  # kept, free, for the next step
    assert mmapped_mib_of_a_large_buffer() >= 48  # the defaults are back on exit


def test_reusing_freed_host_memory_can_be_switched_off():
    with reuse_freed_host_memory(False) as reusing:
        assert not reusing

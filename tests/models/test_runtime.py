"""Device and precision helpers."""

from __future__ import annotations

import json
import platform
import subprocess
import sys

import pytest
import torch

from thitogene_kedro.models import autocast, resolve_device
from thitogene_kedro.models.runtime import (
    native_bf16,
    resolve_host_memory_reuse,
    resolve_precision,
    reuse_freed_host_memory,
)


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


# Run in a fresh interpreter: glibc's heap state depends on everything the process did before.
ALLOCATOR_CHECK = """
import ctypes, json
import torch
from thitogene_kedro.models.runtime import (
    native_bf16,
    resolve_host_memory_reuse,
    resolve_precision,
    reuse_freed_host_memory,
)

class MallInfo2(ctypes.Structure):
    _fields_ = [(name, ctypes.c_size_t) for name in
                ("arena", "ordblks", "smblks", "hblks", "hblkhd", "usmblks", "fsmblks", "uordblks", "fordblks",
                 "keepcost")]

mallinfo2 = ctypes.CDLL(None).mallinfo2
mallinfo2.restype = MallInfo2

def mmapped_mib():
    return mallinfo2().hblkhd / 2**20

def rss_mib():
    with open("/proc/self/status") as status:
        return next(int(line.split()[1]) for line in status if line.startswith("VmRSS")) / 1024

out = {}
before = mmapped_mib()
buffer = torch.empty(48 * 2**18).fill_(1.0)  # 48 MiB of float32
out["default_mmapped"] = mmapped_mib() - before
del buffer
with reuse_freed_host_memory() as reusing:
    out["reusing"] = reusing
    before = mmapped_mib()
    buffer = torch.empty(48 * 2**18).fill_(1.0)
    out["inside_mmapped"] = mmapped_mib() - before
    held = rss_mib()
    del buffer
    out["returned_inside"] = held - rss_mib()
    held = rss_mib()
out["returned_on_exit"] = held - rss_mib()
print(json.dumps(out))
"""


@pytest.mark.skipif(platform.system() != "Linux", reason="glibc's allocator settings")
def test_reusing_freed_host_memory_keeps_large_buffers_in_the_process_until_exit():
    run = subprocess.run([sys.executable, "-c", ALLOCATOR_CHECK], capture_output=True, text=True, check=True)
    out = json.loads(run.stdout.strip().splitlines()[-1])
    assert out["default_mmapped"] >= 48  # glibc's default: a buffer this large is its own mmap, unmapped on free
    assert out["reusing"]
    assert out["inside_mmapped"] == 0  # inside: it comes from the heap...
    assert out["returned_inside"] < 8  # ...and stays in the process when freed, for the next step
    assert out["returned_on_exit"] >= 40  # on exit the free memory goes back to the system


def test_reusing_freed_host_memory_can_be_switched_off():
    with reuse_freed_host_memory(False) as reusing:
        assert not reusing


def test_auto_reuses_freed_host_memory_for_legacy_st_sized_steps_only():
    assert resolve_host_memory_reuse("auto", 283) and resolve_host_memory_reuse("auto", 1500)
    assert not resolve_host_memory_reuse("auto", 4992)  # a Visium section: the retained heap fragments
    assert resolve_host_memory_reuse(True, 4992) and not resolve_host_memory_reuse(False, 283)


def test_auto_precision_is_bf16_only_on_a_gpu_and_emulated_bf16_is_named(caplog):
    cpu = torch.device("cpu")
    assert resolve_precision("auto", cpu) == "fp32" and resolve_precision("fp32", cpu) == "fp32"
    with caplog.at_level("WARNING"):
        assert resolve_precision("bf16", cpu) == "bf16"
    assert ("without native bf16" in caplog.text) == (not native_bf16(cpu))

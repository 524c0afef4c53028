"""Wall time and peak resident memory of a block of work (Linux ``/proc``; elsewhere time only)."""

from __future__ import annotations

import time
from dataclasses import dataclass
from pathlib import Path

_STATUS = Path("/proc/self/status")
_CLEAR_REFS = Path("/proc/self/clear_refs")


def _status_kib(field: str) -> int | None:
    try:
        for line in _STATUS.read_text().splitlines():
            if line.startswith(field + ":"):
                return int(line.split()[1])
    except OSError:
        return None
    return None


def peak_rss_mib() -> float | None:
    """This process's peak resident memory so far (``VmHWM``), or ``None`` where ``/proc`` lacks it.

    Unlike ``ru_maxrss``, a child process does not inherit it from its parent across fork and exec.
    """
    peak = _status_kib("VmHWM")
    return None if peak is None else peak / 1024


def current_rss_mib() -> float | None:
    """This process's resident memory now (``VmRSS``), or ``None`` where ``/proc`` lacks it."""
    rss = _status_kib("VmRSS")
    return None if rss is None else rss / 1024


def _reset_peak() -> bool:
    try:
        _CLEAR_REFS.write_text("5")  # resets VmHWM to the current RSS
        return True
    except OSError:
        return False


@dataclass
class ResourceMeter:
    """Context manager measuring seconds and the peak RSS reached inside it.

    ``peak_rss_mib`` is the process's peak resident set while the block ran and
    ``peak_increase_mib`` that peak minus the RSS at entry: the block's own footprint.
    Both are ``None`` where the kernel does not expose them.
    """

    seconds: float = 0.0
    peak_rss_mib: float | None = None
    peak_increase_mib: float | None = None

    def __enter__(self) -> ResourceMeter:
        self._can_reset = _reset_peak()
        self._start_rss = _status_kib("VmRSS")
        self._start = time.perf_counter()
        return self

    def __exit__(self, *exc) -> None:
        self.seconds = time.perf_counter() - self._start
        peak = _status_kib("VmHWM") if self._can_reset else None
        if peak is not None and self._start_rss is not None:
            self.peak_rss_mib = peak / 1024
            self.peak_increase_mib = max(peak - self._start_rss, 0) / 1024

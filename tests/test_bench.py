"""The measuring scripts in bench/ run (tiny settings, CPU); their numbers go to docs/, not to tests."""

from __future__ import annotations

import pytest

from bench import gpu_check
from tests.conftest import HER2ST_REAL


@pytest.mark.skipif(not HER2ST_REAL.is_dir(), reason="real her2st copy (../shared/data/her2st) not present")
def test_gpu_check_runs_on_cpu(capsys):
    gpu_check.main(
        ["--her2st-dir", str(HER2ST_REAL), "--device", "cpu", "--preset", "small", "--epochs", "2",
         "--sections", "C3", "C4", "--test", "C3", "--precisions", "fp32", "bf16"]
    )  # fmt: skip
    out = capsys.readouterr().out
    assert "1 training sections (" in out and "500 genes" in out
    rows = [line for line in out.splitlines() if line.startswith(("| fp32", "| bf16"))]
    assert len(rows) == 2 and all(len(row.split("|")) == 8 for row in rows)

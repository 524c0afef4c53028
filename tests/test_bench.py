"""The measuring scripts in bench/ run (tiny settings, CPU); their numbers go to docs/, not to tests."""

from __future__ import annotations

import pytest

from bench import gpu_check, run, slide_memory
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


def test_slide_memory_runs(capsys):
    slide_memory.main(["--size", "1200", "--spots", "10"])
    out = capsys.readouterr().out
    assert "tiles: {'peak_rss_mib'" in out and "whole: {'peak_rss_mib'" in out and "ratio" in out


def test_benchmark_table_runs(capsys):
    run.main(["--preset", "small", "--repeats", "1", "--her2st-dir", "/nonexistent"])
    out = capsys.readouterr().out
    assert "fp32 matmul" in out and "| training step" in out and "| inference" in out

"""The measuring scripts in bench/ run (tiny settings, CPU); their numbers go to docs/, not to tests."""

from __future__ import annotations

import pytest

from bench import gpu_check, run, slide_memory
from tests.conftest import HER2ST_REAL, demo_raw_data


@pytest.mark.skipif(not HER2ST_REAL.is_dir(), reason="real her2st copy (../shared/data/her2st) not present")
def test_gpu_check_runs_on_cpu_and_writes_its_report(tmp_path, capsys):
    document = tmp_path / "benchmarks.md"
    document.write_text("# Benchmarks\n\n<!-- gpu:begin -->\nnot measured yet\n<!-- gpu:end -->\n\nNotes stay.\n")
    gpu_check.main(
        ["--her2st-dir", str(HER2ST_REAL), "--device", "cpu", "--preset", "small", "--epochs", "2",
         "--sections", "C3", "C4", "--test", "C3", "--precisions", "fp32", "bf16", "--write", str(document)]
    )  # fmt: skip
    out = capsys.readouterr().out
    written = document.read_text()
    assert "not measured yet" not in written and "Notes stay." in written and "| bf16 |" in written
    assert "device cpu" in written and "`python bench/gpu_check.py --her2st-dir" in written
    assert "1 training sections (" in out and "500 genes" in out
    rows = [line for line in out.splitlines() if line.startswith(("| fp32", "| bf16"))]
    assert len(rows) == 2 and all(len(row.split("|")) == 9 for row in rows)
    assert "protocol: 32 folds × 300 epochs × 31 sections" in out


def test_slide_memory_runs(capsys):
    slide_memory.main(["--size", "1200", "--spots", "10"])
    out = capsys.readouterr().out
    assert "tiles: {'peak_rss_mib'" in out and "whole: {'peak_rss_mib'" in out and "ratio" in out


def test_benchmark_suite_prints_and_writes_its_report(tmp_path, tmp_path_factory, capsys):
    """Synthetic demo, tiny settings: every table appears, with measured rows, and lands in the file."""
    document = tmp_path / "benchmarks.md"
    document.write_text("# Benchmarks\n\n<!-- bench:begin -->\nprevious report\n<!-- bench:end -->\n\nNotes stay.\n")
    run.main(
        ["--preset", "small", "--repeats", "1", "--her2st-dir", "/nonexistent", "--sizes", "60",
         "--synthetic-dir", str(demo_raw_data(tmp_path_factory)),
         "--naive-max", "60", "--skip", "e2e", "precision", "--encoder-depth", "1", "--write", str(document)]
    )  # fmt: skip
    out = capsys.readouterr().out
    assert "fp32 matmul" in out and "Section: synthetic" in out
    for row in ("| training step", "| · backward", "| inference", "| · vit fwd+bwd", "| · gat fwd+bwd"):
        assert row in out, row
    assert "| graph attention fwd+bwd, N×N dense | neighbour list |" in out
    for pair in ("| training step, glibc default", "| capsule encoder fwd+bwd, channels-first | channels-last |",
                 "| dropout fwd+bwd (1×", "| Adam step, foreach (default) | fused |"):  # fmt: skip
        assert pair in out, pair
    assert "| patching, the project's reader" in out and "| patch + 2 training steps" in out
    assert "| the same, bf16 autocast |" in out and "| fp32 | " in out and "| bf16 | " in out  # the memory parts
    assert "| UNI (ViT-L/16) (1 of its 24 blocks), 16 spots |" in out
    assert "| spatial head `small` on features, one epoch |" in out and "| linear probe, its whole" in out
    assert "| spatial head `light` on features, one epoch |" in out
    assert "| the same (fp32), optimiser step in the backward pass |" in out
    scaling = next(line for line in out.splitlines() if line.startswith("| 60 |"))
    assert "error" not in scaling and "–" not in scaling.split("|")[2]
    written = document.read_text()
    assert "previous report" not in written and "Notes stay." in written and "| training step" in written


def test_one_section_alone_writes_its_own_block(tmp_path, tmp_path_factory, capsys):
    """``--only features --block bench-features``: that section alone, into its block; the other block stays."""
    document = tmp_path / "benchmarks.md"
    document.write_text("<!-- bench:begin -->\nsuite\n<!-- bench:end -->\n")
    run.main(
        ["--preset", "small", "--repeats", "1", "--her2st-dir", "/nonexistent", "--encoder-depth", "1",
         "--synthetic-dir", str(demo_raw_data(tmp_path_factory)), "--only", "features", "--block", "bench-features",
         "--write", str(document)]
    )  # fmt: skip
    out = capsys.readouterr().out
    assert "### Models on frozen features" in out and "THItoGene `small` from pixels ÷ this |" in out
    assert "arithmetic floor" not in out and "Scaling with section size" not in out and "Patching" not in out
    written = document.read_text()
    assert "<!-- bench:begin -->\nsuite\n<!-- bench:end -->" in written
    block = written.split("<!-- bench-features:begin -->")[1].split("<!-- bench-features:end -->")[0]
    light = next(line for line in block.splitlines() if line.startswith("| spatial head `light`"))
    assert float(light.split("|")[-2]) > 0  # its speed-up over THItoGene from pixels, measured

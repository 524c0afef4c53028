"""The layers: the library never imports a pipeline, and nodes do no I/O of their own."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

from tests.conftest import PROJECT_ROOT

PACKAGE = PROJECT_ROOT / "src" / "thitogene_kedro"
# The Kedro side: pipelines and the project glue that registers them.
KEDRO_SIDE = {"pipelines", "pipeline_registry.py", "hooks.py", "settings.py", "cli.py", "__main__.py"}


def imported_modules(path: Path) -> set[str]:
    modules = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            modules |= {alias.name for alias in node.names}
        elif isinstance(node, ast.ImportFrom) and node.module:
            modules.add(node.module)
    return modules


def library_files() -> list[Path]:
    return [p for p in PACKAGE.rglob("*.py") if p.relative_to(PACKAGE).parts[0] not in KEDRO_SIDE]


def test_the_layers_are_where_the_map_says():
    assert {"processing", "training", "models", "sections", "datasets"} <= {p.name for p in PACKAGE.iterdir()}
    assert len(library_files()) > 40


@pytest.mark.parametrize(
    "path",
    [*library_files(), *(PROJECT_ROOT / "bench").glob("*.py"), *(PROJECT_ROOT / "deploy").rglob("*.py")],
    ids=lambda p: str(p.relative_to(PROJECT_ROOT)),
)
def test_library_bench_and_deploy_never_import_a_pipeline(path):
    upward = sorted(m for m in imported_modules(path) if m.startswith("thitogene_kedro.pipelines"))
    assert not upward, f"{path.relative_to(PROJECT_ROOT)} imports {upward}"


@pytest.mark.parametrize("path", sorted(PACKAGE.glob("pipelines/*/nodes.py")), ids=lambda p: p.parent.name)
def test_nodes_open_no_file_and_query_no_mlflow(path):
    tree = ast.parse(path.read_text())
    assert "mlflow" not in {m.split(".")[0] for m in imported_modules(path)}
    calls = {node.func.id for node in ast.walk(tree) if isinstance(node, ast.Call) and isinstance(node.func, ast.Name)}
    assert "open" not in calls


@pytest.mark.parametrize(
    "path",
    sorted([*PACKAGE.glob("pipelines/**/*.py"), *PACKAGE.glob("training/*.py")]),
    ids=lambda p: str(p.relative_to(PACKAGE)),
)
def test_pipeline_and_trainer_functions_stay_short(path):
    tree = ast.parse(path.read_text())
    long = [
        (node.name, node.end_lineno - node.lineno + 1)
        for node in ast.walk(tree)
        if isinstance(node, ast.FunctionDef) and node.end_lineno - node.lineno + 1 > 60
    ]
    assert not long, f"functions over 60 lines: {long}"

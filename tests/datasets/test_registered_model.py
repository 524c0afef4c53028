"""The registered model's environment lists the packages its code imports, no more and no fewer."""

from __future__ import annotations

import ast
import json
import re
import subprocess
import sys
from importlib import metadata
from pathlib import Path

from thitogene_kedro.datasets.registered_model_dataset import MODEL_DEPENDENCIES, model_requirements

# What MLflow imports to unpickle the model, in a fresh interpreter: the project's modules it loads.
LOADED = """
import json, sys
import thitogene_kedro.models.pyfunc
print(json.dumps(sorted(m.__file__ for n, m in sys.modules.items() if n.startswith("thitogene_kedro") and m.__file__)))
"""


def _module_level_imports(path: Path) -> set[str]:
    """Top-level names imported at module level (not inside functions: those load on demand)."""
    names = set()
    for node in ast.parse(path.read_text()).body:
        if isinstance(node, ast.Import):
            names |= {alias.name.split(".")[0] for alias in node.names}
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            names.add(node.module.split(".")[0])
    return names


def test_the_model_lists_the_packages_its_loaded_code_imports_and_nothing_else():
    out = subprocess.run([sys.executable, "-c", LOADED], capture_output=True, text=True, check=True)
    files = [Path(f) for f in json.loads(out.stdout.strip().splitlines()[-1])]
    distributions = metadata.packages_distributions()
    imported = {
        re.sub(r"[-_.]+", "-", dist).lower()
        for path in files
        for name in _module_level_imports(path)
        if name not in sys.stdlib_module_names and name != "thitogene_kedro"
        for dist in distributions.get(name, [name])
    }
    mlflow = {"mlflow", "mlflow-skinny", "mlflow-tracing"}  # the model's environment gets MLflow from MLflow
    assert imported - mlflow == {d.lower() for d in MODEL_DEPENDENCIES}, sorted(imported)
    assert [r.split("==")[0] for r in model_requirements()] == list(MODEL_DEPENDENCIES)
    assert all("+" not in r for r in model_requirements())  # no local version labels an index lacks

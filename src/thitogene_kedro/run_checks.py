"""Checks made when a run starts, before any node: what can be known wrong without doing the work.

Each failure is a :class:`~thitogene_kedro.errors.ProjectError` that names the setting and the fix.
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any

from pydantic import BaseModel

from thitogene_kedro.errors import ProjectError


def environments(conf_dir: Path) -> list[str]:
    """The configuration environments under ``conf_dir`` (its sub-folders)."""
    return sorted(p.name for p in conf_dir.iterdir() if p.is_dir()) if conf_dir.is_dir() else []


def check_environment(conf_dir: Path, env: str | None) -> None:
    """The environment ``env`` is a folder of ``conf_dir`` (Kedro would silently run base alone)."""
    if env is None or (conf_dir / env).is_dir():
        return
    known = [name for name in environments(conf_dir) if name != "base"]
    raise ProjectError(
        f"--env {env}: there is no environment {env!r} ({conf_dir / env} does not exist); "
        f"choose one of {known} (names are case-sensitive)"
    )


def check_training(training: BaseModel | Mapping[str, Any]) -> None:
    """``training.device`` exists on this machine (the model preset is checked by its parameter model)."""
    from thitogene_kedro.models.runtime import resolve_device  # noqa: PLC0415 - torch only where a run trains

    values = training.model_dump() if isinstance(training, BaseModel) else dict(training)
    device = str(values.get("device", "auto"))
    try:
        resolve_device(device)
    except ValueError as error:
        raise ProjectError(f"training.device={device}: {error}; set training.device=auto or cpu") from None

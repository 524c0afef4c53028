"""The configuration of the Kedro session being set up, for code that runs at pipeline registration."""

from __future__ import annotations

from kedro.config import AbstractConfigLoader

_active: dict[str, AbstractConfigLoader] = {}


def remember_config_loader(config_loader: AbstractConfigLoader) -> None:
    """Called by the project hook when a Kedro context is created."""
    _active["config_loader"] = config_loader


def active_config_loader() -> AbstractConfigLoader | None:
    """The config loader of the latest Kedro context, or None outside a session."""
    return _active.get("config_loader")

"""Shared base of the project's file datasets: fsspec paths, versions, atomic writes, exists and describe."""

from __future__ import annotations

import contextlib
import os
from collections.abc import Iterator
from pathlib import PurePosixPath
from typing import Any, Generic, TypeVar

import fsspec
from kedro.io.core import AbstractVersionedDataset, DatasetError, Version, get_filepath_str, get_protocol_and_path

_In = TypeVar("_In")
_Out = TypeVar("_Out")


class VersionedFileDataset(AbstractVersionedDataset[_In, _Out], Generic[_In, _Out]):
    """A versioned dataset stored as one file; subclasses implement ``load`` and ``save``."""

    def __init__(self, filepath: str, version: Version | None = None, metadata: dict[str, Any] | None = None):
        protocol, path = get_protocol_and_path(filepath, version)
        self._protocol = protocol
        self._fs = fsspec.filesystem(protocol)
        self.metadata = metadata
        super().__init__(PurePosixPath(path), version, exists_function=self._fs.exists, glob_function=self._fs.glob)

    def _load_path(self) -> str:
        return get_filepath_str(self._get_load_path(), self._protocol)

    def _save_path(self) -> str:
        """The path to write to, with its folder created."""
        path = get_filepath_str(self._get_save_path(), self._protocol)
        self._fs.makedirs(str(PurePosixPath(path).parent), exist_ok=True)
        return path

    @contextlib.contextmanager
    def _writing(self) -> Iterator[str]:
        """A temporary path beside the save path, moved onto it when the block succeeds and removed
        when it fails: a failed or interrupted save leaves the previous file as it was."""
        path = PurePosixPath(self._save_path())
        temporary = str(path.with_name(f".{path.stem}.partial-{os.getpid()}{path.suffix}"))
        try:
            yield temporary
            self._fs.mv(temporary, str(path))
        except BaseException:
            if self._fs.exists(temporary):
                self._fs.rm(temporary)
            raise

    def _exists(self) -> bool:
        try:
            path = self._load_path()
        except DatasetError:
            return False
        return self._fs.exists(path)

    def _describe(self) -> dict[str, Any]:
        return {"filepath": self._filepath, "protocol": self._protocol, "version": self._version}

    def _invalidate_cache(self) -> None:
        self._fs.invalidate_cache(get_filepath_str(self._filepath, self._protocol))

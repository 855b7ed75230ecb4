"""The in-memory catalog of servable model versions (a plain dict)."""

from __future__ import annotations

import threading
from pathlib import Path

from app.registry.model import LoadedModel


class ModelCatalog:
    """Loaded versions by (name, version); "latest" follows registration order."""

    def __init__(self) -> None:
        self._versions: dict[tuple[str, str], LoadedModel] = {}
        self._order: dict[tuple[str, str], int] = {}
        self.refused: dict[str, str] = {}
        self._lock = threading.Lock()

    def add(self, model: LoadedModel, registration: int) -> None:
        with self._lock:
            self._versions[(model.name, model.version)] = model
            self._order[(model.name, model.version)] = registration

    def refuse(self, folder: Path, reason: str) -> None:
        with self._lock:
            self.refused[str(folder)] = reason

    def get(self, name: str, version: str | None = None) -> LoadedModel | None:
        """A version, or the most recently registered one of the name."""
        if version is not None:
            return self._versions.get((name, version))
        versions = self.versions(name)
        return versions[-1] if versions else None

    def versions(self, name: str) -> list[LoadedModel]:
        """The loaded versions of a name, oldest registration first."""
        keys = sorted((k for k in self._versions if k[0] == name), key=self._order.__getitem__)
        return [self._versions[k] for k in keys]

    def names(self) -> list[str]:
        return sorted({name for name, _ in self._versions})

    def has(self, name: str, version: str) -> bool:
        return (name, version) in self._versions

    def __len__(self) -> int:
        return len(self._versions)

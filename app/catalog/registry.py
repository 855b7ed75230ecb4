"""The in-memory catalog of servable model versions (a plain dict), and the refused ones."""

from __future__ import annotations

import threading
from dataclasses import dataclass
from pathlib import Path

from app.catalog.model import LoadedModel


@dataclass(frozen=True)
class RefusedVersion:
    """A version folder that is not served, and why, in words its owner understands."""

    name: str
    version: str
    folder: str
    """``<name>/<version>`` as found under the models folder."""
    reason: str

    def as_dict(self) -> dict[str, str]:
        return {
            "name": self.name,
            "version": self.version,
            "folder": self.folder,
            "reason": self.reason,
        }


class ModelCatalog:
    """Loaded versions by (name, version); "latest" follows registration order."""

    def __init__(self) -> None:
        self._versions: dict[tuple[str, str], LoadedModel] = {}
        self._order: dict[tuple[str, str], int] = {}
        self.refused: dict[str, RefusedVersion] = {}
        """Refused version folders by path; a later successful load removes the entry."""
        self._lock = threading.Lock()

    def add(self, model: LoadedModel, registration: int) -> None:
        with self._lock:
            self._versions[(model.name, model.version)] = model
            self._order[(model.name, model.version)] = registration
            self.refused.pop(str(model.folder), None)

    def refuse(self, folder: Path, reason: str) -> RefusedVersion:
        """Record that a version folder is not served, with the reason."""
        entry = RefusedVersion(
            name=folder.parent.name,
            version=folder.name,
            folder=f"{folder.parent.name}/{folder.name}",
            reason=reason,
        )
        with self._lock:
            self.refused[str(folder)] = entry
        return entry

    def refused_versions(self) -> list[RefusedVersion]:
        """Every refused version, by folder name."""
        with self._lock:
            return sorted(self.refused.values(), key=lambda r: r.folder)

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

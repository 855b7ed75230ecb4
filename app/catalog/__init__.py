"""Model registry: manifests, safe artifact loading, the in-memory catalog of versions."""

from app.registry.catalog import ModelCatalog
from app.registry.manifest import Feature, Manifest
from app.registry.model import LoadedModel

__all__ = ["Feature", "LoadedModel", "Manifest", "ModelCatalog"]

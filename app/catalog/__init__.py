"""Model versions: manifests, safe loading, the in-memory catalog, upload and model cards."""

from app.catalog.manifest import Feature, Manifest
from app.catalog.model import LoadedModel
from app.catalog.registry import ModelCatalog

__all__ = ["Feature", "LoadedModel", "Manifest", "ModelCatalog"]

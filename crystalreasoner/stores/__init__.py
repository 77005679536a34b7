"""Artifact store: every pipeline output registered, with its lineage, in a maggma store.

Which stores are used is set by a YAML spec (``stores/<name>.yaml``): ``default`` is an
embedded on-disk MontyDB, ``memory`` is in-process for tests, ``mongo`` is a MongoDB server
with GridFS for file bytes.
"""

from crystalreasoner.stores.documents import ArtifactDoc, ArtifactKind, FileRecord, make_artifact_id
from crystalreasoner.stores.registry import ArtifactRegistry, open_registry
from crystalreasoner.stores.spec import STORE_TYPES, StoreConfig, StoreSpec, load_store_spec

__all__ = [
    "STORE_TYPES",
    "ArtifactDoc",
    "ArtifactKind",
    "ArtifactRegistry",
    "FileRecord",
    "StoreConfig",
    "StoreSpec",
    "load_store_spec",
    "make_artifact_id",
    "open_registry",
]

"""The document the registry keeps for every artifact, and how an artifact's id is derived."""

from __future__ import annotations

import subprocess
import uuid
from collections.abc import Iterable
from datetime import UTC, datetime
from enum import StrEnum
from functools import cache
from importlib.metadata import PackageNotFoundError, version
from pathlib import Path
from typing import Any

from pydantic import BaseModel, Field, field_serializer, field_validator

import crystalreasoner
from crystalreasoner.hashing import sha256_json

TRACKED_PACKAGES = ("pymatgen", "torch", "transformers", "trl", "prefect", "maggma", "atomate2")
"""Packages whose versions are recorded with every artifact: they change results."""

_ID_NAMESPACE = uuid.uuid5(uuid.NAMESPACE_URL, "https://crystalreasoner/artifacts")


class ArtifactKind(StrEnum):
    """What an artifact is: the output type of one pipeline stage."""

    DATASET = "dataset"
    TRACES = "traces"
    TOKENIZER = "tokenizer"
    CHECKPOINT = "checkpoint"
    GENERATION = "generation"
    EVALUATION = "evaluation"
    VALIDATION = "validation"
    REPORT = "report"
    CAMPAIGN = "campaign"


class FileRecord(BaseModel):
    """One file that belongs to an artifact."""

    name: str = Field(
        description="Path relative to the artifact's location (the bare file name for a file "
        "outside it); unique within an artifact and the name fetch_file asks for."
    )
    path: str = Field(description="Absolute path of the file when it was registered.")
    sha256: str = Field(description="sha256 of the file's bytes.")
    size_bytes: int = Field(description="File size in bytes.")
    blob_id: str | None = Field(
        default=None,
        description="Key of the file's bytes in the blob store; None when no blob store is set.",
    )


def utcnow() -> datetime:
    """Current UTC time cut to milliseconds, the resolution MongoDB-like stores keep.

    Cutting it here makes a document read back from any store equal the one registered.
    """
    now = datetime.now(UTC)
    return now.replace(microsecond=now.microsecond // 1000 * 1000)


def make_artifact_id(
    kind: ArtifactKind | str, content_hash: str, parents: Iterable[str], config: dict[str, Any]
) -> str:
    """Deterministic id, so registering the same artifact twice updates one document."""
    identity = {
        "kind": ArtifactKind(kind).value,
        "content_hash": content_hash,
        "parents": sorted(set(parents)),
        "config": sha256_json(config),
    }
    return str(uuid.uuid5(_ID_NAMESPACE, sha256_json(identity)))


@cache
def git_commit() -> str | None:
    """Short commit of the checkout the package runs from; None outside a git checkout."""
    try:
        result = subprocess.run(
            ["git", "rev-parse", "--short", "HEAD"],
            cwd=Path(crystalreasoner.__file__).parent,
            capture_output=True,
            text=True,
            timeout=5,
            check=True,
        )
    except (OSError, subprocess.SubprocessError):
        return None
    return result.stdout.strip() or None


def current_code_version() -> str:
    """``crystalreasoner.__version__``, with ``@<commit>`` appended inside a git checkout."""
    commit = git_commit()
    return f"{crystalreasoner.__version__}@{commit}" if commit else crystalreasoner.__version__


def current_package_versions() -> dict[str, str]:
    """Installed versions of TRACKED_PACKAGES; packages that are not installed are left out."""
    versions = {}
    for package in TRACKED_PACKAGES:
        try:
            versions[package] = version(package)
        except PackageNotFoundError:
            continue
    return versions


class ArtifactDoc(BaseModel):
    """Registry entry for one artifact: its identity, its provenance and where its files are."""

    artifact_id: str = Field(
        description="UUID5 of kind, content hash, sorted parents and config hash; the same "
        "artifact registered twice gets the same id."
    )
    kind: ArtifactKind = Field(description="Which pipeline stage made the artifact.")
    name: str = Field(description="Short human label; not part of the identity.")
    content_hash: str = Field(
        description="sha256 of the artifact's content (by default over its files and config)."
    )
    parents: list[str] = Field(
        default_factory=list, description="Ids of the artifacts this one was made from."
    )
    config: dict[str, Any] = Field(
        default_factory=dict, description="Settings that produced the artifact."
    )
    code_version: str = Field(
        default_factory=current_code_version,
        description="crystalreasoner version (and git commit) that registered the artifact.",
    )
    package_versions: dict[str, str] = Field(
        default_factory=current_package_versions,
        description="Versions of the key scientific/ML packages at registration.",
    )
    created_at: datetime = Field(
        default_factory=utcnow, description="When the artifact was first registered (UTC)."
    )
    updated_at: datetime = Field(
        default_factory=utcnow, description="When the artifact was last registered (UTC)."
    )
    location: str | None = Field(
        default=None, description="Directory or URI where the artifact's files live."
    )
    files: list[FileRecord] = Field(
        default_factory=list, description="The artifact's files with their hashes."
    )
    summary: dict[str, Any] = Field(
        default_factory=dict, description="Small metrics and counts for quick inspection."
    )

    @field_validator("created_at", "updated_at")
    @classmethod
    def _as_utc(cls, value: datetime) -> datetime:
        # MongoDB-like stores hand datetimes back naive, meaning UTC.
        return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)

    @field_serializer("kind")
    def _kind_value(self, kind: ArtifactKind) -> str:
        # Stores sanitise an Enum into a dict; the plain value is what queries match.
        return kind.value

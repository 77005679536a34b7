"""Store specifications: which maggma stores hold the artifact registry, read from YAML.

A spec names a maggma store class and its arguments for each role. Values may refer to
the environment as ``${VAR}`` or ``${VAR:-default}``, so that credentials (a MongoDB URI)
live only in the environment, never in a committed file.
"""

from __future__ import annotations

import os
import re
from pathlib import Path
from typing import Any, Literal

import yaml
from maggma import stores as maggma_stores
from maggma.core import Store
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

from crystalreasoner.errors import StoreConfigError

StoreRole = Literal["docs", "blobs"]

STORE_TYPES = (
    "MontyStore",
    "JSONStore",
    "MemoryStore",
    "MongoStore",
    "MongoURIStore",
    "GridFSStore",
    "GridFSURIStore",
)
"""maggma store classes a spec may name."""

DEFAULT_KEYS: dict[str, str] = {"docs": "artifact_id", "blobs": "blob_id"}
"""Document field each role's store upserts on, unless the spec sets ``key``."""

BUILTIN_SPECS = Path(__file__).with_name("specs")
"""Specs shipped with the package, used when ``<cwd>/stores/<name>.yaml`` does not exist."""

_ENV_VAR = re.compile(r"\$\{(?P<name>[A-Za-z_][A-Za-z0-9_]*)(?::-(?P<default>[^}]*))?\}")


class StoreConfig(BaseModel):
    """One maggma store: its class name plus the keyword arguments for that class.

    Every key other than ``type`` is passed to the class unchanged, except that a relative
    ``database_path`` is made absolute, so the store does not move with the working directory.
    """

    model_config = ConfigDict(extra="allow")

    type: str = Field(description="Name of the maggma store class, one of STORE_TYPES.")

    @model_validator(mode="before")
    @classmethod
    def _absolute_database_path(cls, data: Any) -> Any:
        if isinstance(data, dict) and data.get("database_path") is not None:
            path = Path(data["database_path"]).expanduser().resolve()
            data = {**data, "database_path": str(path)}
        return data

    @field_validator("type")
    @classmethod
    def _known_type(cls, value: str) -> str:
        if value not in STORE_TYPES:
            raise ValueError(f"unknown store type {value!r}; allowed: {', '.join(STORE_TYPES)}")
        return value

    def build(self, default_key: str) -> Store:
        """Instantiate the maggma store (not yet connected)."""
        kwargs = {"key": default_key, **(self.model_extra or {})}
        try:
            return getattr(maggma_stores, self.type)(**kwargs)
        except TypeError as err:  # an argument the class does not take
            raise StoreConfigError(f"bad arguments for {self.type}: {err}") from err


class StoreSpec(BaseModel):
    """Where artifact documents, file bytes and artifact files live."""

    model_config = ConfigDict(extra="forbid")

    docs: StoreConfig = Field(description="Store holding one ArtifactDoc per artifact.")
    blobs: StoreConfig | None = Field(
        default=None,
        description="Optional store that keeps a copy of every registered file's bytes "
        "(GridFS in production), so files can be fetched on machines that lack them.",
    )
    files_root: Path = Field(
        description="Directory under which pipeline steps write artifact files; "
        "made absolute at load time."
    )

    @field_validator("files_root")
    @classmethod
    def _absolute_files_root(cls, value: Path) -> Path:
        return value.expanduser().resolve()

    @model_validator(mode="after")
    def _stores_accept_arguments(self) -> StoreSpec:
        # Building a store does not connect it; doing it here reports a wrong argument at
        # load time instead of halfway through a flow.
        for role in DEFAULT_KEYS:
            if getattr(self, role) is not None:
                self.make_store(role)
        return self

    def make_store(self, role: StoreRole) -> Store:
        """Build the maggma store for ``role`` ("docs" or "blobs"), not yet connected."""
        if role not in DEFAULT_KEYS:
            raise ValueError(f"role must be one of {sorted(DEFAULT_KEYS)}, not {role!r}")
        config: StoreConfig | None = getattr(self, role)
        if config is None:
            raise StoreConfigError(f"this store spec configures no {role!r} store")
        return config.build(DEFAULT_KEYS[role])


    def job_store(self):
        """A jobflow ``JobStore`` on the same back ends: job outputs in a ``jobflow_outputs``
        collection next to the artifacts, large data (trajectories) in ``jobflow_data`` (GridFS
        when the spec has a GridFS blob store). atomate2 task documents land here."""
        from jobflow import JobStore

        docs = self.docs.model_copy(update={"collection_name": "jobflow_outputs"})
        data_config = self.blobs if self.blobs is not None and self.blobs.type == "GridFSStore" else self.docs
        data = data_config.model_copy(update={"collection_name": "jobflow_data"})
        return JobStore(docs.build("uuid"), additional_stores={"data": data.build("blob_uuid")})


def load_store_spec(name_or_path: str | Path | None = None) -> StoreSpec:
    """Load a store spec by name ("default", "memory", "mongo") or by file path.

    ``None`` means ``$CRYSREAS_STORE``, else "default". A name is looked up as
    ``<cwd>/stores/<name>.yaml`` first (so a project can override it), then among the
    specs shipped with the package.
    """
    if name_or_path is None:
        name_or_path = os.environ.get("CRYSREAS_STORE", "default")
    path = _spec_path(name_or_path)
    try:
        raw = yaml.safe_load(path.read_text())
    except yaml.YAMLError as err:
        raise StoreConfigError(f"store spec {path} is not valid YAML: {err}") from err
    if not isinstance(raw, dict):
        raise StoreConfigError(f"store spec {path} must be a mapping with docs, blobs, files_root")
    try:
        return StoreSpec.model_validate(_expand_env(raw, path))
    except ValidationError as err:
        raise StoreConfigError(f"invalid store spec {path}:\n{err}") from err


def _spec_path(name_or_path: str | Path) -> Path:
    text = str(name_or_path)
    if isinstance(name_or_path, Path) or text.endswith((".yaml", ".yml")) or os.sep in text:
        path = Path(name_or_path).expanduser()
        if not path.is_file():
            raise StoreConfigError(f"store spec file {path} does not exist")
        return path
    candidates = (Path.cwd() / "stores" / f"{text}.yaml", BUILTIN_SPECS / f"{text}.yaml")
    for candidate in candidates:
        if candidate.is_file():
            return candidate
    builtin = ", ".join(sorted(p.stem for p in BUILTIN_SPECS.glob("*.yaml")))
    raise StoreConfigError(
        f"no store spec named {text!r} (looked for {candidates[0]}; built-in specs: {builtin})"
    )


def _expand_env(value: Any, source: Path) -> Any:
    """Replace ``${VAR}`` / ``${VAR:-default}`` in every string of a parsed YAML tree."""
    if isinstance(value, str):
        return _ENV_VAR.sub(lambda match: _env_value(match, source), value)
    if isinstance(value, dict):
        return {key: _expand_env(item, source) for key, item in value.items()}
    if isinstance(value, list):
        return [_expand_env(item, source) for item in value]
    return value


def _env_value(match: re.Match[str], source: Path) -> str:
    name, default = match["name"], match["default"]
    value = os.environ.get(name)
    if default is not None and not value:  # shell semantics: unset or empty takes the default
        return default
    if value is None:
        raise StoreConfigError(
            f"store spec {source} needs environment variable {name}, which is not set "
            f"(credentials are read only from the environment)"
        )
    return value

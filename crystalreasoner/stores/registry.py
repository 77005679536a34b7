"""The artifact registry: every pipeline output with its provenance, kept in a maggma store."""

from __future__ import annotations

import base64
import shutil
from collections import deque
from collections.abc import Iterable, Iterator
from pathlib import Path
from types import TracebackType
from typing import Any, Self

from crystalreasoner.errors import ArtifactNotFoundError, CrystalReasonerError
from crystalreasoner.hashing import file_sha256, sha256_json
from crystalreasoner.stores.documents import (
    ArtifactDoc,
    ArtifactKind,
    FileRecord,
    make_artifact_id,
    utcnow,
)
from crystalreasoner.stores.spec import StoreSpec, load_store_spec

_NEWEST_FIRST = {"created_at": -1}


class ArtifactRegistry:
    """Register pipeline artifacts and find them again by id, kind, fields or ancestry.

    Use it as a context manager (or call ``connect``/``close``) so store connections
    are released.
    """

    def __init__(self, spec: StoreSpec) -> None:
        self.spec = spec
        self._docs = spec.make_store("docs")
        self._blobs = spec.make_store("blobs") if spec.blobs is not None else None

    def connect(self) -> None:
        """Connect the stores; a no-op for stores already connected."""
        self._docs.connect()
        if self._blobs is not None:
            self._blobs.connect()

    def close(self) -> None:
        """Release the store connections."""
        self._docs.close()
        if self._blobs is not None:
            self._blobs.close()

    def __enter__(self) -> Self:
        self.connect()
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        self.close()

    def register(
        self,
        kind: ArtifactKind | str,
        *,
        name: str,
        config: dict[str, Any],
        parents: Iterable[str] = (),
        files: Iterable[str | Path] = (),
        content_hash: str | None = None,
        location: str | Path | None = None,
        summary: dict[str, Any] | None = None,
    ) -> ArtifactDoc:
        """Record an artifact and return its document.

        Registering the same artifact again (same kind, content, parents and config)
        updates its document in place and keeps ``created_at``, so steps can be re-run
        safely. Parents must already be registered, so lineage never has dangling links.

        Parameters
        ----------
        kind, name, config
            What the artifact is, a short label, and the settings that made it.
        parents
            Ids of the artifacts it was made from.
        files
            Files that make up the artifact; they are hashed, and copied into the blob
            store when the spec has one.
        content_hash
            The artifact's identity; by default a hash of its files and config.
        location
            Directory or URI where its files live; file names are recorded relative to it.
        summary
            Small metrics and counts.
        """
        kind = ArtifactKind(kind)
        parents = list(parents)
        missing = [parent for parent in parents if not self.exists(parent)]
        if missing:
            raise ArtifactNotFoundError(
                f"cannot register {kind.value} {name!r}: parent artifact(s) not in the "
                f"registry: {', '.join(missing)}"
            )
        location = _normalise_location(location)
        records = _file_records(files, location)
        if self._blobs is not None:
            for record in records:
                record.blob_id = self._put_blob(record)
        if content_hash is None:
            content_hash = sha256_json(
                {"files": [(record.name, record.sha256) for record in records], "config": config}
            )
        artifact_id = make_artifact_id(kind, content_hash, parents, config)
        previous = self._find_one(artifact_id)
        now = utcnow()
        doc = ArtifactDoc(
            artifact_id=artifact_id,
            kind=kind,
            name=name,
            content_hash=content_hash,
            parents=parents,
            config=config,
            created_at=previous.created_at if previous else now,
            updated_at=now,
            location=location,
            files=records,
            summary=summary or {},
        )
        self._docs.update(doc.model_dump())
        return doc

    def get(self, artifact_id: str) -> ArtifactDoc:
        """The artifact with this id; ArtifactNotFoundError if there is none."""
        doc = self._find_one(artifact_id)
        if doc is None:
            raise ArtifactNotFoundError(f"no artifact with id {artifact_id!r} in the registry")
        return doc

    def exists(self, artifact_id: str) -> bool:
        """Whether an artifact with this id is registered."""
        return self._docs.count({"artifact_id": artifact_id}) > 0

    def find(
        self, kind: ArtifactKind | str | None = None, **equal_filters: Any
    ) -> list[ArtifactDoc]:
        """Artifacts of ``kind`` whose fields equal ``equal_filters``, newest first.

        Nested fields are matched with dotted names: ``find(**{"config.seed": 0})``.
        """
        return list(self._query(kind, equal_filters))

    def latest(self, kind: ArtifactKind | str, **filters: Any) -> ArtifactDoc | None:
        """The most recently created artifact that ``find(kind, **filters)`` would return."""
        return next(self._query(kind, filters, limit=1), None)

    def lineage(self, artifact_id: str) -> list[ArtifactDoc]:
        """All ancestors of an artifact, nearest first (breadth-first), each once."""
        seen = {artifact_id}
        queue = deque(self.get(artifact_id).parents)
        ancestors = []
        while queue:
            parent_id = queue.popleft()
            if parent_id in seen:
                continue
            seen.add(parent_id)
            parent = self.get(parent_id)
            ancestors.append(parent)
            queue.extend(parent.parents)
        return ancestors

    def fetch_file(self, artifact_id: str, filename: str, dest: str | Path) -> Path:
        """Copy one file of an artifact into directory ``dest`` and return the new path.

        The recorded path is used while it still holds the registered bytes; otherwise
        the copy in the blob store, so artifacts can be used on machines that lack them.
        """
        doc = self.get(artifact_id)
        record = next((file for file in doc.files if file.name == filename), None)
        if record is None:
            raise ArtifactNotFoundError(
                f"artifact {artifact_id} has no file {filename!r}; "
                f"its files: {[file.name for file in doc.files]}"
            )
        target = Path(dest).resolve() / record.name
        target.parent.mkdir(parents=True, exist_ok=True)
        source = Path(record.path)
        if source.is_file() and file_sha256(source) == record.sha256:
            if source != target:
                shutil.copyfile(source, target)
            return target
        blob = (
            self._blobs.query_one({self._blobs.key: record.blob_id})
            if self._blobs is not None and record.blob_id is not None
            else None
        )
        if blob is None:
            raise ArtifactNotFoundError(
                f"file {filename!r} of artifact {artifact_id} is missing or changed at "
                f"{record.path}, and no blob store holds a copy"
            )
        target.write_bytes(base64.b64decode(blob["data"]))
        return target

    def _query(
        self, kind: ArtifactKind | str | None, filters: dict[str, Any], limit: int = 0
    ) -> Iterator[ArtifactDoc]:
        criteria = dict(filters)
        if kind is not None:
            criteria["kind"] = ArtifactKind(kind).value
        for raw in self._docs.query(criteria, sort=_NEWEST_FIRST, limit=limit):
            yield ArtifactDoc.model_validate(raw)

    def _find_one(self, artifact_id: str) -> ArtifactDoc | None:
        return next(self._query(None, {"artifact_id": artifact_id}, limit=1), None)

    def _put_blob(self, record: FileRecord) -> str:
        """Store a file's bytes under its sha256 (identical bytes are stored once)."""
        key = self._blobs.key
        if self._blobs.count({key: record.sha256}) == 0:
            # GridFSStore JSON-encodes every document, so the bytes travel as base64 text.
            data = base64.b64encode(Path(record.path).read_bytes()).decode("ascii")
            self._blobs.update({key: record.sha256, "filename": record.name, "data": data})
        return record.sha256


def register_checkpoint_folder(registry: ArtifactRegistry, folder: str | Path, name: str, config: dict[str, Any] | None = None) -> str:
    """Register a checkpoint folder on disk (e.g. a shipped one) and return its artifact id."""
    folder = Path(folder).resolve()
    return registry.register(
        ArtifactKind.CHECKPOINT, name=name, config=config or {"path": str(folder)},
        files=sorted(p for p in folder.iterdir() if p.is_file()), location=folder,
    ).artifact_id


def open_registry(name_or_path: str | Path | None = None) -> ArtifactRegistry:
    """A connected registry for a store spec name or file (see ``load_store_spec``)."""
    registry = ArtifactRegistry(load_store_spec(name_or_path))
    registry.connect()
    return registry


def _normalise_location(location: str | Path | None) -> str | None:
    """Make a local location absolute; leave URIs (``scheme://...``) as they are."""
    if location is None:
        return None
    text = str(location)
    return text if "://" in text else str(Path(text).expanduser().resolve())


def _file_records(files: Iterable[str | Path], location: str | None) -> list[FileRecord]:
    """Hash files and name each relative to ``location``, sorted by name."""
    base = Path(location) if location is not None and "://" not in location else None
    records = []
    for file in files:
        path = Path(file).expanduser().resolve()
        inside = base is not None and path.is_relative_to(base)
        name = path.relative_to(base).as_posix() if inside else path.name
        records.append(
            FileRecord(
                name=name,
                path=str(path),
                sha256=file_sha256(path),
                size_bytes=path.stat().st_size,
            )
        )
    names = [record.name for record in records]
    duplicates = sorted({name for name in names if names.count(name) > 1})
    if duplicates:
        raise CrystalReasonerError(
            f"several files are named {duplicates} relative to location {location}; "
            "pass the directory that holds them as location"
        )
    return sorted(records, key=lambda record: record.name)

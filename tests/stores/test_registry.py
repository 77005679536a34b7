"""The registry contract, run against every server-less backend (see conftest.registry)."""

import hashlib
import time
from datetime import UTC
from importlib.metadata import version

import pytest

from crystalreasoner.errors import ArtifactNotFoundError
from crystalreasoner.stores import ArtifactKind, ArtifactRegistry, StoreSpec


def _ids(docs):
    return [doc.artifact_id for doc in docs]


def _tick():
    """Stores keep milliseconds; wait so consecutive registrations have distinct times."""
    time.sleep(0.002)


def test_backend_is_the_one_the_spec_names(registry):
    assert type(registry._docs).__name__ == registry.spec.docs.type
    assert type(registry._blobs).__name__ == registry.spec.blobs.type


def test_register_then_get(registry):
    doc = registry.register("dataset", name="mp20", config={"split": "train"}, summary={"n": 3})

    assert registry.exists(doc.artifact_id)
    assert registry.get(doc.artifact_id) == doc
    assert doc.kind is ArtifactKind.DATASET
    assert doc.created_at.tzinfo is UTC
    assert doc.package_versions["maggma"] == version("maggma")
    assert doc.summary == {"n": 3}


def test_get_unknown_id(registry):
    assert not registry.exists("no-such-id")
    with pytest.raises(ArtifactNotFoundError, match="no-such-id"):
        registry.get("no-such-id")


def test_register_twice_updates_one_document(registry):
    first = registry.register("dataset", name="mp20", config={"split": "train"})
    _tick()
    again = registry.register("dataset", name="mp20 (renamed)", config={"split": "train"})

    assert again.artifact_id == first.artifact_id
    assert again.created_at == first.created_at
    assert again.updated_at > first.updated_at
    assert _ids(registry.find()) == [first.artifact_id]
    assert registry.get(first.artifact_id).name == "mp20 (renamed)"
    other = registry.register("dataset", name="mp20", config={"split": "val"})
    assert other.artifact_id != first.artifact_id


def test_find_and_latest_newest_first(registry):
    older = registry.register("dataset", name="a", config={"seed": 0})
    _tick()
    newer = registry.register("dataset", name="b", config={"seed": 1})
    _tick()
    traces = registry.register("traces", name="a", config={}, parents=[older.artifact_id])

    assert _ids(registry.find("dataset")) == [newer.artifact_id, older.artifact_id]
    assert _ids(registry.find()) == [traces.artifact_id, newer.artifact_id, older.artifact_id]
    assert _ids(registry.find(name="a")) == [traces.artifact_id, older.artifact_id]
    assert _ids(registry.find(ArtifactKind.DATASET, **{"config.seed": 0})) == [older.artifact_id]
    assert registry.latest("dataset") == newer
    assert registry.latest("dataset", name="a") == older
    assert registry.latest("report") is None


def test_lineage_is_breadth_first_without_duplicates(registry):
    dataset = registry.register("dataset", name="mp20", config={})
    left = registry.register("traces", name="left", config={"x": 1}, parents=[dataset.artifact_id])
    right = registry.register(
        "traces", name="right", config={"x": 2}, parents=[dataset.artifact_id]
    )
    model = registry.register(
        "checkpoint", name="sft", config={}, parents=[left.artifact_id, right.artifact_id]
    )
    batch = registry.register("generation", name="gen", config={}, parents=[model.artifact_id])

    expected = [model, left, right, dataset]
    assert _ids(registry.lineage(batch.artifact_id)) == _ids(expected)
    assert registry.lineage(dataset.artifact_id) == []


def test_missing_parent_is_refused(registry):
    with pytest.raises(ArtifactNotFoundError, match="deadbeef"):
        registry.register("traces", name="t", config={}, parents=["deadbeef"])
    assert registry.find() == []


def test_files_are_hashed_and_named_relative_to_location(registry, tmp_path):
    out = tmp_path / "ckpt"
    (out / "cfg").mkdir(parents=True)
    (out / "model.bin").write_bytes(b"\x00weights")
    (out / "cfg" / "config.json").write_text("{}")

    doc = registry.register(
        "checkpoint",
        name="sft",
        config={"lr": 1e-5},
        files=[out / "model.bin", out / "cfg" / "config.json"],
        location=out,
    )

    assert doc.location == str(out.resolve())
    assert [record.name for record in doc.files] == ["cfg/config.json", "model.bin"]
    weights = doc.files[1]
    assert weights.sha256 == hashlib.sha256(b"\x00weights").hexdigest()
    assert weights.size_bytes == 8
    assert weights.blob_id == weights.sha256
    assert registry.get(doc.artifact_id).files == doc.files

    (out / "model.bin").write_bytes(b"\x00other")
    changed = registry.register(
        "checkpoint", name="sft", config={"lr": 1e-5}, files=[out / "model.bin"], location=out
    )
    assert changed.content_hash != doc.content_hash
    assert changed.artifact_id != doc.artifact_id
    pinned = registry.register("checkpoint", name="sft", config={}, content_hash="abc")
    assert pinned.content_hash == "abc"


def test_fetch_file_from_disk_then_from_blob_store(registry, tmp_path):
    source = tmp_path / "run" / "structures.cif"
    source.parent.mkdir()
    source.write_text("data_NaCl\n")
    doc = registry.register("generation", name="g", config={}, files=[source])

    assert registry.fetch_file(doc.artifact_id, "structures.cif", tmp_path / "a").read_text() == (
        "data_NaCl\n"
    )
    source.write_text("overwritten\n")  # the disk copy no longer matches: use the blob
    fetched = registry.fetch_file(doc.artifact_id, "structures.cif", tmp_path / "b")
    assert fetched == (tmp_path / "b" / "structures.cif").resolve()
    assert fetched.read_text() == "data_NaCl\n"
    with pytest.raises(ArtifactNotFoundError, match="other.cif"):
        registry.fetch_file(doc.artifact_id, "other.cif", tmp_path / "c")


def test_fetch_file_without_blob_store_needs_the_file_on_disk(tmp_path):
    spec = StoreSpec(docs={"type": "MemoryStore"}, files_root=tmp_path / "artifacts")
    source = tmp_path / "report.md"
    source.write_text("# report\n")
    with ArtifactRegistry(spec) as registry:
        doc = registry.register("report", name="r", config={}, files=[source])
        assert doc.files[0].blob_id is None
        assert registry.fetch_file(doc.artifact_id, "report.md", tmp_path / "out").is_file()
        source.unlink()
        with pytest.raises(ArtifactNotFoundError, match="no blob store"):
            registry.fetch_file(doc.artifact_id, "report.md", tmp_path / "again")

"""Loading store specs: environment expansion, name lookup, and errors that say what is wrong."""

from pathlib import Path

import pytest
from maggma.stores import GridFSStore, MemoryStore, MongoStore, MontyStore

from crystalreasoner.errors import StoreConfigError
from crystalreasoner.stores import STORE_TYPES, StoreSpec, load_store_spec
from crystalreasoner.stores.spec import BUILTIN_SPECS

REPO_ROOT = Path(__file__).resolve().parents[2]


def _spec_file(tmp_path, text):
    path = tmp_path / "spec.yaml"
    path.write_text(text)
    return path


def test_env_vars_and_defaults_are_expanded_and_paths_made_absolute(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("CRYSREAS_HOME", str(tmp_path / "home"))
    monkeypatch.setenv("COLLECTION", "mine")
    monkeypatch.delenv("DB_DIR", raising=False)
    path = _spec_file(
        tmp_path,
        "docs:\n"
        "  type: MontyStore\n"
        "  collection_name: ${COLLECTION}\n"
        "  database_path: ${DB_DIR:-relative/db}\n"
        "files_root: ${CRYSREAS_HOME}/artifacts\n",
    )

    spec = load_store_spec(path)

    assert spec.files_root == tmp_path.resolve() / "home" / "artifacts"
    store = spec.make_store("docs")
    assert isinstance(store, MontyStore)
    assert store.collection_name == "mine"
    assert store.database_path == str(tmp_path.resolve() / "relative" / "db")
    assert store.key == "artifact_id"


def test_unset_variable_names_the_variable_and_the_file(monkeypatch):
    monkeypatch.delenv("CRYSREAS_MONGO_URI", raising=False)
    with pytest.raises(StoreConfigError, match=r"mongo\.yaml.*CRYSREAS_MONGO_URI"):
        load_store_spec("mongo")


def test_unknown_store_type_lists_the_allowed_ones(tmp_path):
    path = _spec_file(tmp_path, "docs: {type: RedisStore}\nfiles_root: x\n")
    with pytest.raises(StoreConfigError, match="RedisStore") as info:
        load_store_spec(path)
    assert all(name in str(info.value) for name in STORE_TYPES)


@pytest.mark.parametrize(
    ("text", "culprit"),
    [
        ("docs: {type: MemoryStore}\nblob: null\nfiles_root: x\n", "blob"),
        ("docs: {type: MemoryStore, colection_name: a}\nfiles_root: x\n", "colection_name"),
    ],
)
def test_unknown_keys_are_rejected(tmp_path, text, culprit):
    with pytest.raises(StoreConfigError, match=culprit):
        load_store_spec(_spec_file(tmp_path, text))


def test_store_key_defaults_per_role_and_can_be_set(tmp_path):
    spec = StoreSpec(
        docs={"type": "MemoryStore"}, blobs={"type": "MemoryStore"}, files_root=tmp_path
    )
    assert spec.make_store("docs").key == "artifact_id"
    assert spec.make_store("blobs").key == "blob_id"
    custom = StoreSpec(docs={"type": "MemoryStore", "key": "uid"}, files_root=tmp_path)
    assert custom.make_store("docs").key == "uid"
    with pytest.raises(StoreConfigError, match="blobs"):
        custom.make_store("blobs")


def test_names_resolve_to_project_spec_then_builtin(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("CRYSREAS_STORE", "memory")
    assert isinstance(load_store_spec().make_store("docs"), MemoryStore)

    (tmp_path / "stores").mkdir()
    (tmp_path / "stores" / "memory.yaml").write_text(
        "docs: {type: MemoryStore, collection_name: project}\nfiles_root: x\n"
    )
    assert load_store_spec().make_store("docs").collection_name == "project"

    with pytest.raises(StoreConfigError, match="default, memory, mongo"):
        load_store_spec("nonexistent")


def test_builtin_specs_build_their_stores(monkeypatch):
    monkeypatch.setenv("CRYSREAS_MONGO_URI", "mongodb://user:pw@mongo.invalid:27017/db")
    mongo = load_store_spec("mongo")
    assert isinstance(mongo.make_store("docs"), MongoStore)
    assert isinstance(mongo.make_store("blobs"), GridFSStore)
    assert load_store_spec("default").blobs is None


def test_project_specs_are_identical_to_the_packaged_copies():
    packaged = {path.name: path.read_bytes() for path in BUILTIN_SPECS.glob("*.yaml")}
    project = {path.name: path.read_bytes() for path in (REPO_ROOT / "stores").glob("*.yaml")}
    assert sorted(packaged) == ["default.yaml", "memory.yaml", "mongo.yaml"]
    assert project == packaged

"""Crystal data: records, loaders for common formats, named datasets and the text codec."""

from crystalreasoner.data.codec import (
    STRUCTURE_END,
    STRUCTURE_START,
    CodecConfig,
    decode_structure,
    encode_structure,
    find_structure_block,
    first_departure,
)
from crystalreasoner.data.datasets import (
    DATASETS,
    DatasetBundle,
    DatasetSpec,
    bundled_data_dir,
    hash_split,
    list_datasets,
    load_dataset,
)
from crystalreasoner.data.loaders import (
    load_cdvae_csv,
    load_cif_folder,
    load_extxyz,
    load_materials_project,
    load_pymatgen_json,
)
from crystalreasoner.data.records import (
    KNOWN_PROPERTIES,
    CrystalRecord,
    LoadReport,
    SkippedRow,
    check_structure,
    clean_properties,
)

__all__ = [
    "DATASETS",
    "KNOWN_PROPERTIES",
    "STRUCTURE_END",
    "STRUCTURE_START",
    "CodecConfig",
    "CrystalRecord",
    "DatasetBundle",
    "DatasetSpec",
    "LoadReport",
    "SkippedRow",
    "bundled_data_dir",
    "check_structure",
    "clean_properties",
    "decode_structure",
    "encode_structure",
    "find_structure_block",
    "first_departure",
    "hash_split",
    "list_datasets",
    "load_cdvae_csv",
    "load_cif_folder",
    "load_dataset",
    "load_extxyz",
    "load_materials_project",
    "load_pymatgen_json",
]

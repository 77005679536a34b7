"""Typed experiment configs loaded from preset files (defaults < file < overrides).

Every stage config is a pydantic model that forbids unknown keys, so a typo in a YAML file is
an error that names the key, not a silently ignored setting.
"""

from __future__ import annotations

from importlib import resources
from pathlib import Path
from typing import Any, ClassVar, TypeVar

import yaml
from pydantic import BaseModel, ConfigDict, ValidationError

from crystalreasoner.errors import ConfigError

C = TypeVar("C", bound="StageConfig")


class StageConfig(BaseModel):
    """Base of stage configs: strict keys, immutable after loading."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    #: sub-folder of ``crystalreasoner/presets`` holding this config's named presets
    preset_folder: ClassVar[str] = ""


def preset_dir(folder: str) -> Path:
    """Folder of the named presets shipped with the package."""
    return Path(str(resources.files("crystalreasoner") / "presets" / folder))


def list_presets(folder: str) -> list[str]:
    return sorted(p.stem for p in preset_dir(folder).glob("*.yaml"))


def _set_dotted(values: dict[str, Any], key: str, value: Any) -> None:
    """``model.hidden_size=256`` sets a nested key, merging into what the file already gave; a
    mapping merges into the file's mapping too (``trl_args: {max_steps: 2}`` keeps its lr)."""
    *parents, leaf = key.split(".")
    for parent in parents:
        values = values.setdefault(parent, {})
        if not isinstance(values, dict):
            raise ConfigError(f"cannot set {key!r}: {parent!r} is not a mapping")
    if isinstance(value, dict) and isinstance(values.get(leaf), dict):
        for name, inner in value.items():
            _set_dotted(values[leaf], name, inner)
    else:
        values[leaf] = value


def load_config(
    cls: type[C],
    preset_or_path: str | Path | None = None,
    overrides: dict[str, Any] | None = None,
) -> C:
    """Build ``cls`` from a preset name or a YAML file, then apply ``overrides``.

    Raises
    ------
    ConfigError
        Unknown preset, unreadable file, unknown key or a value of the wrong type.
    """
    folder = cls.preset_folder
    values: dict[str, Any] = {}
    if preset_or_path is not None:
        path = Path(preset_or_path)
        if path.suffix not in (".yaml", ".yml"):  # a name, dots allowed (qwen2.5-3b-paper)
            path = preset_dir(folder) / f"{preset_or_path}.yaml"
            if not path.is_file():
                raise ConfigError(
                    f"unknown {cls.__name__} preset {str(preset_or_path)!r}; "
                    f"known presets: {', '.join(list_presets(folder))}, or give a YAML file path"
                )
        try:
            values = yaml.safe_load(path.read_text()) or {}
        except (OSError, yaml.YAMLError) as exc:
            raise ConfigError(f"cannot read config file {path}: {exc}") from exc
        if not isinstance(values, dict):
            raise ConfigError(f"config file {path} must hold a mapping, got {type(values).__name__}")
    for key, value in (overrides or {}).items():
        _set_dotted(values, key, value)
    try:
        return cls(**values)
    except ValidationError as exc:
        raise ConfigError(f"invalid {cls.__name__} ({preset_or_path or 'defaults'}): {exc}") from exc

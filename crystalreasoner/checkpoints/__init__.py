"""Checkpoints shipped with the package (safetensors + tokenizer + model card), trained by our
own SFT flow, so the demo and users start from a model that has learnt something."""

from importlib import resources
from pathlib import Path

from crystalreasoner.errors import ArtifactNotFoundError


def shipped_checkpoint(name: str) -> Path:
    """Folder of a shipped checkpoint, e.g. ``tiny-cpu``."""
    folder = Path(str(resources.files("crystalreasoner.checkpoints") / name))
    if not (folder / "model.safetensors").exists():
        known = sorted(p.name for p in folder.parent.iterdir() if (p / "model.safetensors").exists())
        raise ArtifactNotFoundError(f"no shipped checkpoint {name!r}; shipped: {', '.join(known) or 'none'}")
    return folder

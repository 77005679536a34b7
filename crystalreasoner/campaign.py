"""A discovery campaign: one config for every stage, and the report that closes it.

The stages themselves live in their modules; this file only says which presets a campaign
chains and how its report is written (Markdown with plots: training and reward curves, the
metrics table, and pictures of the best candidates).
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any, ClassVar, Literal

from crystalreasoner.config import StageConfig


class CampaignConfig(StageConfig):
    """Everything a campaign run needs; presets in ``presets/campaign`` (quick, paper)."""

    preset_folder: ClassVar[str] = "campaign"
    dataset: str = "mp20-mini"
    max_atoms: int = 20
    sft_preset: str = "tiny-cpu"
    retrain: bool = False  # False: start from the shipped checkpoint of ``sft_preset``
    sft_overrides: dict[str, Any] = {}
    traces_overrides: dict[str, Any] = {}  # on top of the SFT preset's traces (prompts, RL data)
    rl_preset: str | None = "tiny-cpu"  # None: no RL stage
    rl_overrides: dict[str, Any] = {}
    split: str = "val"
    n_prompts: int | None = 16
    n_samples: int = 4
    generate_overrides: dict[str, Any] = {}
    evaluate_preset: str = "full"
    evaluate_overrides: dict[str, Any] = {}
    validate_preset: str = "default"
    validate_overrides: dict[str, Any] = {}
    shards: int = 2  # MLIP relaxations of the evaluation split across task-runner workers
    task_runner: Literal["threads", "dask"] = "threads"
    dask_address: str | None = None  # an existing Dask scheduler; None: a local cluster
    dask_workers: int = 2
    store: str | None = None


def _training_curve(log_history: list[dict], out: Path) -> Path | None:
    import matplotlib.pyplot as plt

    train = [(h["step"], h["loss"]) for h in log_history if "loss" in h]
    evaluation = [(h["step"], h["eval_loss"]) for h in log_history if "eval_loss" in h]
    if not train:
        return None
    fig, ax = plt.subplots(figsize=(5, 3.2))
    ax.plot(*zip(*train), label="train")
    if evaluation:
        ax.plot(*zip(*evaluation), "o-", label="validation")
    ax.set(xlabel="step", ylabel="loss", title="SFT")
    ax.legend()
    return _save(fig, out / "sft_curve.png")


def _reward_curve(reward_terms: list[dict], out: Path) -> Path | None:
    import matplotlib.pyplot as plt

    if not reward_terms:
        return None
    fig, ax = plt.subplots(figsize=(5, 3.2))
    steps = range(1, len(reward_terms) + 1)
    ax.plot(steps, [r["reward"] for r in reward_terms], label="mean reward")
    for name in ("parsed/mean", "structurally_valid/mean", "composition_match/mean"):
        ax.plot(steps, [r.get(name, 0) for r in reward_terms], "--", label=name.split("/")[0])
    ax.set(xlabel="reward batch", ylabel="value", title="GRPO")
    ax.legend(fontsize=7)
    return _save(fig, out / "reward_curve.png")


def _save(fig, path: Path) -> Path:
    import matplotlib.pyplot as plt

    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path


def _structure_picture(structure_cif: Path, out: Path) -> Path:
    from ase.io import read, write

    atoms = read(structure_cif)
    path = out / f"{structure_cif.stem}.png"
    write(path, atoms * (2, 2, 2), rotation="10x,20y")
    return path


def write_campaign_report(
    out: Path,
    stages: dict[str, dict[str, Any]],
    checkpoint_dir: Path | None,
    rl_dir: Path | None,
    evaluation_summary: dict[str, Any],
    validation_dir: Path | None,
    validation_summary: dict[str, Any] | None,
) -> Path:
    """``report.md`` with the stage table, curves, metrics table and the best candidates."""
    import matplotlib

    matplotlib.use("Agg")
    from crystalreasoner.evaluation.report import markdown_table

    out.mkdir(parents=True, exist_ok=True)
    lines = ["# Campaign report", "", "| stage | artifact | seconds |", "|---|---|---|"]
    lines += [f"| {name} | `{s.get('artifact')}` | {s.get('seconds', 0):.0f} |" for name, s in stages.items()]
    lines.append("")
    log = checkpoint_dir / "log_history.json" if checkpoint_dir else None
    if log and log.exists() and (curve := _training_curve(json.loads(log.read_text()), out)):
        lines += [f"![SFT loss]({curve.name})", ""]
    terms = rl_dir / "reward_terms.jsonl" if rl_dir else None
    if terms and terms.exists():
        rows = [json.loads(line) for line in terms.read_text().splitlines()]
        if curve := _reward_curve(rows, out):
            lines += [f"![GRPO reward]({curve.name})", ""]
    lines += ["## Metrics of the generated batch", "", markdown_table(evaluation_summary), ""]
    if validation_summary and validation_dir:
        lines += ["## Best candidates (atomate2 relaxation)", "",
                  "| candidate | formula | E_hull (eV/atom) | atomate2 job |", "|---|---|---|---|"]
        for r in validation_summary["records"]:
            e_hull = r["e_above_hull_eV_per_atom"]
            lines.append(f"| {r['candidate']} | {r['formula']} | "
                         f"{'-' if e_hull is None else f'{e_hull:.3f}'} | `{r['job_uuid']}` |")
        lines.append("")
        cifs = [validation_dir / "export" / "cifs" / f"candidate-{r['candidate']}.cif" for r in validation_summary["records"]]
        for cif in [c for c in cifs if c.exists()][:4]:  # the best four, in rank order
            lines.append(f"![{cif.stem}]({_structure_picture(cif, out).name})")
        lines += ["", f"DFT: {validation_summary['dft']['message']}", ""]
    report = out / "report.md"
    report.write_text("\n".join(lines))
    return report

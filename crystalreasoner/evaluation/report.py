"""The evaluation report: the metrics table in Markdown and the three diagnostic plots."""

from __future__ import annotations

from collections import Counter, defaultdict
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from crystalreasoner.generation.stage import GeneratedSample

#: column order of the paper's table (SPEC §6/§7); metrics a batch lacks are left out
TABLE_COLUMNS = (
    "parsed", "structurally_valid", "smact_valid", "composition_match", "spacegroup_match",
    "unique", "novel", "stable", "sun", "trace_formula_match", "trace_spacegroup",
    "trace_crystal_system", "trace_composition", "trace_composition_overlap", "trace_spacegroup_and_composition",
    "trace_orbits",
    "trace_volume", "trace_coordination",
)


def metric_rows(table: dict[str, Any]) -> list[dict[str, Any]]:
    """The 0/1 metrics of a summary as rows (for Prefect table artifacts and terminals)."""
    return [
        {"metric": name, "mean %": round(v["mean"], 1), "SE": round(v["stderr"], 1)}
        for name, v in table.items()
        if isinstance(v, dict) and "stderr" in v
    ]


def markdown_table(table: dict[str, Any]) -> str:
    """One row per metric: per-prompt mean ± standard error (%), then E_hull statistics."""
    lines = ["| metric | % (mean ± s.e. over prompts) |", "|---|---|"]
    for name in TABLE_COLUMNS:
        if name in table:
            lines.append(f"| {name} | {table[name]['mean']:.1f} ± {table[name]['stderr']:.1f} |")
    if "e_above_hull" in table:
        e_hull = table["e_above_hull"]
        lines.append(
            f"| E_hull (eV/atom) | mean {e_hull['mean']:.3f}, median {e_hull['median']:.3f}, "
            f"n = {e_hull['n']}, sparse systems {e_hull['sparse']} |"
        )
    if table.get("failures"):
        lines.append(f"| failures by stage | {table['failures']} |")
    return "\n".join(lines) + "\n"


def _save(fig, path: Path) -> None:
    import matplotlib.pyplot as plt

    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def _plots(rows: Sequence, samples: Sequence[GeneratedSample], out: Path) -> list[Path]:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from pymatgen.core import Structure

    from crystalreasoner.evaluation.checks import spacegroup_number

    paths = []
    e_hull = [r.e_above_hull for r in rows if r.e_above_hull is not None]
    fig, ax = plt.subplots(figsize=(5, 3.5))
    ax.hist(e_hull, bins=40)
    ax.axvline(0.1, color="k", linestyle="--", label="stable < 0.1")
    ax.set(xlabel="E_hull (eV/atom)", ylabel="samples", title=f"E_hull of {len(e_hull)} relaxed samples")
    ax.legend()
    paths.append(out / "e_hull_histogram.png")
    _save(fig, paths[-1])

    by_atoms: dict[int, list[int]] = defaultdict(list)
    for row, sample in zip(rows, samples):
        if sample.structure is not None:
            by_atoms[len(sample.structure["sites"])].append(row.metrics.get("structurally_valid", 0))
    sizes = sorted(by_atoms)
    fig, ax = plt.subplots(figsize=(5, 3.5))
    ax.bar(sizes, [100 * sum(by_atoms[n]) / len(by_atoms[n]) for n in sizes])
    ax.set(xlabel="atoms in the cell", ylabel="structurally valid (%)", title="validity by atom count")
    paths.append(out / "validity_by_atoms.png")
    _save(fig, paths[-1])

    pairs = Counter()
    for sample in samples:
        wanted = sample.targets.get("spacegroup_number")
        if sample.task == "space_group" and wanted and sample.structure is not None:
            pairs[(wanted, spacegroup_number(Structure.from_dict(sample.structure)) or 0)] += 1
    if pairs:
        groups = sorted({g for pair in pairs for g in pair})
        index = {g: i for i, g in enumerate(groups)}
        grid = [[0] * len(groups) for _ in groups]
        for (wanted, got), n in pairs.items():
            grid[index[wanted]][index[got]] += n
        fig, ax = plt.subplots(figsize=(6, 5))
        ax.imshow(grid, cmap="Blues")
        ticks = range(len(groups))
        ax.set_xticks(ticks, [str(g) for g in groups], rotation=90, fontsize=6)
        ax.set_yticks(ticks, [str(g) for g in groups], fontsize=6)
        ax.set(xlabel="generated space group (0: none)", ylabel="requested", title="space-group confusion")
        paths.append(out / "spacegroup_confusion.png")
        _save(fig, paths[-1])
    return paths


def write_report(rows: Sequence, samples: Sequence[GeneratedSample], table: dict, out: Path) -> list[Path]:
    """``report.md`` with the table and the plots; returns the files written."""
    plots = _plots(rows, samples, out)
    report = out / "report.md"
    report.write_text(
        "# Evaluation\n\n" + markdown_table(table) + "\n"
        + "".join(f"![{p.stem}]({p.name})\n\n" for p in plots)
    )
    return [report, *plots]

"""Paired per-prompt difference of evaluation metrics between two models, pooled over seeds.

One sampling seed of 123 prompts x 4 leaves a rare metric (issue 5's trace space group and
composition, ~2 %) within its noise; this pools each model's evaluated generations (e.g.
sampling seeds 0-3 on the same prompts), takes every prompt's mean per model, and prints the
mean ± standard error of the per-prompt differences, as `crysreas compare` does for the reward.

    .venv/bin/python bench/paired_metric.py --before GEN [GEN ...] --after GEN [GEN ...]

Each GEN is a generation artifact id (a unique prefix is enough) that has been evaluated
(`crysreas evaluate GEN`); its latest evaluation is used. A metric a sample lacks counts 0, as
in the report (an unparsed sample does not hold its trace's space group).
"""

from __future__ import annotations

import argparse
from collections import defaultdict

from crystalreasoner.evaluation.metrics import mean_and_stderr
from crystalreasoner.evaluation.report import TABLE_COLUMNS
from crystalreasoner.evaluation.stage import generation_samples
from crystalreasoner.stores import open_registry
from crystalreasoner.validation.ranking import load_evaluation_rows

DEFAULT_METRICS = [
    "parsed", "structurally_valid", "smact_valid", "composition_match",
    "trace_spacegroup", "trace_composition", "trace_spacegroup_and_composition",
]


def _unique(registry, kind: str, prefix: str):
    found = [d for d in registry.find(kind=kind) if d.artifact_id.startswith(prefix)]
    if len(found) != 1:
        raise SystemExit(f"{len(found)} {kind} artifacts start with {prefix!r}: give a longer id")
    return found[0]


def per_prompt_means(registry, generation_prefixes: list[str], metrics: list[str]) -> dict[str, dict[str, float]]:
    """{metric: {prompt text: mean over all of its samples in these generations}}."""
    pooled: dict[str, dict[str, list[float]]] = {m: defaultdict(list) for m in metrics}
    for prefix in generation_prefixes:
        generation = _unique(registry, "generation", prefix)
        evaluation = registry.latest("evaluation", parents=generation.artifact_id)
        if evaluation is None:
            raise SystemExit(f"generation {generation.artifact_id} has no evaluation: crysreas evaluate it first")
        samples = generation_samples(registry, generation.artifact_id)
        prompts = {(s.prompt_index, s.sample_index): s.prompt for s in samples}
        for row in load_evaluation_rows(evaluation.location):
            prompt = prompts[(row["prompt_index"], row["sample_index"])]
            for metric in metrics:
                pooled[metric][prompt].append(row["metrics"].get(metric, 0))
    return {m: {p: sum(v) / len(v) for p, v in by_prompt.items()} for m, by_prompt in pooled.items()}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--before", nargs="+", required=True, help="generation ids of the first model")
    parser.add_argument("--after", nargs="+", required=True, help="generation ids of the second model")
    parser.add_argument("--metrics", nargs="+", default=DEFAULT_METRICS, choices=TABLE_COLUMNS)
    parser.add_argument("--store", default=None)
    args = parser.parse_args()
    with open_registry(args.store) as registry:
        before = per_prompt_means(registry, args.before, args.metrics)
        after = per_prompt_means(registry, args.after, args.metrics)
    print(f"| metric, % | before ({len(args.before)} generations) | after ({len(args.after)}) | paired difference | prompts |")
    print("|---|---|---|---|---|")
    for metric in args.metrics:
        prompts = sorted(set(before[metric]) & set(after[metric]))
        diffs = [after[metric][p] - before[metric][p] for p in prompts]
        mean, stderr = mean_and_stderr(diffs)
        b = sum(before[metric][p] for p in prompts) / len(prompts)
        a = sum(after[metric][p] for p in prompts) / len(prompts)
        print(f"| {metric} | {100 * b:.1f} | {100 * a:.1f} | {100 * mean:+.1f} ± {100 * stderr:.1f} | {len(prompts)} |")


if __name__ == "__main__":
    main()

"""The ``crysreas`` command line. Heavy imports stay inside commands so ``--help`` is instant."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

app = typer.Typer(
    help="CrystalReasoner: generate crystal structures with a model that reasons first.\n\n"
    "Stages: data -> traces -> sft -> rl -> generate -> evaluate -> validate. "
    "Every artifact is registered in the store chosen by --store (stores/<name>.yaml) "
    "or $CRYSREAS_STORE; `crysreas artifacts` lists them.",
    no_args_is_help=True,
    pretty_exceptions_show_locals=False,
)
data_app = typer.Typer(help="Inspect the bundled datasets and load your own.", no_args_is_help=True)
app.add_typer(data_app, name="data")

StoreOption = Annotated[
    str | None,
    typer.Option(help="Store spec: a name in stores/ (default, memory, mongo) or a YAML path."),
]


def _parse_overrides(pairs: list[str]) -> dict:
    """``key=value`` pairs; values are read as YAML, so numbers and lists keep their types."""
    import yaml

    from crystalreasoner.errors import ConfigError

    overrides = {}
    for pair in pairs:
        key, sep, value = pair.partition("=")
        if not sep:
            raise ConfigError(f"--set expects key=value, got {pair!r}")
        overrides[key.strip()] = yaml.safe_load(value)
    return overrides


def _fail(exc: Exception) -> typer.Exit:
    from rich.console import Console

    Console(stderr=True).print(f"[bold red]error:[/] {exc}")
    return typer.Exit(code=2)


@data_app.command("list")
def data_list() -> None:
    """List the named datasets."""
    from rich.console import Console
    from rich.table import Table

    from crystalreasoner.data import DATASETS

    table = Table("name", "description")
    for name, spec in DATASETS.items():
        table.add_row(name, spec.description)
    Console().print(table)


@data_app.command("show")
def data_show(
    dataset: Annotated[str, typer.Argument(help="A dataset name or a path (CDVAE CSV folder, CIF folder, JSON, extxyz).")],
    max_atoms: Annotated[int, typer.Option(help="Skip structures with more atoms (recorded).")] = 20,
    skipped: Annotated[bool, typer.Option(help="Print every skipped row with its reason.")] = False,
) -> None:
    """Load a dataset and print its splits, element counts and skipped rows."""
    from rich.console import Console

    from crystalreasoner.data import load_dataset
    from crystalreasoner.errors import CrystalReasonerError

    console = Console()
    try:
        bundle = load_dataset(dataset, max_atoms=max_atoms)
    except CrystalReasonerError as exc:
        raise _fail(exc) from exc
    console.print(bundle.summary())
    console.print(f"fingerprint {bundle.fingerprint()}")
    if skipped:
        for row in bundle.skipped:
            console.print(f"{row.source} {row.row}: {row.reason}")


@app.command()
def traces(
    dataset: Annotated[str, typer.Option(help="Dataset name or path.")] = "mp20-mini",
    preset: Annotated[str, typer.Option(help="Trace preset name or YAML file.")] = "default",
    set_: Annotated[list[str], typer.Option("--set", help="Override a config key: --set describer=robocrys")] = [],  # noqa: B006
    max_atoms: Annotated[int, typer.Option(help="Skip structures with more atoms (recorded).")] = 20,
    store: StoreOption = None,
    orchestrate: Annotated[bool, typer.Option(help="Run as a Prefect flow (retries, UI, caching).")] = False,
) -> None:
    """Build the thinking-trace dataset (SPEC §3); analyses are cached by structure hash."""
    from rich.console import Console

    from crystalreasoner.config import load_config
    from crystalreasoner.errors import CrystalReasonerError
    from crystalreasoner.traces.builder import TraceConfig

    console = Console()
    try:
        config = load_config(TraceConfig, preset, _parse_overrides(set_))
        if orchestrate:
            from flows.traces import traces_flow

            artifact_id = traces_flow(dataset, config.model_dump(mode="json"), max_atoms, store)
            doc = _registry(store).get(artifact_id)
        else:
            doc = _run_traces(config, dataset, max_atoms, store)
    except CrystalReasonerError as exc:
        raise _fail(exc) from exc
    console.print(f"[green]traces[/] {doc.artifact_id} -> {doc.location}")
    console.print(doc.summary)


def _registry(store: str | None):
    from crystalreasoner.stores import open_registry

    registry = open_registry(store)
    registry.connect()
    return registry


def _run_traces(config, dataset: str, max_atoms: int, store: str | None):
    from rich.progress import Progress

    from crystalreasoner.traces.stage import TraceStage

    with _registry(store) as registry, Progress(transient=False) as bar:
        task = bar.add_task("analysing structures", total=None)
        return TraceStage(config).run(
            registry,
            dataset,
            max_atoms=max_atoms,
            progress=lambda done, total: bar.update(task, completed=done, total=total),
        )


@app.command()
def sft(
    preset: Annotated[str, typer.Option(help="SFT preset (tiny-quick, tiny-cpu, qwen2.5-3b-paper) or YAML file.")] = "tiny-quick",
    set_: Annotated[list[str], typer.Option("--set", help="Override a key: --set model.pretrained=/models/qwen")] = [],  # noqa: B006
    traces_id: Annotated[str | None, typer.Option("--traces", help="Use this trace-set artifact instead of building one.")] = None,
    resume: Annotated[bool, typer.Option(help="Resume from the run's last checkpoint if there is one.")] = True,
    run_dir: Annotated[Path | None, typer.Option(help="Run folder (default: named by config and traces).")] = None,
    store: StoreOption = None,
) -> None:
    """Supervised fine-tuning on thinking traces (TRL SFTTrainer); resumes interrupted runs."""
    from rich.console import Console

    from crystalreasoner.config import load_config
    from crystalreasoner.errors import CrystalReasonerError
    from crystalreasoner.traces.builder import TraceConfig
    from crystalreasoner.training.models import check_model_source
    from crystalreasoner.training.sft import SFTConfig, SFTStage

    console = Console()
    try:
        config = load_config(SFTConfig, preset, _parse_overrides(set_))
        check_model_source(config.model)
        if traces_id is None:
            trace_config = load_config(TraceConfig, config.traces_preset)
            traces_id = _run_traces(trace_config, config.dataset, 20, store).artifact_id
        with _registry(store) as registry:
            doc = SFTStage(config).run(registry, traces_id, run_dir=run_dir, resume=resume)
    except CrystalReasonerError as exc:
        raise _fail(exc) from exc
    console.print(f"[green]checkpoint[/] {doc.artifact_id} -> {doc.location}")
    console.print(doc.summary)


@app.command()
def rl(
    preset: Annotated[str, typer.Option(help="RL preset (tiny-cpu, tiny-cpu-trace, tiny-cpu-space-group, ...) or YAML file.")] = "tiny-cpu",
    set_: Annotated[list[str], typer.Option("--set", help="Override a key: --set reward.trace_consistency=1")] = [],  # noqa: B006
    checkpoint: Annotated[str | None, typer.Option(help="SFT checkpoint artifact id or folder (default: latest).")] = None,
    traces_id: Annotated[str | None, typer.Option("--traces", help="Prompts from this trace set (default: the checkpoint's).")] = None,
    resume: Annotated[bool, typer.Option(help="Resume from the run's last checkpoint if there is one.")] = True,
    store: StoreOption = None,
) -> None:
    """GRPO on the physics reward (TRL GRPOTrainer, our sampler); every reward term is logged."""
    from rich.console import Console

    from crystalreasoner.config import load_config
    from crystalreasoner.errors import CrystalReasonerError
    from crystalreasoner.rl.grpo import RLConfig, RLStage

    console = Console()
    try:
        config = load_config(RLConfig, preset, _parse_overrides(set_))
        with _registry(store) as registry:
            start = _checkpoint_id(registry, checkpoint)
            doc = RLStage(config).run(registry, start, traces_id=traces_id, resume=resume)
    except CrystalReasonerError as exc:
        raise _fail(exc) from exc
    console.print(f"[green]checkpoint[/] {doc.artifact_id} -> {doc.location}")
    console.print(doc.summary)


@app.command()
def distil(
    generation_ids: Annotated[list[str], typer.Argument(help="Generations of the training prompts (generate --split train).")],
    originals: Annotated[int, typer.Option(help="Original training records kept beside the passing samples.")] = 1000,
    seed: Annotated[int, typer.Option(help="Which originals are drawn.")] = 0,
    traces_id: Annotated[str | None, typer.Option("--traces", help="The trace set whose training split is extended (default: the generation's).")] = None,
    store: StoreOption = None,
) -> None:
    """A trace set of the generations' samples that pass the checks (parsed, structurally valid,
    SMACT, composition), for a short SFT from the checkpoint that wrote them; the unreadable ones
    whose block departs from the written form go to its ``rejected`` split."""
    from rich.console import Console

    from crystalreasoner.errors import CrystalReasonerError
    from crystalreasoner.training.distill import distil as distil_set

    console = Console()
    try:
        with _registry(store) as registry:
            doc = distil_set(registry, generation_ids, originals=originals, seed=seed, traces_id=traces_id)
    except CrystalReasonerError as exc:
        raise _fail(exc) from exc
    console.print(f"[green]traces[/] {doc.artifact_id} -> {doc.location}")
    console.print(doc.summary)


@app.command()
def compare(
    checkpoints: Annotated[list[str], typer.Argument(help="Checkpoint ids or folders; the first is the baseline.")],
    preset: Annotated[str, typer.Option(help="RL preset whose reward and task to use.")] = "tiny-cpu",
    set_: Annotated[list[str], typer.Option("--set", help="Override a key of the RL preset.")] = [],  # noqa: B006
    redraw_close_atoms: Annotated[bool, typer.Option(help="Sample every checkpoint with the validity redraws (as generate).")] = False,
    constrained: Annotated[bool, typer.Option(help="Sample every checkpoint composition-constrained (as generate).")] = False,
    traces_id: Annotated[str | None, typer.Option("--traces", help="Prompts from this trace set (default: the first checkpoint's).")] = None,
    split: Annotated[str, typer.Option(help="Held-out split of the prompts.")] = "val",
    max_prompts: Annotated[int | None, typer.Option(help="Use only the first N prompts.")] = 32,
    n: Annotated[int, typer.Option("-n", "--n", help="Samples per prompt.")] = 4,
    seed: Annotated[int, typer.Option(help="Sampling seed, the same for every checkpoint.")] = 0,
    out: Annotated[Path | None, typer.Option(help="Write the comparison here as JSON.")] = None,
    store: StoreOption = None,
) -> None:
    """Paired comparison on held-out prompts: mean reward and the evaluation's columns."""
    import json

    from rich.console import Console
    from rich.table import Table

    from crystalreasoner.config import load_config
    from crystalreasoner.errors import CrystalReasonerError
    from crystalreasoner.generation.stage import GenerateConfig
    from crystalreasoner.rl.compare import COLUMNS, paired_difference, score_checkpoint
    from crystalreasoner.rl.grpo import RLConfig, RLStage

    console = Console()
    try:
        config = load_config(RLConfig, preset, _parse_overrides(set_))
        with _registry(store) as registry:
            ids = [_checkpoint_id(registry, c) for c in checkpoints]
            prompts = RLStage(config.model_copy(update={"max_prompts": max_prompts})).prompts(
                registry, ids[0], traces_id, split
            )
            generate_config = GenerateConfig(
                n_samples=n, seed=seed, redraw_close_atoms=redraw_close_atoms, constrained=constrained
            )
            results = []
            for checkpoint_id in ids:
                with console.status(f"sampling and scoring {checkpoint_id}"):
                    results.append(score_checkpoint(registry, checkpoint_id, prompts, config.reward, generate_config))
    except CrystalReasonerError as exc:
        raise _fail(exc) from exc
    table = Table("metric", *[r["checkpoint"][:8] for r in results],
                  title=f"{len(prompts)} {split} prompts x {n} samples, seed {seed}")
    table.add_row("reward", *[f"{r['reward']['mean']:.3f} ± {r['reward']['stderr']:.3f}" for r in results])
    for name in COLUMNS:
        if name in results[0]:
            table.add_row(f"{name} %", *[f"{r[name]['mean']:.1f} ± {r[name]['stderr']:.1f}" for r in results])
    table.add_row("relaxed samples", *[str(r["relaxed"]) for r in results])
    table.add_row("E_hull mean (eV/atom)", *[f"{r['e_above_hull_mean']:.3f}" if r["e_above_hull_mean"] is not None else "-" for r in results])
    table.add_row("stable (< 0.1) %", *[f"{100 * r['stable_share']:.1f}" for r in results])
    if config.reward.specialist in ("elasticity", "thermal_expansion"):
        table.add_row("property target hit %", *[f"{100 * r['property_hit_share']:.1f}" for r in results])
    console.print(table)
    for result in results[1:]:
        diff = paired_difference(results[0], result)
        console.print(f"paired reward difference {result['checkpoint'][:8]} - {results[0]['checkpoint'][:8]}: "
                      f"{diff['mean']:+.3f} ± {diff['stderr']:.3f} over {diff['prompts']} prompts")
    if out:
        out.write_text(json.dumps(results, indent=1))


def _checkpoint_id(registry, checkpoint: str | None) -> str:
    """An artifact id, a checkpoint folder on disk (registered on first use), or the latest."""
    from crystalreasoner.errors import ArtifactNotFoundError
    from crystalreasoner.stores import ArtifactKind
    from crystalreasoner.stores.registry import register_checkpoint_folder

    if checkpoint is None:
        doc = registry.latest(ArtifactKind.CHECKPOINT)
        if doc is None:
            raise ArtifactNotFoundError("no checkpoint in the store: run `crysreas sft` or pass --checkpoint DIR")
        return doc.artifact_id
    path = Path(checkpoint)
    if path.is_dir():
        return register_checkpoint_folder(registry, path, f"checkpoint {path.name}")
    return registry.get(checkpoint).artifact_id


@app.command()
def generate(
    prompt: Annotated[str | None, typer.Argument(help='A request, e.g. "BaTiO3 in space group 221, stable".')] = None,
    n: Annotated[int, typer.Option("-n", "--n", help="Samples per prompt.")] = 16,
    checkpoint: Annotated[str | None, typer.Option(help="Checkpoint artifact id or folder (default: latest).")] = None,
    split: Annotated[str | None, typer.Option(help="Instead of PROMPT: the held-out prompts of this split (val, test).")] = None,
    max_prompts: Annotated[int | None, typer.Option(help="Use only the first N prompts of --split.")] = None,
    traces_id: Annotated[str | None, typer.Option("--traces", help="--split prompts from this trace set (default: the checkpoint's).")] = None,
    constrained: Annotated[bool, typer.Option(help="Composition-constrained decoding.")] = False,
    redraw_close_atoms: Annotated[bool, typer.Option(help="Draw again an atom line closer than 0.5 Å to an earlier atom or one that cannot be read, and an angle line that makes no cell (composition unconstrained).")] = False,
    backend: Annotated[str, typer.Option(help="continuous (default), hf, or vllm (GPU).")] = "continuous",
    device: Annotated[str, typer.Option(help="cpu, or cuda for a GPU (continuous and hf back ends).")] = "cpu",
    dtype: Annotated[str, typer.Option(help="float32, bfloat16 or float16 weights and KV cache.")] = "float32",
    seed: Annotated[int, typer.Option(help="Sampling seed.")] = 0,
    out: Annotated[Path | None, typer.Option(help="Write the parsed structures here as CIF files.")] = None,
    store: StoreOption = None,
) -> None:
    """Sample structures (T=1, top-k 50, top-p 0.7); every sample is kept in a generation artifact."""
    from pymatgen.core import Structure
    from rich.console import Console
    from rich.table import Table

    from crystalreasoner.errors import ConfigError, CrystalReasonerError
    from crystalreasoner.generation.stage import (
        GenerateConfig,
        GenerateStage,
        PromptSpec,
        load_samples,
        prompt_trace_set,
        prompts_from_traces,
    )

    console = Console()
    try:
        with _registry(store) as registry:
            checkpoint_id = _checkpoint_id(registry, checkpoint)
            parents: list[str] = []  # the prompts' trace set, as the generation flow records it
            if split:
                traces = prompt_trace_set(registry, checkpoint_id, traces_id)
                prompts = prompts_from_traces(traces.location, split)[:max_prompts]
                parents = [traces.artifact_id]
            elif prompt:
                prompts = [PromptSpec(prompt)]
            else:
                raise ConfigError("give a PROMPT or --split")
            config = GenerateConfig(
                n_samples=n, constrained=constrained, redraw_close_atoms=redraw_close_atoms, backend=backend, device=device, dtype=dtype, seed=seed
            )
            name = f"{split} prompts" if split else "generation"
            doc = GenerateStage(config).run(registry, checkpoint_id, prompts, name=name, parents=parents)
    except CrystalReasonerError as exc:
        raise _fail(exc) from exc
    samples = load_samples(Path(doc.location) / "samples.jsonl")
    table = Table("#", "formula", "space group", "atoms", "volume (Å^3)", "status")
    for sample in samples[:50]:
        if sample.structure is None:
            table.add_row(f"{sample.prompt_index}.{sample.sample_index}", "-", "-", "-", "-", sample.parse_error[:60])
            continue
        structure = Structure.from_dict(sample.structure)
        try:
            symbol, number = structure.get_space_group_info(symprec=0.1)
            space_group = f"{symbol} ({number})"
        except Exception:  # spglib fails on degenerate cells: show, don't crash
            space_group = "?"
        table.add_row(f"{sample.prompt_index}.{sample.sample_index}", structure.composition.reduced_formula,
                      space_group, str(len(structure)), f"{structure.volume:.1f}", "parsed")
        if out:
            out.mkdir(parents=True, exist_ok=True)
            structure.to(filename=str(out / f"sample-{sample.prompt_index}-{sample.sample_index}.cif"))
    console.print(table)
    console.print(f"[green]generation[/] {doc.artifact_id}: {doc.summary}")


@app.command()
def evaluate(
    generation_id: Annotated[str, typer.Argument(help="A generation artifact id.")],
    preset: Annotated[str, typer.Option(help="Evaluation preset (cheap, full) or YAML file.")] = "cheap",
    set_: Annotated[list[str], typer.Option("--set", help="Override a config key: --set mlip=sevennet")] = [],  # noqa: B006
    store: StoreOption = None,
) -> None:
    """Score a generation batch: validity, SMACT, composition, trace consistency, uniqueness,
    novelty and (preset full) MLIP relaxation, E_hull and S.U.N.; writes a report with plots."""
    from rich.console import Console

    from crystalreasoner.config import load_config
    from crystalreasoner.errors import CrystalReasonerError
    from crystalreasoner.evaluation.report import markdown_table
    from crystalreasoner.evaluation.stage import EvaluateConfig, evaluate_generation

    console = Console()
    try:
        config = load_config(EvaluateConfig, preset, _parse_overrides(set_))
        with _registry(store) as registry, console.status("evaluating"):
            doc = evaluate_generation(registry, generation_id, config)
    except CrystalReasonerError as exc:
        raise _fail(exc) from exc
    console.print(markdown_table(doc.summary))
    console.print(f"[green]evaluation[/] {doc.artifact_id} -> {doc.location}")


@app.command()
def validate(
    evaluation_id: Annotated[str, typer.Argument(help="An evaluation artifact id.")],
    preset: Annotated[str | None, typer.Option(help="Validation preset or YAML file.")] = "default",
    set_: Annotated[list[str], typer.Option("--set", help="Override a key: --set ranking.top_k=5")] = [],  # noqa: B006
    store: StoreOption = None,
) -> None:
    """Relax the top candidates through atomate2/jobflow (task documents in the store), prepare DFT."""
    from rich.console import Console
    from rich.table import Table

    from crystalreasoner.config import load_config
    from crystalreasoner.errors import CrystalReasonerError
    from crystalreasoner.validation.stage import ValidationConfig, validate_evaluation

    console = Console()
    try:
        config = load_config(ValidationConfig, preset, _parse_overrides(set_))
        with _registry(store) as registry:
            with console.status("relaxing candidates through atomate2"):
                doc = validate_evaluation(registry, evaluation_id, config)
    except CrystalReasonerError as exc:
        raise _fail(exc) from exc
    view = Table("candidate", "formula", "force field", "E (eV)", "E_hull (eV/atom)", "atomate2 job")
    for r in doc.summary["records"]:
        e_hull = r["e_above_hull_eV_per_atom"]
        view.add_row(r["candidate"], r["formula"], str(r["force_field"]),
                     f"{r['energy_eV']:.3f}" if r["energy_eV"] is not None else "-",
                     f"{e_hull:.3f}" if e_hull is not None else "-", r["job_uuid"])
    console.print(view)
    console.print(doc.summary["dft"]["message"])
    console.print(f"[green]validation[/] {doc.artifact_id} -> {doc.location}")


@app.command()
def export(
    validation_id: Annotated[str, typer.Argument(help="A validation artifact id.")],
    out: Annotated[Path, typer.Option(help="Folder for the CIFs, structures.extxyz and candidates.csv.")] = Path("export"),
    store: StoreOption = None,
) -> None:
    """Copy a validation's structures (CIF, extxyz) and table (CSV, Parquet) out of the store."""
    from rich.console import Console

    from crystalreasoner.errors import CrystalReasonerError

    try:
        with _registry(store) as registry:
            doc = registry.get(validation_id)
            names = [f.name for f in doc.files if f.name.startswith("export/")]
            for name in names:
                registry.fetch_file(validation_id, name, out)
    except CrystalReasonerError as exc:
        raise _fail(exc) from exc
    Console().print(f"[green]exported[/] {len(names)} files to {out / 'export'}")


@app.command()
def artifacts(
    kind: Annotated[str | None, typer.Option(help="Only this kind (dataset, traces, ...).")] = None,
    store: StoreOption = None,
) -> None:
    """List registered artifacts, newest first."""
    from rich.console import Console
    from rich.table import Table

    table = Table("artifact_id", "kind", "name", "created (UTC)", "parents")
    with _registry(store) as registry:
        for doc in registry.find(kind=kind):
            table.add_row(
                doc.artifact_id, str(doc.kind), doc.name,
                f"{doc.created_at:%Y-%m-%d %H:%M}", str(len(doc.parents)),
            )
    Console().print(table)


@app.command()
def lineage(
    artifact_id: Annotated[str, typer.Argument(help="Any artifact id, or an atomate2 job uuid.")],
    store: StoreOption = None,
) -> None:
    """Show an artifact and every artifact it was made from.

    An atomate2 job uuid works too: its task document, then the validation that ran it and on.
    """
    from rich.console import Console

    from crystalreasoner.errors import CrystalReasonerError
    from crystalreasoner.validation.stage import task_lineage

    console = Console()
    with _registry(store) as registry:
        try:
            if registry.exists(artifact_id):
                docs = [registry.get(artifact_id), *registry.lineage(artifact_id)]
            else:
                task, docs = task_lineage(registry, artifact_id)
                console.print("atomate2    " + "  ".join(f"{k}={v}" for k, v in task.items()))
        except CrystalReasonerError as exc:
            raise _fail(exc) from exc
    for doc in docs:
        console.print(f"{doc.kind:<10} {doc.artifact_id}  {doc.name}  <- {', '.join(doc.parents) or '-'}")


@app.command()
def campaign(
    preset: Annotated[str, typer.Option(help="Campaign preset (quick, retrain) or YAML file.")] = "quick",
    set_: Annotated[list[str], typer.Option("--set", help="Override a key: --set n_prompts=64")] = [],  # noqa: B006
    retrain: Annotated[bool, typer.Option(help="Train the tiny-cpu model from scratch instead of the shipped one.")] = False,
    store: StoreOption = None,
) -> None:
    """Run (or resume) a discovery campaign as Prefect flows; finished stages are skipped."""
    from rich.console import Console
    from rich.table import Table

    from crystalreasoner.errors import CrystalReasonerError
    from crystalreasoner.evaluation.report import metric_rows
    from flows.campaign import campaign_flow

    console = Console()
    overrides = _parse_overrides(set_)
    if retrain:
        overrides["retrain"] = True
    if store:
        overrides["store"] = store
    try:
        result = campaign_flow(preset, overrides)
        with _registry(store) as registry:
            evaluation = registry.get(result["ids"]["evaluation"]).summary
            validation = registry.get(result["ids"]["validation"]).summary if "validation" in result["ids"] else None
            report = registry.get(result["ids"]["report"])
    except CrystalReasonerError as exc:
        raise _fail(exc) from exc
    stages = Table("stage", "seconds", "artifact", title="campaign stages")
    for name, info in result["stages"].items():
        stages.add_row(name, f"{info['seconds']:.0f}", info["artifact"])
    metrics = Table("metric", "mean %", "± SE", title="generated batch")
    for row in metric_rows(evaluation):
        metrics.add_row(row["metric"], f"{row['mean %']:.1f}", f"{row['SE']:.1f}")
    console.print(stages, metrics)
    if validation:
        best = Table("candidate", "formula", "E_hull (eV/atom)", title="best candidates (atomate2 CHGNet relaxation)")
        for r in validation["records"]:
            e_hull = r["e_above_hull_eV_per_atom"]
            best.add_row(r["candidate"], r["formula"], "-" if e_hull is None else f"{e_hull:.3f}")
        console.print(best)
    console.print(f"[green]report[/] {report.location}/report.md")


@app.command()
def demo(store: StoreOption = None) -> None:
    """The main job: the quick campaign on the bundled data, shipped tiny-cpu model + short RL."""
    campaign(preset="quick", set_=[], retrain=False, store=store)


def main() -> None:
    app()

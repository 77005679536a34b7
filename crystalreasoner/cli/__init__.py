"""The ``crysreas`` command line. Heavy imports stay inside commands so ``--help`` is instant."""

from __future__ import annotations

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
    store: StoreOption = None,
) -> None:
    """Supervised fine-tuning on thinking traces (TRL SFTTrainer); resumes interrupted runs."""
    from rich.console import Console

    from crystalreasoner.config import load_config
    from crystalreasoner.errors import CrystalReasonerError
    from crystalreasoner.traces.builder import TraceConfig
    from crystalreasoner.training.sft import SFTConfig, SFTStage

    console = Console()
    try:
        config = load_config(SFTConfig, preset, _parse_overrides(set_))
        if traces_id is None:
            trace_config = load_config(TraceConfig, config.traces_preset)
            traces_id = _run_traces(trace_config, config.dataset, 20, store).artifact_id
        with _registry(store) as registry:
            doc = SFTStage(config).run(registry, traces_id, resume=resume)
    except CrystalReasonerError as exc:
        raise _fail(exc) from exc
    console.print(f"[green]checkpoint[/] {doc.artifact_id} -> {doc.location}")
    console.print(doc.summary)


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
    artifact_id: Annotated[str, typer.Argument(help="Any artifact id.")],
    store: StoreOption = None,
) -> None:
    """Show an artifact and every artifact it was made from."""
    from rich.console import Console

    from crystalreasoner.errors import CrystalReasonerError

    console = Console()
    with _registry(store) as registry:
        try:
            docs = [registry.get(artifact_id), *registry.lineage(artifact_id)]
        except CrystalReasonerError as exc:
            raise _fail(exc) from exc
    for doc in docs:
        console.print(f"{doc.kind:<10} {doc.artifact_id}  {doc.name}  <- {', '.join(doc.parents) or '-'}")


@app.command()
def demo(
    store: StoreOption = None,
) -> None:
    """The main job: the quick campaign on the bundled data (at this stage: the trace set)."""
    from crystalreasoner.config import load_config
    from crystalreasoner.traces.builder import TraceConfig
    from flows.traces import traces_flow

    config = load_config(TraceConfig, "default")
    artifact_id = traces_flow("mp20-mini", config.model_dump(mode="json"), 20, store)
    with _registry(store) as registry:
        doc = registry.get(artifact_id)
        chain = registry.lineage(artifact_id)
    typer.echo(f"trace set {artifact_id}: {doc.summary}")
    typer.echo(f"files in {doc.location}; lineage: " + " <- ".join(d.kind for d in [doc, *chain]))


def main() -> None:
    app()

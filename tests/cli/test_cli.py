"""The ``crysreas`` commands, through Typer's runner (same code path as the console script)."""

from typer.testing import CliRunner

from crystalreasoner.cli import app
from crystalreasoner.stores import open_registry

runner = CliRunner()


def test_help_lists_the_stages():
    result = runner.invoke(app, ["--help"])
    assert result.exit_code == 0
    for command in ("data", "traces", "artifacts", "lineage", "demo"):
        assert command in result.output


def test_data_list_and_show():
    listed = runner.invoke(app, ["data", "list"])
    assert "mp20-mini" in listed.output and "mp-binary-elastic" in listed.output
    shown = runner.invoke(app, ["data", "show", "mp20-mini"])
    assert shown.exit_code == 0 and "847" in shown.output


def test_traces_twice_reuses_the_cache_and_lineage_shows_the_dataset(tiny_cdvae_dir, crysreas_home):
    args = ["traces", "--dataset", str(tiny_cdvae_dir), "--set", "describer=none"]
    first = runner.invoke(app, args)
    assert first.exit_code == 0, first.output
    assert "'computed': 10" in first.output
    second = runner.invoke(app, args)
    assert "'cache_hits': 10" in second.output and "'computed': 0" in second.output
    artifact_id = second.output.split("traces ", 1)[1].split()[0]
    lineage = runner.invoke(app, ["lineage", artifact_id])
    assert lineage.exit_code == 0 and "dataset" in lineage.output


def test_bad_input_gives_a_clear_error(crysreas_home):
    unknown = runner.invoke(app, ["traces", "--dataset", "no-such-data"])
    assert unknown.exit_code == 2 and "mp20-mini" in unknown.output
    bad_key = runner.invoke(app, ["traces", "--set", "describr=none"])
    assert bad_key.exit_code == 2 and "describr" in bad_key.output


def test_sft_from_a_missing_model_folder_stops_before_building_traces(crysreas_home):
    result = runner.invoke(app, ["sft", "--preset", "qwen2.5-3b-paper"])
    message = " ".join(result.output.split())  # the console wraps long lines
    assert result.exit_code == 2
    assert "'Qwen2.5-3B' is neither a model folder" in message and "--set model.pretrained=" in message
    with open_registry() as registry:
        assert registry.find() == []

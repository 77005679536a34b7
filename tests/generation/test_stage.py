"""The generation stage keeps every sample, parsed or not, and registers the batch."""

from pathlib import Path

import pytest

from crystalreasoner.errors import ConfigError
from crystalreasoner.evaluation.stage import EvaluateConfig, evaluate_generation
from crystalreasoner.generation.stage import GenerateConfig, GenerateStage, PromptSpec, load_samples
from crystalreasoner.hashing import file_sha256
from crystalreasoner.stores import ArtifactRegistry, load_store_spec


@pytest.fixture
def checkpoint_dir(tmp_path, tiny_model, tokenizer):
    folder = tmp_path / "ckpt"
    tiny_model.save_pretrained(folder)
    tokenizer.save_pretrained(folder)
    return folder


@pytest.mark.parametrize(("backend", "dtype"), [("continuous", "float32"), ("hf", "float32"), ("continuous", "bfloat16")])
def test_every_sample_is_kept_with_its_parse_error(checkpoint_dir, crysreas_home, backend, dtype):
    prompts = [PromptSpec("Generate NaCl."), PromptSpec("Design MgIn2 in space group 12.")]
    config = GenerateConfig(n_samples=3, max_new_tokens=12, backend=backend, dtype=dtype)
    with ArtifactRegistry(load_store_spec("memory")) as registry:
        checkpoint_id = registry.register(
            "checkpoint", name="tiny", config={}, files=sorted(checkpoint_dir.iterdir()), location=checkpoint_dir
        ).artifact_id
        doc = GenerateStage(config).run(registry, checkpoint_id, prompts)
        samples = load_samples(Path(doc.location) / "samples.jsonl")
        evaluation = evaluate_generation(registry, doc.artifact_id)
    assert len(samples) == 6 and doc.summary["samples"] == 6
    assert [s.formula for s in samples[:3]] == ["NaCl"] * 3 and samples[3].formula == "MgIn2"
    assert all(s.structure is None and "tag" in s.parse_error for s in samples)  # a random model
    assert all(s.finish_reason in ("stop", "length") and s.n_tokens <= 12 for s in samples)
    assert evaluation.summary["parsed"]["mean"] == 0.0
    assert doc.config["dtype"] == dtype and doc.config["device"] == "cpu"


def test_constrained_decoding_needs_a_formula(checkpoint_dir):
    stage = GenerateStage(GenerateConfig(n_samples=1, max_new_tokens=4, constrained=True))
    with pytest.raises(ConfigError, match="needs a formula"):
        stage.sample(checkpoint_dir, [PromptSpec("Make something nice.")])


def _files_intact(doc) -> bool:
    return all(file_sha256(Path(doc.location) / f.name) == f.sha256 for f in doc.files)


def test_a_rerun_never_overwrites_an_earlier_artifacts_files(checkpoint_dir, tiny_model, tokenizer, crysreas_home):
    """Same generation config over other weights behind the same checkpoint id, and a second
    evaluation of one batch: every registered artifact keeps the files it was registered with."""
    config = GenerateConfig(n_samples=2, max_new_tokens=8)
    with ArtifactRegistry(load_store_spec("memory")) as registry:
        checkpoint_id = registry.register(
            "checkpoint", name="tiny", config={}, files=sorted(checkpoint_dir.iterdir()), location=checkpoint_dir
        ).artifact_id
        first = GenerateStage(config).run(registry, checkpoint_id, [PromptSpec("Generate NaCl.")])
        for parameter in tiny_model.parameters():
            parameter.data.normal_()  # the folder is overwritten in place, as by a retrained run
        tiny_model.save_pretrained(checkpoint_dir)
        second = GenerateStage(config).run(registry, checkpoint_id, [PromptSpec("Generate NaCl.")])
        evaluations = [
            evaluate_generation(registry, first.artifact_id, EvaluateConfig(novelty_dataset=novelty))
            for novelty in (None, "mp20-mini")
        ]
        docs = [registry.get(d.artifact_id) for d in (first, second, *evaluations)]
    assert first.artifact_id != second.artifact_id and first.location != second.location
    assert evaluations[0].location != evaluations[1].location
    assert all(_files_intact(doc) for doc in docs)


def test_generating_on_a_split_records_the_prompts_trace_set(checkpoint_dir, crysreas_home, tmp_path):
    """`crysreas generate --split` keeps the trace set its prompts came from in the generation's
    lineage (as the flow does), so `crysreas distil` finds it; no trace set is a clear error."""
    import json

    from typer.testing import CliRunner

    from crystalreasoner.cli import app
    from crystalreasoner.errors import ArtifactNotFoundError
    from crystalreasoner.generation.stage import prompt_trace_set
    from crystalreasoner.stores import open_registry

    folder = tmp_path / "traces"
    folder.mkdir()
    record = {"prompt": [{"role": "user", "content": "Generate NaCl."}], "formula": "NaCl",
              "material_id": "mp-22862", "task": "conditional", "properties": {}, "variant": 0}
    (folder / "val.jsonl").write_text(json.dumps(record) + "\n")
    with open_registry(None) as registry:
        traces = registry.register("traces", name="val prompts", config={}, files=[folder / "val.jsonl"], location=folder)
    result = CliRunner().invoke(
        app, ["generate", "--checkpoint", str(checkpoint_dir), "--traces", traces.artifact_id, "--split", "val", "-n", "1"]
    )
    assert result.exit_code == 0, result.output
    with open_registry(None) as registry:
        generation = registry.latest("generation")
        assert generation.name == "val prompts" and traces.artifact_id in generation.parents
        assert prompt_trace_set(registry, generation.artifact_id).artifact_id == traces.artifact_id
        checkpoint_id = generation.parents[0]
        with pytest.raises(ArtifactNotFoundError, match=f"checkpoint {checkpoint_id} has no trace set"):
            prompt_trace_set(registry, checkpoint_id)

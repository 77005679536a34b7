"""The generation stage keeps every sample, parsed or not, and registers the batch."""

from pathlib import Path

import pytest

from crystalreasoner.errors import ConfigError
from crystalreasoner.evaluation.stage import evaluate_generation
from crystalreasoner.generation.stage import GenerateConfig, GenerateStage, PromptSpec, load_samples
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

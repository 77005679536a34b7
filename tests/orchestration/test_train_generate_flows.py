"""SFT then generation as Prefect flows on a temporary server, sharing the embedded store."""

import pytest

from crystalreasoner.stores import open_registry
from flows.evaluate import evaluate_flow
from flows.generate import generate_flow
from flows.sft import sft_flow


@pytest.mark.integration
def test_sft_flow_then_generate_flow(prefect_server, tiny_cdvae_dir, crysreas_home, monkeypatch):
    overrides = {
        "dataset": str(tiny_cdvae_dir),
        "traces_preset": "no-thinking",
        "model": {"hidden_size": 32, "num_layers": 2, "num_heads": 2, "intermediate_size": 64, "vocab_size": 300},
        "max_length": 384,
        "eval_samples": 2,
        "trl_args": {"max_steps": 2, "per_device_train_batch_size": 4, "logging_steps": 1},
    }
    checkpoint_id = sft_flow("tiny-quick", overrides, "default")
    generation_id = generate_flow(checkpoint_id, split="val", config={"n_samples": 2, "max_new_tokens": 16}, store="default")
    evaluate_flow(generation_id, "cheap", store="default")
    with open_registry("default") as registry:
        table = registry.latest("evaluation").summary
    assert {"parsed", "structurally_valid", "smact_valid", "composition_match", "unique", "novel"} <= set(table)
    with open_registry("default") as registry:
        kinds = {d.kind for d in registry.lineage(registry.latest("evaluation").artifact_id)}
    assert kinds == {"generation", "checkpoint", "tokenizer", "traces", "dataset"}

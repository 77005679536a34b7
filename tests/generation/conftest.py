"""A tiny random Llama with our tokenizer, built in code (no downloads, no training)."""

import pytest
import torch
from transformers import LlamaConfig, LlamaForCausalLM

from crystalreasoner.data import load_dataset
from crystalreasoner.training.tokenizer import train_bpe_tokenizer


@pytest.fixture(scope="session")
def tokenizer():
    records = load_dataset("mp20-mini").records("val")[:40]
    from crystalreasoner.data import encode_structure

    texts = [f"Generate {r.formula}. " + encode_structure(r.structure) for r in records]
    return train_bpe_tokenizer(texts, vocab_size=400)


@pytest.fixture(scope="session")
def tiny_model(tokenizer):
    torch.manual_seed(0)
    config = LlamaConfig(
        vocab_size=len(tokenizer), hidden_size=32, num_hidden_layers=2, num_attention_heads=4,
        num_key_value_heads=2, intermediate_size=64, max_position_embeddings=512,
        pad_token_id=tokenizer.pad_token_id, eos_token_id=tokenizer.eos_token_id,
    )
    return LlamaForCausalLM(config).eval()

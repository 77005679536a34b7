"""Causal LMs: a tiny Llama/Qwen2 built from a config (the CPU default) or any HF model folder."""

from __future__ import annotations

from pathlib import Path
from typing import Any, Literal

import torch
from transformers import (
    AutoModelForCausalLM,
    AutoTokenizer,
    LlamaConfig,
    PreTrainedModel,
    PreTrainedTokenizerBase,
    Qwen2Config,
)

from crystalreasoner.checkpoints import shipped_checkpoint
from crystalreasoner.config import StageConfig
from crystalreasoner.errors import ArtifactNotFoundError
from crystalreasoner.training.tokenizer import extend_pretrained_tokenizer, train_bpe_tokenizer


class ModelConfig(StageConfig):
    """Either a tiny model trained from scratch (``pretrained`` unset) or a model folder on disk.

    Sizes apply to the from-scratch model only; ``lora`` holds ``peft.LoraConfig`` arguments
    (e.g. ``{r: 16, lora_alpha: 32, target_modules: all-linear}``) and works for both.
    """

    arch: Literal["llama", "qwen2"] = "llama"
    hidden_size: int = 192
    num_layers: int = 6
    num_heads: int = 6
    num_kv_heads: int | None = None
    intermediate_size: int = 512
    max_position_embeddings: int = 2048
    vocab_size: int = 1000  # BPE vocabulary trained on the traces
    pretrained: str | None = None  # a Hugging Face causal LM directory (no hub downloads), or a shipped checkpoint's name
    lora: dict[str, Any] | None = None


Precision = Literal["auto", "bf16", "fp32"]


def bf16_autocast(precision: Precision) -> bool:
    """Whether to train under bf16 autocast (weights and optimizer state stay fp32).

    ``auto`` means on a GPU with bf16 only. ``bf16`` also runs on a CPU, where it pays only with
    native bf16 (AVX512-BF16 or AMX): ``bench/bench_sft.py`` prints the ratio on this machine.
    """
    if precision == "auto":
        return torch.cuda.is_available() and torch.cuda.is_bf16_supported()
    return precision == "bf16"


def cpu_has_native_bf16() -> bool:
    """AVX512-BF16 or AMX on this CPU (torch's probes are private, hence the getattr)."""
    probes = ("_is_avx512_bf16_supported", "_is_amx_tile_supported")
    return any(getattr(torch.cpu, probe, lambda: False)() for probe in probes)


def pretrained_folder(pretrained: str) -> Path:
    """A model folder on disk, or else the shipped checkpoint of that name (``tiny-cpu-restated``),
    so that a preset can start from a shipped model wherever the package is installed."""
    folder = Path(pretrained)
    if folder.is_dir():
        return folder
    try:
        return shipped_checkpoint(pretrained)
    except ArtifactNotFoundError as exc:
        raise ArtifactNotFoundError(
            f"model.pretrained {pretrained!r} is neither a model folder on disk nor a shipped "
            f"checkpoint ({exc}); nothing is downloaded at run time: put the model on disk (e.g. "
            f"`huggingface-cli download Qwen/Qwen2.5-3B --local-dir /models/Qwen2.5-3B`) and pass "
            f"--set model.pretrained=<that folder>"
        ) from exc


def check_model_source(config: ModelConfig) -> None:
    """Fail before the slow stages (building traces takes minutes) if the start model is missing."""
    if config.pretrained is not None:
        pretrained_folder(config.pretrained)


def build_tokenizer(config: ModelConfig, texts: list[str]) -> PreTrainedTokenizerBase:
    """Our BPE trained on ``texts``, or the pretrained model's tokenizer plus our tags."""
    if config.pretrained is None:
        return train_bpe_tokenizer(texts, config.vocab_size)
    tokenizer = AutoTokenizer.from_pretrained(pretrained_folder(config.pretrained))
    extend_pretrained_tokenizer(tokenizer)
    return tokenizer


def build_model(config: ModelConfig, tokenizer: PreTrainedTokenizerBase) -> PreTrainedModel:
    """A fresh tiny model sized for ``tokenizer``, or the pretrained one with resized embeddings."""
    if config.pretrained is None:
        config_cls = LlamaConfig if config.arch == "llama" else Qwen2Config
        model_config = config_cls(
            vocab_size=len(tokenizer),
            hidden_size=config.hidden_size,
            num_hidden_layers=config.num_layers,
            num_attention_heads=config.num_heads,
            num_key_value_heads=config.num_kv_heads or config.num_heads,
            intermediate_size=config.intermediate_size,
            max_position_embeddings=config.max_position_embeddings,
            bos_token_id=tokenizer.bos_token_id,
            eos_token_id=tokenizer.eos_token_id,
            pad_token_id=tokenizer.pad_token_id,
            tie_word_embeddings=True,
        )
        model = AutoModelForCausalLM.from_config(model_config)
    else:
        model = AutoModelForCausalLM.from_pretrained(pretrained_folder(config.pretrained), dtype=torch.float32)
        if model.get_input_embeddings().num_embeddings < len(tokenizer):
            model.resize_token_embeddings(len(tokenizer))
        model.config.pad_token_id = tokenizer.pad_token_id
    model.generation_config.pad_token_id = tokenizer.pad_token_id
    model.generation_config.eos_token_id = tokenizer.eos_token_id
    return model


def apply_lora(model: PreTrainedModel, lora: dict[str, Any] | None) -> PreTrainedModel:
    """Wrap ``model`` with peft LoRA adapters when configured."""
    if not lora:
        return model
    from peft import LoraConfig, get_peft_model

    return get_peft_model(model, LoraConfig(task_type="CAUSAL_LM", **lora))


def load_checkpoint(path: str | Path) -> tuple[PreTrainedModel, PreTrainedTokenizerBase]:
    """A saved checkpoint folder (safetensors weights + tokenizer); LoRA adapters are merged."""
    path = Path(path)
    tokenizer = AutoTokenizer.from_pretrained(path)
    if (path / "adapter_config.json").exists():
        from peft import AutoPeftModelForCausalLM

        model = AutoPeftModelForCausalLM.from_pretrained(path).merge_and_unload()
    else:
        model = AutoModelForCausalLM.from_pretrained(path, use_safetensors=True)
    return model.eval(), tokenizer

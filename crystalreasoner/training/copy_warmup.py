"""Copy warm-up: teach a from-scratch model to copy before SFT, so that it conditions on the prompt.

A tiny model trained on the traces alone learns the format and the chemistry prior but hardly
copies: the trace's ``Cell composition:`` line restated the prompt's cell in 2 % of samples and the
atom lines used the prompt's elements in 1.5 % (shipped tiny-cpu, 123 val formulas x 4). Copying
needs induction heads (a head that finds an earlier occurrence of the current token and predicts
what followed it), and these form late, after a long plateau. Random token strings written twice
(``x1 .. xn <sep> x1 .. xn``, loss on the repeat) can only be continued by copying, so the heads
form within about a thousand short steps; SFT then starts from a model that can copy. Measured on
the tiny-cpu recipe (GPU, same 1,332 SFT steps): the trace restates the prompt's cell in 94 % of
samples instead of 2 %, and the eval loss falls 0.632 -> 0.557.
"""

from __future__ import annotations

import json
import time
from pathlib import Path

import torch
from safetensors.torch import load_model, save_model
from transformers import PreTrainedModel, PreTrainedTokenizerBase

from crystalreasoner.config import StageConfig


class CopyWarmupConfig(StageConfig):
    """Repeated random token strings until the model copies them (or ``max_steps``)."""

    max_steps: int = 3000
    batch_size: int = 32
    min_length: int = 8  # tokens in one string
    max_length: int = 48
    learning_rate: float = 1e-3
    target_accuracy: float = 0.95  # greedy accuracy on the repeat, on fresh strings
    check_every: int = 100


def _copy_batch(
    config: CopyWarmupConfig, token_ids: torch.Tensor, separator: int, generator: torch.Generator,
    device: torch.device,
) -> tuple[torch.Tensor, int]:
    """``batch_size`` strings ``x <sep> x`` of one random length n (on ``device``), and n."""
    n = int(torch.randint(config.min_length, config.max_length + 1, (1,), generator=generator))
    picks = torch.randint(len(token_ids), (config.batch_size, n), generator=generator)
    strings = token_ids[picks]
    sep = torch.full((config.batch_size, 1), separator)
    return torch.cat([strings, sep, strings], dim=1).to(device), n


def _repeat_logits(model: PreTrainedModel, batch: torch.Tensor, n: int) -> torch.Tensor:
    """Logits at the positions that predict the repeat (after the separator)."""
    return model(input_ids=batch).logits[:, n:-1].float()


def copy_accuracy(
    model: PreTrainedModel, config: CopyWarmupConfig, token_ids: torch.Tensor, separator: int, seed: int
) -> float:
    """Share of repeat tokens the model predicts greedily, on strings it was not trained on."""
    generator = torch.Generator().manual_seed(seed)
    batch, n = _copy_batch(config, token_ids, separator, generator, model.device)
    was_training = model.training
    model.eval()
    with torch.no_grad():
        predicted = _repeat_logits(model, batch, n).argmax(-1)
    model.train(was_training)
    return (predicted == batch[:, n + 1 :]).float().mean().item()


def copy_warmup(
    model: PreTrainedModel,
    tokenizer: PreTrainedTokenizerBase,
    config: CopyWarmupConfig,
    *,
    seed: int = 0,
    bf16: bool = False,
) -> dict:
    """Train ``model`` in place on repeated random strings; returns steps, accuracy and seconds.

    The strings use every ordinary token of the vocabulary (no special tokens), and the end
    token separates the two copies. Stops as soon as the accuracy on fresh strings reaches
    ``target_accuracy``; the optimizer is discarded (SFT starts its own).
    """
    special = set(tokenizer.all_special_ids)
    token_ids = torch.tensor([i for i in range(len(tokenizer)) if i not in special])
    separator = tokenizer.eos_token_id
    generator = torch.Generator().manual_seed(seed)
    optimizer = torch.optim.AdamW(model.parameters(), lr=config.learning_rate, weight_decay=0.0)
    model.train()
    started = time.monotonic()
    accuracy, step = 0.0, 0
    while step < config.max_steps:
        batch, n = _copy_batch(config, token_ids, separator, generator, model.device)
        with torch.autocast(model.device.type, dtype=torch.bfloat16, enabled=bf16):
            logits = _repeat_logits(model, batch, n)
        loss = torch.nn.functional.cross_entropy(logits.reshape(-1, logits.size(-1)), batch[:, n + 1 :].reshape(-1))
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
        step += 1
        if step % config.check_every == 0:
            accuracy = copy_accuracy(model, config, token_ids, separator, seed=10_000 + step)
            if accuracy >= config.target_accuracy:
                break
    if step % config.check_every:  # stopped by max_steps between checks: measure where it ended
        accuracy = copy_accuracy(model, config, token_ids, separator, seed=10_000 + step)
    return {"steps": step, "copy_accuracy": round(accuracy, 4), "seconds": round(time.monotonic() - started, 1)}


def warm_start(
    model: PreTrainedModel,
    tokenizer: PreTrainedTokenizerBase,
    config: CopyWarmupConfig,
    folder: Path,
    *,
    seed: int = 0,
    bf16: bool = False,
) -> dict:
    """Run the warm-up once per run folder: a resumed run loads the saved weights instead."""
    weights, summary_file = folder / "model.safetensors", folder / "summary.json"
    if summary_file.exists() and weights.exists():
        load_model(model, str(weights))
        return json.loads(summary_file.read_text())
    summary = copy_warmup(model, tokenizer, config, seed=seed, bf16=bf16)
    folder.mkdir(parents=True, exist_ok=True)
    save_model(model, str(weights))
    summary_file.write_text(json.dumps(summary))  # written last: its presence marks a finished warm-up
    return summary

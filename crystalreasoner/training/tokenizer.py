"""Tokenizers: a byte-level BPE trained on our traces, or a pretrained one plus our tokens.

Digits are split one per token so numbers are written digit by digit (a small model cannot
learn a vocabulary of thousands of number chunks); the structure and thinking tags are single
tokens so the sampler can stop on ``</CIF>`` and the constraint can see where the block starts.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers
from transformers import PreTrainedTokenizerBase, PreTrainedTokenizerFast

from crystalreasoner.data.codec import STRUCTURE_END, STRUCTURE_START
from crystalreasoner.traces.render import THINK_END, THINK_START

PAD, BOS, EOS = "<|pad|>", "<|bos|>", "<|end|>"
USER, ASSISTANT = "<|user|>", "<|assistant|>"
STRUCTURE_TOKENS = [STRUCTURE_START, STRUCTURE_END, THINK_START, THINK_END]
SPECIAL_TOKENS = [PAD, BOS, EOS, USER, ASSISTANT, *STRUCTURE_TOKENS]

#: user turn, then the assistant turn; the answer ends with EOS (the stop after ``</CIF>``)
CHAT_TEMPLATE = (
    "{% for message in messages %}"
    "{% if message['role'] == 'user' %}" + USER + "{{ message['content'] }}"
    "{% elif message['role'] == 'assistant' %}" + ASSISTANT + "{{ message['content'] }}" + EOS
    + "{% endif %}{% endfor %}"
    "{% if add_generation_prompt %}" + ASSISTANT + "{% endif %}"
)


def train_bpe_tokenizer(texts: Iterable[str], vocab_size: int = 1000) -> PreTrainedTokenizerFast:
    """Byte-level BPE with single-digit tokens and our special tokens, trained on ``texts``."""
    tokenizer = Tokenizer(models.BPE())
    tokenizer.pre_tokenizer = pre_tokenizers.Sequence(
        [
            pre_tokenizers.Digits(individual_digits=True),
            pre_tokenizers.ByteLevel(add_prefix_space=False, use_regex=True),
        ]
    )
    tokenizer.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(
        vocab_size=vocab_size,
        special_tokens=SPECIAL_TOKENS,
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
        show_progress=False,
    )
    tokenizer.train_from_iterator(texts, trainer)
    fast = PreTrainedTokenizerFast(
        tokenizer_object=tokenizer,
        pad_token=PAD,
        bos_token=BOS,
        eos_token=EOS,
        additional_special_tokens=[USER, ASSISTANT, *STRUCTURE_TOKENS],
    )
    fast.chat_template = CHAT_TEMPLATE
    return fast


def extend_pretrained_tokenizer(tokenizer: PreTrainedTokenizerBase) -> int:
    """Add our tags to a pretrained tokenizer (its own chat template is kept).

    Returns the number of tokens added; the caller resizes the model's embeddings.
    """
    added = tokenizer.add_special_tokens({"additional_special_tokens": STRUCTURE_TOKENS})
    if tokenizer.pad_token is None:
        tokenizer.pad_token = tokenizer.eos_token
    return added


@dataclass(frozen=True)
class BlockTokens:
    """Every token's text and the structure block's tag ids: what reading a block token by token
    needs (the composition constraint, the copy unlikelihood), decoded once per tokenizer."""

    texts: list[str]
    start_id: int
    end_id: int

    @classmethod
    def of(cls, tokenizer: PreTrainedTokenizerBase) -> BlockTokens:
        texts = [tokenizer.decode([i], skip_special_tokens=False) for i in range(len(tokenizer))]
        return cls(texts, tokenizer.convert_tokens_to_ids(STRUCTURE_START), tokenizer.convert_tokens_to_ids(STRUCTURE_END))

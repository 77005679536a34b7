"""A continuous-batching sampler over a per-slot KV cache, for Llama/Qwen2-style models.

Hugging Face ``generate`` on a CPU is bound by per-step Python overhead, and a padded batch
waits for its longest member. Here a fixed number of slots decode together; a finished sequence
leaves its slot at once and the next prompt is prefilled into it, so the batch stays full.
Prefill uses the model's own forward; decoding reuses its modules (projections, norms, MLP,
rotary embedding) with attention over each slot's own cache and position.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field

import torch
import torch.nn.functional as F
from transformers import PreTrainedModel
from transformers.models.llama.modeling_llama import apply_rotary_pos_emb


@dataclass(frozen=True)
class SamplingParams:
    """Paper settings by default (SPEC §6): T = 1.0, top-k 50, top-p 0.7."""

    temperature: float = 1.0
    top_k: int = 50
    top_p: float = 0.7
    max_new_tokens: int = 1600  # the longest tiny-trace answer: 1,592 tokens (1,536 cut 80)
    seed: int = 0


@dataclass
class Request:
    """One sequence to generate: a tokenised prompt and an id the caller chooses."""

    request_id: str
    prompt_ids: list[int]


@dataclass
class Completion:
    """A finished sequence; ``finish_reason`` is 'stop' (a stop token) or 'length' (the cap)."""

    request_id: str
    token_ids: list[int]
    finish_reason: str


@dataclass
class _Slot:
    request: Request
    generated: list[int] = field(default_factory=list)


#: attention runs on this many groups of slots, each over its own longest sequence's cache only
GROUPS = 8
#: a group joins the one before it when its cache length is this close (a fraction) to that one's
MERGE_WITHIN = 0.1
#: the slots are re-sorted by length once the cache read exceeds the sorted minimum by this factor
RESORT_AT = 1.25
#: the KV cache grows by this many positions at a time
CACHE_CHUNK = 64


@dataclass
class MaskResult:
    """A token mask that may also take tokens back: ``rewind`` maps a row to how many generated
    tokens it keeps; that row samples nothing this step and goes on from the kept prefix."""

    allowed: torch.Tensor | None
    rewind: dict[int, int] = field(default_factory=dict)


#: ``(slot_requests, generated_ids_per_slot) -> bool mask [slots, vocab]`` of allowed tokens
#: (or a ``MaskResult`` that also rewinds rows)
TokenMask = Callable[[list[Request], list[list[int]]], torch.Tensor | MaskResult | None]


def sample_tokens(
    logits: torch.Tensor,
    params: SamplingParams,
    generator: torch.Generator,
    allowed: torch.Tensor | None = None,
) -> torch.Tensor:
    """Constraint mask, temperature, top-k, then top-p (nucleus) over the k best, as HF orders them.

    Sorting only the top k (not the whole vocabulary) keeps this cheap at every step.
    """
    if allowed is not None:  # masks are built on the CPU; the model may be on a GPU
        logits = logits.masked_fill(~allowed.to(logits.device), float("-inf"))
    logits = logits / max(params.temperature, 1e-5)
    k = params.top_k if 0 < params.top_k < logits.shape[-1] else logits.shape[-1]
    values, indices = torch.topk(logits, k, dim=-1)  # sorted, best first
    probs = values.softmax(-1)
    if params.top_p < 1.0:
        beyond = probs.cumsum(-1) - probs > params.top_p  # keep up to the first token past p
        probs = probs.masked_fill(beyond, 0.0)
    choice = torch.multinomial(probs, 1, generator=generator)
    return indices.gather(-1, choice)[:, 0]


class ContinuousBatchSampler:
    """Sample many sequences from ``model`` with ``slots`` sequences decoding at a time."""

    def __init__(self, model: PreTrainedModel, stop_ids: set[int], slots: int = 128):
        config = model.config
        if config.model_type not in ("llama", "qwen2"):
            raise ValueError(
                f"the continuous-batching sampler supports llama and qwen2 models, not "
                f"{config.model_type!r}; use backend='hf' (or vllm on a GPU)"
            )
        self.model = model.eval()
        self.stop_ids = stop_ids
        self.slots = slots
        self.layers = model.model.layers
        attention = self.layers[0].self_attn
        self.head_dim = attention.head_dim
        self.n_heads = config.num_attention_heads
        self.n_kv = config.num_key_value_heads
        self.device = next(model.parameters()).device
        self.dtype = next(model.parameters()).dtype
        # one matmul for q, k, v and one for gate, up: fewer calls per step (CPU overhead-bound)
        self.qkv = [self._fuse(l.self_attn.q_proj, l.self_attn.k_proj, l.self_attn.v_proj) for l in self.layers]
        self.gate_up = [self._fuse(l.mlp.gate_proj, l.mlp.up_proj) for l in self.layers]

    @staticmethod
    def _fuse(*linears: torch.nn.Linear) -> tuple[torch.Tensor, torch.Tensor | None]:
        weight = torch.cat([lin.weight.detach() for lin in linears])
        biases = [lin.bias for lin in linears]
        bias = None if biases[0] is None else torch.cat([b.detach() for b in biases])
        return weight, bias

    def _alloc(self, slots: int, length: int) -> tuple[torch.Tensor, torch.Tensor]:
        shape = (len(self.layers), slots, self.n_kv, length, self.head_dim)
        return (
            torch.zeros(shape, dtype=self.dtype, device=self.device),
            torch.zeros(shape, dtype=self.dtype, device=self.device),
        )

    def _grow(self, keys: torch.Tensor, values: torch.Tensor, length: int):
        """The caches, grown to hold ``length`` positions (rounded up to ``CACHE_CHUNK``).

        Zeros beyond: masked positions still enter the matmuls (weight 0 times NaN is NaN).
        The caches grow in chunks rather than being allocated for the length cap at once: a
        slice of a much longer buffer is strided, and that made a step slower on this CPU
        (measured: 17 vs 12-15 ms, 64 slots at 200 positions in a 317- vs 200-position buffer).
        They do not shrink while a batch runs: that would copy the whole cache back and forth as
        long sequences come and go.
        """
        if length <= keys.shape[3]:
            return keys, values
        new_keys, new_values = self._alloc(keys.shape[1], -(-length // CACHE_CHUNK) * CACHE_CHUNK)
        new_keys[:, :, :, : keys.shape[3]] = keys
        new_values[:, :, :, : values.shape[3]] = values
        return new_keys, new_values

    @torch.inference_mode()
    def _prefill(self, prompt: list[int], keys, values, slot: int) -> torch.Tensor:
        ids = torch.tensor([prompt], device=self.device)
        out = self.model(input_ids=ids, use_cache=True)
        for i, layer in enumerate(out.past_key_values.layers):
            keys[i, slot, :, : len(prompt)] = layer.keys[0]
            values[i, slot, :, : len(prompt)] = layer.values[0]
        return out.logits[0, -1]

    @torch.inference_mode()
    def _decode(self, tokens, positions, keys, values, groups: list[tuple[int, int, int]]) -> torch.Tensor:
        """One token for each slot up to the last group's end: logits [rows, vocab].

        ``groups`` are ``(first slot, end slot, cache length)``: each group's attention reads its
        slots' caches only as far as its longest sequence, so short sequences beside long ones
        (slots sorted by length) do not pay for the long ones' cache, which is most of a step on
        a CPU. Attention is two matmuls per group, masked beyond each slot's position; with one
        query per slot this beats the CPU flash-attention kernel. Free slots in range are ignored.
        """
        n = groups[-1][1]
        tokens, positions = tokens[:n], positions[:n]
        # a group that reaches the cache's last chunk reads all of it: a contiguous slice
        cache = keys.shape[3]
        groups = [(first, end, cache if length > cache - CACHE_CHUNK else length) for first, end, length in groups]
        group = self.n_heads // self.n_kv
        hidden = self.model.model.embed_tokens(tokens[:, None])
        cos, sin = self.model.model.rotary_emb(hidden, positions[:, None])
        beyond = (torch.arange(max(g[2] for g in groups), device=self.device)[None, :] > positions[:, None])
        beyond = beyond[:, None, None, :]  # [slots, 1, 1, cache length]
        rows = torch.arange(n, device=self.device)
        q_size, kv_size = self.n_heads * self.head_dim, self.n_kv * self.head_dim
        out = hidden.new_empty(n, self.n_kv, group, self.head_dim)
        for i, layer in enumerate(self.layers):
            attn = layer.self_attn
            qkv = F.linear(layer.input_layernorm(hidden), *self.qkv[i])
            q, k, v = qkv.split((q_size, kv_size, kv_size), dim=-1)
            q = q.view(n, 1, self.n_heads, self.head_dim).transpose(1, 2)
            k = k.view(n, 1, self.n_kv, self.head_dim).transpose(1, 2)
            v = v.view(n, 1, self.n_kv, self.head_dim).transpose(1, 2)
            q, k = apply_rotary_pos_emb(q, k, cos, sin)
            keys[i, rows, :, positions] = k[:, :, 0]
            values[i, rows, :, positions] = v[:, :, 0]
            # query heads grouped by their key/value head: [slots, n_kv, group, head_dim]
            q = q.reshape(n, self.n_kv, group, self.head_dim)
            for first, end, length in groups:
                scores = torch.matmul(q[first:end], keys[i, first:end, :, :length].transpose(-1, -2)) * attn.scaling
                weights = scores.masked_fill(beyond[first:end, :, :, :length], float("-inf")).softmax(-1)
                torch.matmul(weights, values[i, first:end, :, :length], out=out[first:end])
            hidden = hidden + attn.o_proj(out.reshape(n, 1, -1))
            gate, up = F.linear(layer.post_attention_layernorm(hidden), *self.gate_up[i]).chunk(2, dim=-1)
            hidden = hidden + layer.mlp.down_proj(layer.mlp.act_fn(gate) * up)
        return self.model.lm_head(self.model.model.norm(hidden))[:, 0].float()

    def generate(
        self,
        requests: list[Request],
        params: SamplingParams = SamplingParams(),
        token_mask: TokenMask | None = None,
    ) -> Iterator[Completion]:
        """Yield completions as they finish (not in request order)."""
        generator = torch.Generator(device=self.device).manual_seed(params.seed)
        pending = deque(requests)
        n_slots = max(min(self.slots, len(requests)), 1)  # no idle slots for small batches
        keys, values = self._alloc(n_slots, CACHE_CHUNK)
        slots: list[_Slot | None] = [None] * n_slots
        tokens = torch.zeros(n_slots, dtype=torch.long, device=self.device)
        positions = torch.zeros(n_slots, dtype=torch.long, device=self.device)
        logits = torch.zeros(n_slots, self.model.config.vocab_size, device=self.device)
        group_size = -(-n_slots // GROUPS)

        def fill(index: int) -> None:
            nonlocal keys, values
            slots[index] = None
            positions[index] = 0
            if pending:
                request = pending.popleft()
                keys, values = self._grow(keys, values, len(request.prompt_ids) + 1)  # + the next token
                slots[index] = _Slot(request)
                logits[index] = self._prefill(request.prompt_ids, keys, values, index).float()
                positions[index] = len(request.prompt_ids)

        def sort_by_length(lengths: list[int]) -> None:
            """Longest sequences first, free slots (length 0) last, so each group holds similar
            lengths. Only the slots that change place move, each only as far as it reaches."""
            nonlocal slots
            order = sorted(range(n_slots), key=lambda s: -lengths[s])
            moves = [(dst, src) for dst, src in enumerate(order) if dst != src and lengths[src]]
            saved = [(dst, keys[:, src, :, : lengths[src]].clone(), values[:, src, :, : lengths[src]].clone())
                     for dst, src in moves]
            for dst, key, value in saved:
                keys[:, dst, :, : key.shape[2]] = key
                values[:, dst, :, : value.shape[2]] = value
            perm = torch.tensor(order, device=self.device)
            slots = [slots[s] for s in order]
            for state in (tokens, positions, logits):
                state.copy_(state[perm])

        for index in range(n_slots):
            fill(index)
        while any(slots):
            live = [i for i, s in enumerate(slots) if s is not None]
            allowed, rewind = None, {}
            if token_mask is not None:
                allowed = token_mask([slots[i].request for i in live], [slots[i].generated for i in live])
                if isinstance(allowed, MaskResult):
                    allowed, rewind = allowed.allowed, allowed.rewind
            picked = sample_tokens(logits[live], params, generator, allowed).tolist()
            for row, index in enumerate(live):
                slot = slots[index]
                if row in rewind:  # re-feed the last kept token: its cache entry is rewritten
                    keep = rewind[row]
                    if not 0 < keep <= len(slot.generated):
                        raise ValueError(f"a rewind must keep 1..{len(slot.generated)} tokens, not {keep}")
                    del slot.generated[keep:]
                    tokens[index] = slot.generated[-1]
                    positions[index] = len(slot.request.prompt_ids) + keep - 1
                    continue
                token = picked[row]
                slot.generated.append(token)
                tokens[index] = token
                if token in self.stop_ids or len(slot.generated) >= params.max_new_tokens:
                    reason = "stop" if token in self.stop_ids else "length"
                    yield Completion(slot.request.request_id, slot.generated, reason)
                    fill(index)
                    tokens[index] = 0
            if not any(slots):
                break
            lengths = [0 if slot is None else p + 1 for slot, p in zip(slots, positions.tolist())]
            groups = _groups(lengths, group_size)
            sorted_groups = _groups(sorted(lengths, reverse=True), group_size)
            if _cache_read(groups) > RESORT_AT * _cache_read(sorted_groups):
                sort_by_length(lengths)
                groups = sorted_groups
            keys, values = self._grow(keys, values, max(lengths))
            step_logits = self._decode(tokens, positions, keys, values, groups)
            for index, slot in enumerate(slots[: groups[-1][1]]):
                # slots just refilled keep their prefill logits; the others advance one token
                if slot is not None and slot.generated:
                    logits[index] = step_logits[index]
                    positions[index] += 1


def _groups(lengths: list[int], size: int) -> list[tuple[int, int, int]]:
    """``(first, end, cache length)`` for consecutive groups of ``size`` slots, up to the last live
    one; ``lengths`` are the positions each slot attends to (0 for a free slot). A group whose
    length is within ``MERGE_WITHIN`` of the one before joins it: fewer, larger matmuls."""
    rows = max(i for i, length in enumerate(lengths) if length) + 1
    groups: list[tuple[int, int, int]] = []
    for a in range(0, rows, size):
        end, length = min(a + size, rows), max(lengths[a : a + size])
        if groups and groups[-1][2] >= length >= (1 - MERGE_WITHIN) * groups[-1][2]:
            groups[-1] = (groups[-1][0], end, groups[-1][2])
        else:
            groups.append((a, end, length))
    return groups


def _cache_read(groups: list[tuple[int, int, int]]) -> int:
    """Cache positions attention reads per layer and head with these groups."""
    return sum((end - first) * length for first, end, length in groups)

"""The continuous-batching sampler: same tokens as Hugging Face, slots refilled, seeded."""

import torch

from crystalreasoner.generation import sampler as sampler_module
from crystalreasoner.generation.sampler import (
    ContinuousBatchSampler,
    MaskResult,
    Request,
    SamplingParams,
    sample_tokens,
)

GREEDY = SamplingParams(temperature=1.0, top_k=1, top_p=1.0, max_new_tokens=24)


def _prompts(tokenizer):
    texts = ["Generate NaCl.", "Design a crystal with the formula MgIn2 in space group 12.", "Fe2O3", "Make SrTiO3 stable."]
    return [tokenizer(t)["input_ids"] for t in texts]


def _assert_greedy_matches_hf(model, prompts, slots, new_tokens=24):
    sampler = ContinuousBatchSampler(model, stop_ids=set(), slots=slots)
    params = SamplingParams(temperature=1.0, top_k=1, top_p=1.0, max_new_tokens=new_tokens)
    ours = {c.request_id: c.token_ids for c in sampler.generate(
        [Request(str(i), p) for i, p in enumerate(prompts)], params)}
    for i, prompt in enumerate(prompts):
        hf = model.generate(torch.tensor([prompt]), do_sample=False, max_new_tokens=new_tokens,
                            min_new_tokens=new_tokens, pad_token_id=0)[0, len(prompt):].tolist()
        assert ours[str(i)] == hf, f"request {i} differs from HF"


def test_greedy_matches_hf_generate_with_more_requests_than_slots(tokenizer, tiny_model):
    """GQA model, 5 requests on 2 slots: every sequence equals HF's greedy output."""
    _assert_greedy_matches_hf(tiny_model, _prompts(tokenizer) + [tokenizer("Al2O3")["input_ids"]], slots=2)


def test_slots_sorted_by_length_still_match_hf(monkeypatch):
    """Short and long prompts alternate on 4 slots in 2 attention groups: the sampler sorts the
    slots by length (moving their caches) before the first step, each group reads only its own
    longest cache, and every sequence still equals HF's greedy output (refills included). The
    shipped model, since a random one barely depends on its context."""
    from crystalreasoner.checkpoints import shipped_checkpoint
    from crystalreasoner.training.models import load_checkpoint

    model, tokenizer = load_checkpoint(shipped_checkpoint("tiny-cpu"))
    monkeypatch.setattr(sampler_module, "GROUPS", 2)
    long = ("Design a crystal with the formula {} in space group 12 and a formation energy of -0.5 eV/atom, "
            "with a band gap of about 1.20 eV and an energy above the convex hull of 0.010 eV/atom.")
    texts = ["Fe2O3", long.format("MgIn2"), "NaCl", long.format("SrTiO3"), "MgO", long.format("TmMgHg2")]
    prompts = [tokenizer(f"<|user|>{t}<|assistant|>", add_special_tokens=False)["input_ids"] for t in texts]
    steps = []
    decode = ContinuousBatchSampler._decode

    def spy(self, tokens, positions, keys, values, groups):
        steps.append((positions[: groups[-1][1]].tolist(), groups))
        return decode(self, tokens, positions, keys, values, groups)

    monkeypatch.setattr(ContinuousBatchSampler, "_decode", spy)
    _assert_greedy_matches_hf(model, prompts, slots=4, new_tokens=40)
    first_positions, first_groups = steps[0]
    assert first_positions == sorted(first_positions, reverse=True)
    assert [length for _, _, length in first_groups] == [first_positions[0] + 1, first_positions[2] + 1]


def test_attention_groups_skip_free_slots_at_the_end():
    assert sampler_module._groups([9, 7, 0, 5, 0, 0], size=2) == [(0, 2, 9), (2, 4, 5)]
    assert sampler_module._cache_read([(0, 2, 9), (2, 4, 5)]) == 28
    assert sampler_module._groups([10, 10, 9, 9], size=2) == [(0, 4, 10)]  # within 10 %: one matmul


def test_a_rewound_sequence_goes_on_from_its_kept_prefix(tokenizer, tiny_model):
    """Greedy: taking tokens back and decoding again gives the same sequence as never rewinding,
    so the kept prefix's cache and positions are right; other slots are unaffected."""
    prompts = _prompts(tokenizer)
    requests = [Request(str(i), p) for i, p in enumerate(prompts)]
    sampler = ContinuousBatchSampler(tiny_model, stop_ids=set(), slots=2)
    plain = {c.request_id: c.token_ids for c in sampler.generate(requests, GREEDY)}
    rewound = set()

    def rewind_once(slot_requests, generated):
        rewind = {}
        for row, (request, ids) in enumerate(zip(slot_requests, generated)):
            if len(ids) == 9 and request.request_id not in rewound:
                rewound.add(request.request_id)
                rewind[row] = 3
        return MaskResult(None, rewind)

    again = {c.request_id: c.token_ids for c in sampler.generate(requests, GREEDY, rewind_once)}
    assert rewound == set(plain) and again == plain


def test_a_refill_with_a_short_prompt_keeps_the_long_sequences_cache():
    """Short requests that stop at once refill a slot next to a ~300-position sequence: the cache
    must not shrink to the new prompt's length (it did, and long batches then wrote text from a
    truncated context). The shipped model, since a random one barely depends on far context."""
    from crystalreasoner.checkpoints import shipped_checkpoint
    from crystalreasoner.training.models import load_checkpoint
    from crystalreasoner.training.tokenizer import THINK_START

    model, tokenizer = load_checkpoint(shipped_checkpoint("tiny-cpu"))
    chat = [{"role": "user", "content": "Generate a crystal structure of TmMgHg2. The cell contains Tm1 Mg1 Hg2."}]
    head = tokenizer(tokenizer.apply_chat_template(chat, tokenize=False, add_generation_prompt=True),
                     add_special_tokens=False)["input_ids"]
    context = model.generate(torch.tensor([head]), do_sample=False, max_new_tokens=300, pad_token_id=0)[0]
    long_prompt, expected = context[:-40].tolist(), context[-40:].tolist()
    short = [tokenizer(f"<|user|>{f}<|assistant|>", add_special_tokens=False)["input_ids"] for f in ("Fe2O3", "MgO", "NaCl")]
    think = tokenizer.convert_tokens_to_ids(THINK_START)  # what a fresh answer starts with: short ones stop at once
    sampler = ContinuousBatchSampler(model, stop_ids={think}, slots=2)
    params = SamplingParams(temperature=1.0, top_k=1, top_p=1.0, max_new_tokens=40)
    requests = [Request("long", long_prompt)] + [Request(str(i), p) for i, p in enumerate(short)]
    ours = {c.request_id: c.token_ids for c in sampler.generate(requests, params)}
    assert [ours[str(i)] for i in range(3)] == [[think]] * 3
    assert ours["long"] == expected


def test_stop_tokens_and_length_cap(tokenizer, tiny_model):
    prompts = _prompts(tokenizer)
    sampler = ContinuousBatchSampler(tiny_model, stop_ids=set(), slots=4)
    first = next(sampler.generate([Request("a", prompts[0])], GREEDY))
    stop = first.token_ids[5]
    sampler = ContinuousBatchSampler(tiny_model, stop_ids={stop}, slots=4)
    stopped = next(sampler.generate([Request("a", prompts[0])], GREEDY))
    assert stopped.finish_reason == "stop"
    assert stopped.token_ids == first.token_ids[: first.token_ids.index(stop) + 1]
    assert first.finish_reason == "length" and len(first.token_ids) == 24


def test_sampling_is_seeded(tokenizer, tiny_model):
    requests = [Request(str(i), p) for i, p in enumerate(_prompts(tokenizer) * 3)]
    sampler = ContinuousBatchSampler(tiny_model, stop_ids=set(), slots=5)

    def run(seed):
        params = SamplingParams(max_new_tokens=16, seed=seed)
        return {c.request_id: c.token_ids for c in sampler.generate(requests, params)}

    assert run(1) == run(1)
    assert run(1) != run(2)


def test_top_k_top_p_and_mask_limit_the_choices():
    logits = torch.tensor([[5.0, 4.0, 3.0, 0.0, -1.0]] * 200)
    generator = torch.Generator().manual_seed(0)
    top2 = sample_tokens(logits, SamplingParams(top_k=2, top_p=1.0), generator)
    assert set(top2.tolist()) == {0, 1}
    nucleus = sample_tokens(logits, SamplingParams(top_k=0, top_p=0.5), generator)
    assert set(nucleus.tolist()) == {0}  # token 0 alone holds > 50 % of the mass
    allowed = torch.tensor([[False, False, True, True, False]] * 200)
    masked = sample_tokens(logits, SamplingParams(top_k=50, top_p=1.0), generator, allowed)
    assert set(masked.tolist()) <= {2, 3}


def test_qwen2_models_with_projection_biases_match_hf(tokenizer):
    from transformers import Qwen2Config, Qwen2ForCausalLM

    torch.manual_seed(1)
    model = Qwen2ForCausalLM(Qwen2Config(
        vocab_size=len(tokenizer), hidden_size=32, num_hidden_layers=2, num_attention_heads=4,
        num_key_value_heads=2, intermediate_size=64, max_position_embeddings=512,
    )).eval()
    _assert_greedy_matches_hf(model, _prompts(tokenizer), slots=3)

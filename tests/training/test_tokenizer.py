"""The from-scratch BPE: digits one per token, and element symbols copyable from the prompt."""

from __future__ import annotations

from crystalreasoner.training.tokenizer import train_bpe_tokenizer

PROMPT = "Generate a crystal structure of TmMgHg2. The cell contains Tm1 Mg1 Hg2."
ANSWER = "<CIF>\nP1\n4.120 4.120 5.771\n90.000 90.000 90.000\nTm 1 0.0140 0.2960 0.4768\nMg 1 0.5 0.5 0.5\n</CIF>"
CORPUS = [PROMPT + ANSWER] * 50 + ["The cell contains Lu1 Si2 Pd2.\nLu 1 0.25 0.5 0.75\n"] * 50


def test_digits_are_single_tokens():
    tokenizer = train_bpe_tokenizer(CORPUS, vocab_size=300)
    assert all(len(t.lstrip("Ġ")) <= 1 for t in tokenizer.tokenize("0.2960 4.120") if any(c.isdigit() for c in t))


def test_isolated_whitespace_makes_an_element_the_same_token_in_prompt_and_block():
    merged = train_bpe_tokenizer(CORPUS, vocab_size=300)
    isolated = train_bpe_tokenizer(CORPUS, vocab_size=300, isolate_whitespace=True)
    # merged BPE: " Tm" in the prompt, "Tm" at the start of a structure line: two different tokens
    assert "ĠTm" in merged.tokenize(PROMPT) and "ĠTm" not in merged.tokenize(ANSWER)
    prompt_tokens, answer_tokens = isolated.tokenize(PROMPT), isolated.tokenize(ANSWER)
    assert {"Tm", "Mg"} <= set(prompt_tokens) & set(answer_tokens)
    assert not any(t.startswith("Ġ") and len(t) > 1 for t in prompt_tokens + answer_tokens)
    assert isolated.decode(isolated(PROMPT + ANSWER).input_ids) == PROMPT + ANSWER

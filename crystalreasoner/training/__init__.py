"""Training: tokenizers, models (tiny from-scratch or any Hugging Face causal LM), SFT, GRPO."""

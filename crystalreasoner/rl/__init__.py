"""Reinforcement learning (GRPO) on the physics reward, and the property specialists."""

"""Sampling structures from a trained model: a continuous-batching sampler and constraints."""

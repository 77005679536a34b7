"""Checks on generated structures, shared by the RL reward and the evaluation report."""

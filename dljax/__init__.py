"""dljax: classic deep-learning experiments in JAX/Flax, one trainer over per-experiment configs."""

__version__ = "0.1.0"

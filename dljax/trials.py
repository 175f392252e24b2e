"""Trials trained together: configs that differ only in values, vmapped in one jit.

A sweep over the values of one recipe (seeds, learning rates, dropout rates, regulariser
strengths) need not pay one process and one compile per trial. The trainer stacks the trials'
states on a leading axis and vmaps every step over it: each trial's differing values enter the
step as traced scalars, substituted into the first trial's config, and the task is built from
that config inside the trace, once for all trials.

So code that builds a task must not decide anything in Python from a key of `VALUE_KEYS`; where
a value only switches work off (a rate or strength of 0), `nonzero` says whether to build it.
"""

from typing import Any

# Keys whose values may differ between trials trained together. Every other key decides a shape,
# a structure or the data, and must be the same (tests/test_trials.py traces each of these).
VALUE_KEYS = (
    "seed",
    "model.dropout",
    "model.conv_dropout",
    "optimizer.learning_rate",
    "optimizer.end_learning_rate",
    "optimizer.momentum",
    "optimizer.b1",
    "optimizer.b2",
    "optimizer.eps",
    "optimizer.rho",
    "optimizer.l1",
    "optimizer.l2",
    "optimizer.weight_decay",
)


def nonzero(value: Any) -> bool:
  """False only for a number equal to 0; a traced value may be anything, so it counts as nonzero."""
  return not isinstance(value, int | float) or value != 0

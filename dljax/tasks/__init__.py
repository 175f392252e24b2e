"""The task registry. A task is a few pure functions; the trainer (dljax.train) does the rest.

    init(rng, example_batch) -> state                 state: any pytree with a `.params` field
    train_step(state, batch, rng) -> (state, metrics) metrics: scalar means over the batch
    eval_step(state, batch) -> metrics                metrics: per-example values, shape [B]
    analyze(outputs, examples, workdir) -> metrics    optional, once, on the test split
    predict(state, batch) -> outputs                  optional, per example, for analyze

`analyze` sees every test example (numpy, in split order) with its per-example `predict` (else
`eval_step`) outputs, for what means cannot say (medians, percentiles, histograms, the worst
predictions); it may write PNGs into the workdir and returns extra test metrics for results.json.
`predict` exists because the trainer averages every `eval_step` output into the metrics.

The trainer jits and shards them, feeds batches, averages metrics, evaluates, stops early,
checkpoints and writes results; it assumes no particular model, optimiser or loss, so a GAN
(two optimisers in its state), a VAE or a DQN plugs in as another entry below.
"""

import types
from collections.abc import Callable
from typing import Any, NamedTuple

import jax
import ml_collections
import numpy as np

from dljax.data import Splits
from dljax.registry import lookup
from dljax.tasks import classification, clock

State = Any
Batch = dict[str, jax.Array]
Metrics = dict[str, jax.Array]
# analyze(per-example eval outputs, the test examples, workdir) -> extra test metrics
Analyze = Callable[[dict[str, np.ndarray], dict[str, np.ndarray], str], dict[str, float]]


class Task(NamedTuple):
  init: Callable[[jax.Array, Batch], State]
  train_step: Callable[[State, Batch, jax.Array], tuple[State, Metrics]]
  eval_step: Callable[[State, Batch], Metrics]
  analyze: Analyze | None = None
  # Per-example outputs for `analyze` beyond the metrics (e.g. the predicted values), which the
  # trainer must not average; None: `eval_step`'s.
  predict: Callable[[State, Batch], Metrics] | None = None


# name -> the task's module: `build(config, data, total_steps)` returns the Task's functions in
# order, `validate(config)` raises a one-line ConfigError for a config the task cannot train.
TASKS: dict[str, types.ModuleType] = {
    "classification": classification,
    "clock": clock,
}


def build(config: ml_collections.ConfigDict, data: Splits, total_steps: int) -> Task:
  return Task(*lookup(TASKS, config.task, "config.task", "task").build(config, data, total_steps))


def validate(config: ml_collections.ConfigDict) -> None:
  """The task's own checks (its losses, outputs, ...), before any data is read."""
  lookup(TASKS, config.task, "config.task", "task").validate(config)

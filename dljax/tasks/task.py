"""The task contract. A task is a few pure functions; the trainer does the rest.

    init(rng, example_batch) -> state                  any pytree with a `.params` field
    train_step(state, batch, rng) -> (state, metrics)  metrics: scalars for this step
    eval_step(state, batch, rng) -> values             per-example values, shape [B]
    finalize(totals, count) -> metrics                 the split's metrics from the values'
                                                       sums over its `count` examples
    predict(state, batch, rng) -> outputs              per-example outputs from inputs alone
    describe(outputs) -> rows                          what a person reads about each example
    evaluators: [evaluate(state, rng, artefacts) -> metrics], at every evaluation
    analyze(state, outputs, examples, workdir) -> metrics, once, on the test split

The trainer jits and shards the steps, feeds batches, sums `eval_step`'s values over a split
(padding masked out) and turns the sums into metrics with `finalize`: the mean of each value
by default, any ratio of sums otherwise (perplexity from summed log-likelihoods and token
counts, accuracy over tokens rather than sequences). What a mean of sums cannot give (an
Inception Score over all samples, a clustering accuracy, sample grids, generated text) is an
evaluator's: it gets one trial's state and a random key that is the same at every evaluation
(fixed noise, so samples can be compared across evaluations), writes PNGs and text through
`artefacts` (into the workdir and TensorBoard) and returns metrics that join the validation
metrics, early stopping included. `analyze` sees every test example with its per-example
`eval_step` values and `predict` outputs, for medians, histograms and the worst predictions.

A task whose config has no `data` section makes its own experience (an environment written in
JAX, a sampler): its steps get an empty batch, it trains for `num_steps`, and evaluators are its
validation. Everything else is the same: workdir files, exact resume, SIGTERM, early stopping,
trials trained together.

Build a Task by keyword; each registered module has `build(config, data, total_steps) -> Task`
(`data` is None without a `data` section) and `validate(config)`, which raises a one-line
ConfigError for a config the task cannot train, before any data is read. A task's own choices
(its loss, its outputs) live in its own config section, named after the task.
"""

import dataclasses
from collections.abc import Callable, Sequence
from typing import Any

import jax
import numpy as np

State = Any
Batch = dict[str, jax.Array]
Metrics = dict[str, jax.Array]
HostValues = dict[str, np.ndarray]
# evaluate(one trial's state, a fixed random key, artefacts) -> metrics (writers.Artefacts)
Evaluator = Callable[[State, jax.Array, Any], dict[str, float]]


def mean_of_sums(totals: dict[str, float], count: int) -> dict[str, float]:
  """The default `finalize`: every per-example value averaged over the split."""
  return {name: total / count for name, total in totals.items()}


@dataclasses.dataclass(frozen=True, kw_only=True)
class Task:
  init: Callable[[jax.Array, Batch], State]
  train_step: Callable[[State, Batch, jax.Array], tuple[State, Metrics]]
  eval_step: Callable[[State, Batch, jax.Array], Metrics] | None = None
  finalize: Callable[[dict[str, float], int], dict[str, float]] = mean_of_sums
  predict: Callable[[State, Batch, jax.Array], Metrics] | None = None
  describe: Callable[[HostValues], list[dict[str, Any]]] | None = None
  evaluators: Sequence[Evaluator] = ()
  analyze: Callable[[State, HostValues, HostValues, str], dict[str, float]] | None = None

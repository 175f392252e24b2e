"""What the sequence tasks share (family C): one network, per-example values, a gradient step.

A task passes `inputs(batch) -> the network's input` and `values(outputs, batch) -> {name:
value_B}`, per-example values whose sums over a split `finalize` turns into metrics. The train
step's objective is `finalize`'s 'loss' of the same sums over the batch, so a ratio of sums
(a language model's loss over tokens, not over sequences) is trained exactly as it is evaluated.
`finalize` only adds, multiplies, divides and raises to powers (`math.e ** loss`), so it works
on the trainer's floats and on traced values alike.
"""

from collections.abc import Callable
from typing import Any

import jax
import ml_collections
import optax
from flax import struct

from dljax import models, optim
from dljax.tasks.task import Task, mean_of_sums

Batch = dict[str, jax.Array]
ValuesFn = Callable[[Any, Batch], dict[str, jax.Array]]  # outputs, batch -> {name: value_B}
FinalizeFn = Callable[[dict[str, Any], Any], dict[str, Any]]


@struct.dataclass
class State:
  params: Any
  opt_state: Any


def build(config: ml_collections.ConfigDict, total_steps: int, *,
          inputs: Callable[[Batch], jax.Array], values: ValuesFn,
          finalize: FinalizeFn = mean_of_sums,
          init_params: Callable[[Any], Any] = lambda params: params, **task_fields) -> Task:
  """The Task of `config.model` on `inputs(batch)`, trained on `finalize(sums)['loss']`.

  `init_params` changes the initial parameters (e.g. loads pretrained embeddings);
  `task_fields` (evaluators, analyze, predict, ...) join the Task.
  """
  model = models.build(config.model)
  tx = optim.make_optimizer(config.optimizer, total_steps)

  def init(rng, batch):
    params = init_params(model.init(rng, inputs(batch))["params"])
    return State(params=params, opt_state=tx.init(params))

  def batch_metrics(params, batch, rng, train):
    outputs = model.apply({"params": params}, inputs(batch), train=train,
                          rngs={"dropout": rng} if train else None)
    sums = {name: value_B.sum() for name, value_B in values(outputs, batch).items()}
    metrics = finalize(sums, len(next(iter(batch.values()))))
    return metrics["loss"], metrics

  def train_step(state, batch, rng):
    (_, metrics), grads = jax.value_and_grad(batch_metrics, has_aux=True)(
        state.params, batch, rng, True)
    updates, opt_state = tx.update(grads, state.opt_state, state.params)
    return State(params=optax.apply_updates(state.params, updates), opt_state=opt_state), metrics

  def eval_step(state, batch, rng):
    del rng
    return values(model.apply({"params": state.params}, inputs(batch), train=False), batch)

  return Task(init=init, train_step=train_step, eval_step=eval_step, finalize=finalize,
              **task_fields)

"""Supervised learning on images: one network, a per-example loss, per-example metrics.

Classification and clock reading are both this; they differ only in how outputs meet labels.
A task passes `loss(outputs_BK, batch) -> loss_B` and `metrics(outputs_BK, batch) -> {name:
value_B}`, and optionally `inputs_and_targets(rng, images_BHWC, batch) -> (inputs, batch)`, which
makes the network's inputs and targets from the preprocessed images inside the jitted step (a
denoiser corrupts its inputs and targets the clean images; a coloriser feeds grey and targets
colour); this module does the rest: the state, preprocessing uint8 images (permuting their
pixels and standardising them, if asked) and augmenting them per example inside the jitted step,
so both input pipelines feed the same inputs, the gradient step, BatchNorm statistics (frozen
BatchNorm layers run in inference mode, as Keras' `trainable=False`) and the dropout RNG.
"""

import contextlib
import re
from collections.abc import Callable
from typing import Any

import jax
import jax.numpy as jnp
import ml_collections
import numpy as np
import optax
from flax import linen as nn
from flax import struct

from dljax import models, optim
from dljax.data import Splits, augment
from dljax.tasks.task import Task

Batch = dict[str, jax.Array]
LossFn = Callable[[jax.Array, Batch], jax.Array]  # outputs_BK, batch -> loss_B
MetricsFn = Callable[[jax.Array, Batch], dict[str, jax.Array]]  # outputs_BK, batch -> {name: _B}
# rng, preprocessed images, batch -> the network's inputs, the batch with any targets added
InputsAndTargetsFn = Callable[[jax.Array, jax.Array, Batch], tuple[jax.Array, Batch]]


@struct.dataclass
class State:
  params: Any
  batch_stats: Any  # BatchNorm running statistics; {} for models without BatchNorm
  opt_state: Any


def permute_pixels(images_BHWC: jax.Array, seed: int) -> jax.Array:
  """Moves the pixels of every image by one fixed permutation drawn from `seed` (permuted MNIST).

  The permutation depends only on the seed and the image size, so every image, train or test,
  is permuted the same way; a pixel's channels move together. One gather inside the jitted step.
  """
  b, h, w, c = images_BHWC.shape
  permutation = np.random.default_rng(seed).permutation(h * w)
  return images_BHWC.reshape(b, h * w, c)[:, permutation].reshape(b, h, w, c)


def preprocessor(config: ml_collections.ConfigDict,
                 data: Splits) -> Callable[[jax.Array], jax.Array]:
  """uint8 images -> the model's float32 inputs, as `config.data` says.

  Scaled to [0, 1], or standardised by the train split's statistics per channel or per pixel,
  then permuted if `permute_pixels` (after standardising: each pixel keeps its own statistics).
  """
  if config.normalize == "none":
    scale = lambda images: images.astype(jnp.float32) / 255.0
  elif config.normalize == "per_channel":
    mean_C, std_C = (stat_C / 255.0 for stat_C in data.train_stats("image"))
    scale = lambda images: (images.astype(jnp.float32) / 255.0 - mean_C) / std_C
  else:
    mean_HWC, std_HWC = (stat / 255.0 for stat in data.train_stats("image", per_pixel=True))
    scale = lambda images: (images.astype(jnp.float32) / 255.0 - mean_HWC) / (std_HWC + 1e-7)
  if not config.permute_pixels:
    return scale
  return lambda images: permute_pixels(scale(images), config.permutation_seed)


def frozen_batch_norm(freeze: str) -> Callable:
  """A Flax method interceptor: BatchNorm layers whose scale matches the optimiser's `freeze`
  pattern normalise with their running statistics and leave them alone, in training too
  (Keras' `trainable=False`); a fine-tuned backbone's statistics then stay the pretrained ones."""
  frozen = re.compile(freeze)

  def intercept(next_fun, args, kwargs, context):
    module = context.module
    if (isinstance(module, nn.BatchNorm) and context.method_name == "__call__"
        and frozen.search("/".join((*module.path, "scale")))):
      kwargs = {**kwargs, "use_running_average": True}
    return next_fun(*args, **kwargs)

  return intercept


def _images_are_inputs(rng, images_BHWC, batch):
  del rng
  return images_BHWC, batch


def build(config: ml_collections.ConfigDict, data: Splits, total_steps: int, *, loss: LossFn,
          metrics: MetricsFn, predictions: MetricsFn | None = None,
          inputs_and_targets: InputsAndTargetsFn = _images_are_inputs,
          train_metrics: MetricsFn | None = None, **task_fields) -> Task:
  """The Task of `config.model` trained on `loss`; `task_fields` (analyze, describe, ...) join it.

  Train steps report the mean loss and the means of `train_metrics` (default: `metrics`; a task
  whose metrics cost much, e.g. SSIM, logs cheaper ones while training); eval steps report the
  loss and `metrics` per example. `predict` gives `predictions(outputs_BK, batch)`, per-example
  outputs made from the inputs alone (no labels), e.g. class probabilities or a decoded time.
  """
  model = models.build(config.model)
  tx = optim.make_optimizer(config.optimizer, total_steps)
  preprocess = preprocessor(config.data, data)
  augment_args = config.data.augment.to_dict()
  freeze = config.optimizer.freeze
  training_mode = lambda: (nn.intercept_methods(frozen_batch_norm(freeze)) if freeze
                           else contextlib.nullcontext())

  def init(rng, batch):
    # The network is made for the inputs `inputs_and_targets` gives it (grey ones, resized ones).
    inputs, _ = inputs_and_targets(jax.random.fold_in(rng, 2), preprocess(batch["image"]), batch)
    variables = model.init(rng, inputs, train=False)
    params = variables["params"]
    return State(params=params, batch_stats=variables.get("batch_stats", {}),
                 opt_state=tx.init(params))

  def train_step(state, batch, rng):
    # The inputs' stream is folded in apart, so augmentation and dropout draw what they always did.
    augment_rng, dropout_rng = jax.random.split(rng)
    inputs_rng = jax.random.fold_in(rng, 2)
    images = augment.augment(augment_rng, preprocess(batch["image"]), **augment_args)
    inputs, batch = inputs_and_targets(inputs_rng, images, batch)

    def mean_loss(params):
      with training_mode():
        outputs_BK, updates = model.apply(
            {"params": params, "batch_stats": state.batch_stats}, inputs, train=True,
            rngs={"dropout": dropout_rng}, mutable=["batch_stats"])
      return loss(outputs_BK, batch).mean(), (outputs_BK, updates)

    (loss_value, (outputs_BK, updates)), grads = jax.value_and_grad(mean_loss, has_aux=True)(
        state.params)
    param_updates, opt_state = tx.update(grads, state.opt_state, state.params)
    state = State(params=optax.apply_updates(state.params, param_updates),
                  batch_stats=updates.get("batch_stats", state.batch_stats), opt_state=opt_state)
    means = {name: value_B.mean()
             for name, value_B in (train_metrics or metrics)(outputs_BK, batch).items()}
    return state, {"loss": loss_value, **means}

  def apply(state, batch, rng):
    inputs, batch = inputs_and_targets(rng, preprocess(batch["image"]), batch)
    outputs_BK = model.apply({"params": state.params, "batch_stats": state.batch_stats}, inputs,
                             train=False)
    return outputs_BK, batch

  def eval_step(state, batch, rng):
    outputs_BK, batch = apply(state, batch, rng)
    return {"loss": loss(outputs_BK, batch), **metrics(outputs_BK, batch)}

  def predict(state, batch, rng):
    return predictions(*apply(state, batch, rng))

  return Task(init=init, train_step=train_step, eval_step=eval_step,
              predict=predict if predictions else None, **task_fields)


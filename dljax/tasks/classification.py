"""Image classification with a softmax output and a cross-entropy loss (families A and G).

Images arrive as uint8 and are scaled to [0, 1] (and standardised, if asked) inside the jitted
step; augmentation runs there too, per example, from the step's RNG.
"""

from typing import Any

import jax
import jax.numpy as jnp
import ml_collections
import optax
from flax import struct

from dljax import models, optim
from dljax.data import Split, Splits, augment, channel_stats
from dljax.errors import ConfigError


@struct.dataclass
class State:
  params: Any
  batch_stats: Any  # BatchNorm running statistics; {} for models without BatchNorm
  opt_state: Any


def _sparse_categorical_crossentropy(logits_BK, label_B):
  return optax.softmax_cross_entropy_with_integer_labels(logits_BK, label_B)


def _categorical_crossentropy(logits_BK, label_B):
  """Keras' CCE on one-hot labels: the same value, kept as a name the reports use."""
  return optax.softmax_cross_entropy(logits_BK, jax.nn.one_hot(label_B, logits_BK.shape[-1]))


LOSSES = {
    "sparse_categorical_crossentropy": _sparse_categorical_crossentropy,
    "categorical_crossentropy": _categorical_crossentropy,
}


def _standardizer(config: ml_collections.ConfigDict, train: Split):
  """uint8 images -> float32 in [0, 1], or standardised by the train split's channel statistics."""
  if config.normalize == "none":
    return lambda images: images.astype(jnp.float32) / 255.0
  mean_C, std_C = (stat_C / 255.0 for stat_C in channel_stats(train, "image"))
  return lambda images: (images.astype(jnp.float32) / 255.0 - mean_C) / std_C


def build(config: ml_collections.ConfigDict, data: Splits, total_steps: int):
  """Returns (init, train_step, eval_step) for `config.model` trained with `config.loss`."""
  if config.loss not in LOSSES:
    raise ConfigError(f"config.loss={config.loss!r}: unknown loss for classification; "
                      f"allowed: {', '.join(sorted(LOSSES))}")
  model = models.build(config.model)
  tx = optim.make_optimizer(config.optimizer, total_steps)
  loss_fn = LOSSES[config.loss]
  standardize = _standardizer(config.data, data.train)
  augment_args = config.data.augment.to_dict()

  def init(rng, batch):
    variables = model.init(rng, standardize(batch["image"]), train=False)
    params = variables["params"]
    return State(params=params, batch_stats=variables.get("batch_stats", {}),
                 opt_state=tx.init(params))

  def train_step(state, batch, rng):
    augment_rng, dropout_rng = jax.random.split(rng)
    images = augment.augment(augment_rng, standardize(batch["image"]), **augment_args)

    def loss(params):
      logits, updates = model.apply(
          {"params": params, "batch_stats": state.batch_stats}, images, train=True,
          rngs={"dropout": dropout_rng}, mutable=["batch_stats"])
      return loss_fn(logits, batch["label"]).mean(), (logits, updates)

    (loss_value, (logits, updates)), grads = jax.value_and_grad(loss, has_aux=True)(state.params)
    param_updates, opt_state = tx.update(grads, state.opt_state, state.params)
    state = State(params=optax.apply_updates(state.params, param_updates),
                  batch_stats=updates.get("batch_stats", state.batch_stats), opt_state=opt_state)
    accuracy = (logits.argmax(-1) == batch["label"]).mean()
    return state, {"loss": loss_value, "accuracy": accuracy}

  def eval_step(state, batch):
    logits = model.apply({"params": state.params, "batch_stats": state.batch_stats},
                         standardize(batch["image"]), train=False)
    return {"loss": loss_fn(logits, batch["label"]),
            "accuracy": (logits.argmax(-1) == batch["label"]).astype(jnp.float32)}

  return init, train_step, eval_step

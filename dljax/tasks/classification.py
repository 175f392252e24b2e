"""Image classification with a softmax output and a cross-entropy loss (families A and G).

The model, the step and the preprocessing are `supervised`'s; this adds the losses and accuracy.
"""

import jax
import jax.numpy as jnp
import ml_collections
import optax

from dljax.data import Splits
from dljax.errors import ConfigError
from dljax.tasks import supervised


def _sparse_categorical_crossentropy(logits_BK, label_B):
  return optax.softmax_cross_entropy_with_integer_labels(logits_BK, label_B)


def _categorical_crossentropy(logits_BK, label_B):
  """Keras' CCE on one-hot labels: the same value, kept as a name the reports use."""
  return optax.softmax_cross_entropy(logits_BK, jax.nn.one_hot(label_B, logits_BK.shape[-1]))


LOSSES = {
    "sparse_categorical_crossentropy": _sparse_categorical_crossentropy,
    "categorical_crossentropy": _categorical_crossentropy,
}


def build(config: ml_collections.ConfigDict, data: Splits, total_steps: int):
  """Returns (init, train_step, eval_step) for `config.model` trained with `config.loss`."""
  if config.loss not in LOSSES:
    raise ConfigError(f"config.loss={config.loss!r}: unknown loss for classification; "
                      f"allowed: {', '.join(sorted(LOSSES))}")
  loss_fn = LOSSES[config.loss]
  return supervised.build(
      config, data, total_steps,
      loss=lambda logits_BK, batch: loss_fn(logits_BK, batch["label"]),
      metrics=lambda logits_BK, batch: {
          "accuracy": (logits_BK.argmax(-1) == batch["label"]).astype(jnp.float32)})

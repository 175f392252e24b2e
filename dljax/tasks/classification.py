"""Image classification (families A and G): the model's logits, an output activation, a Keras loss.

The model, the step and the preprocessing are `supervised`'s; this adds the output activation,
the losses and accuracy, chosen in `config.classification` (`task_config`). Models return the
last Dense layer's pre-activations (logits); this task applies `output_activation` (one choice
with `loss`: softmax with cross-entropy is fused into log-softmax, which keeps the loss exact and
its gradient p - y stable) and computes accuracy as the argmax of the activated outputs, as
Keras does. `predict` gives the activated outputs (`probabilities`) and their argmax.

Losses follow Keras 3 on the activated outputs p and one-hot labels y (checked against
keras/src/losses/losses.py and keras/src/backend/jax/nn.py; epsilon = 1e-7):
  sparse_categorical_crossentropy, categorical_crossentropy (the same value, two names):
      -sum(y log p') with p' = p / sum(p) clipped to [eps, 1 - eps] (`from_logits=False`), but
      with a softmax output -sum(y log_softmax(logits)), as tf.keras 2 did through the logits it
      keeps on softmax outputs (`_keras_logits`, tensorflow/python/keras/backend.py). Keras 3 on
      JAX keeps no logits and clips softmax outputs too; the two differ only where the label's
      p < 1e-7 (a loss above 16.1, which the clipped form caps, with no gradient).
  poisson:             mean over classes of p - y log(p + eps)
  kl_divergence:       sum over classes of y' log(y' / p'), y' and p' clipped to [eps, 1]
  mean_squared_error:  mean over classes of (p - y)^2
As in Keras, a non-normalised output is taken as it comes: all-zero relu outputs make the
cross-entropy 0/0 = NaN, and outputs below -eps make the Poisson loss NaN.
"""

from collections.abc import Callable, Sequence

import jax
import jax.numpy as jnp
import ml_collections
import numpy as np
import optax

from dljax.data import Splits
from dljax.models import layers
from dljax.registry import lookup
from dljax.tasks import supervised
from dljax.tasks.task import Task

EPSILON = 1e-7  # keras.backend.epsilon()

LossFn = Callable[[jax.Array, jax.Array], jax.Array]  # (outputs_BK, one-hot labels_BK) -> loss_B
ActivationFn = Callable[[jax.Array], jax.Array]  # logits_BK -> outputs_BK

OUTPUT_ACTIVATIONS: dict[str, ActivationFn] = {"softmax": jax.nn.softmax, **layers.ACTIVATIONS}


def _crossentropy(p_BK, y_BK):
  p_BK = jnp.clip(p_BK / jnp.sum(p_BK, axis=-1, keepdims=True), EPSILON, 1.0 - EPSILON)
  return -jnp.sum(y_BK * jnp.log(p_BK), axis=-1)


def _poisson(p_BK, y_BK):
  return jnp.mean(p_BK - y_BK * jnp.log(p_BK + EPSILON), axis=-1)


def _kl_divergence(p_BK, y_BK):
  y_BK, p_BK = jnp.clip(y_BK, EPSILON, 1.0), jnp.clip(p_BK, EPSILON, 1.0)
  return jnp.sum(y_BK * jnp.log(y_BK / p_BK), axis=-1)


def _mean_squared_error(p_BK, y_BK):
  return jnp.mean(jnp.square(p_BK - y_BK), axis=-1)


LOSSES: dict[str, LossFn] = {
    "sparse_categorical_crossentropy": _crossentropy,
    "categorical_crossentropy": _crossentropy,
    "poisson": _poisson,
    "kl_divergence": _kl_divergence,
    "mean_squared_error": _mean_squared_error,
}


def task_config(**overrides) -> ml_collections.ConfigDict:
  """`config.classification`: the loss and the output activation, Keras' usual pair by default."""
  config = ml_collections.ConfigDict(dict(
      loss="sparse_categorical_crossentropy",  # a key of LOSSES
      output_activation="softmax",  # a key of OUTPUT_ACTIVATIONS, applied to the logits
  ))
  config.update(overrides)
  return config


def output_activation(name: str) -> ActivationFn:
  return lookup(OUTPUT_ACTIVATIONS, name, "config.classification.output_activation",
                "output activation")


def logits_loss(loss: str, activation: str) -> LossFn:
  """(logits_BK, one-hot labels_BK) -> loss_B: the loss `loss` of the `activation` outputs."""
  loss_fn = lookup(LOSSES, loss, "config.classification.loss", "loss for classification")
  activate = output_activation(activation)
  if loss_fn is _crossentropy and activation == "softmax":
    return optax.softmax_cross_entropy
  return lambda logits_BK, y_BK: loss_fn(activate(logits_BK), y_BK)


def validate(config: ml_collections.ConfigDict) -> None:
  logits_loss(config.classification.loss, config.classification.output_activation)


def describe(label_names: Sequence[str] | None) -> Callable[[dict[str, np.ndarray]], list[dict]]:
  """`predict` outputs -> one row per example: the class (its name, if the data set has names)
  and its probability, then every class's probability."""
  def rows(outputs):
    names = label_names or [str(k) for k in range(outputs["probabilities"].shape[-1])]
    return [{"class": names[int(label)], "probability": float(p_K[label]),
             **{f"p({name})": float(p) for name, p in zip(names, p_K, strict=True)}}
            for label, p_K in zip(outputs["label"], outputs["probabilities"], strict=True)]
  return rows


def build(config: ml_collections.ConfigDict, data: Splits, total_steps: int) -> Task:
  """The Task of `config.model` trained with `config.classification`'s loss."""
  choices = config.classification
  activate = output_activation(choices.output_activation)
  loss = logits_loss(choices.loss, choices.output_activation)
  return supervised.build(
      config, data, total_steps,
      loss=lambda logits_BK, batch: loss(logits_BK,
                                         jax.nn.one_hot(batch["label"], logits_BK.shape[-1])),
      metrics=lambda logits_BK, batch: {
          "accuracy": (activate(logits_BK).argmax(-1) == batch["label"]).astype(jnp.float32)},
      predictions=lambda logits_BK, batch: {"probabilities": activate(logits_BK),
                                            "label": activate(logits_BK).argmax(-1)},
      describe=describe(data.label_names))

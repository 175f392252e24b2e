"""The classification task: output activations, Keras losses against hand-computed values,
accuracy on the activated outputs, and permuted pixels (a fixed, seeded bijection)."""

import math
import os
import re

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from dljax import config_lib
from dljax.data import Splits
from dljax.errors import ConfigError
from dljax.tasks import classification, supervised
from tests.conftest import REPO

LN3 = math.log(3.0)


@pytest.mark.parametrize("loss, activation, logits, label, expected", [
    # Keras normalises non-softmax outputs: [.4, .6, 1] / 2 = [.2, .3, .5]; -ln .5
    ("categorical_crossentropy", "linear", [0.4, 0.6, 1.0], 2, 0.6931472),
    ("sparse_categorical_crossentropy", "linear", [0.2, 0.3, 0.5], 2, 0.6931472),
    # ... and clips to [1e-7, 1 - 1e-7]: -ln 1e-7
    ("categorical_crossentropy", "linear", [0.0, 0.0, 1.0], 0, 16.118096),
    # sigmoid [.5, .75, .5], normalised: .75 / 1.75; -ln(3/7)
    ("categorical_crossentropy", "sigmoid", [0.0, LN3, 0.0], 1, 0.8472979),
    # softmax: exact log-softmax, ln(e + e^2 + e^3) - 3 ...
    ("sparse_categorical_crossentropy", "softmax", [1.0, 2.0, 3.0], 2, 0.4076060),
    ("categorical_crossentropy", "softmax", [1.0, 2.0, 3.0], 2, 0.4076060),
    # ... not clipped at -ln 1e-7 = 16.1: the label's logit is 100 below the top one.
    ("sparse_categorical_crossentropy", "softmax", [0.0, 0.0, 100.0], 0, 100.0),
    # mean(p - y ln(p + 1e-7)) = (.2 + .3 + .5 - ln .5) / 3
    ("poisson", "linear", [0.2, 0.3, 0.5], 2, 0.5643823),
    ("poisson", "sigmoid", [0.0, LN3, 0.0], 1, 0.6792273),  # (.5 + .75 - ln .75 + .5) / 3
    # sum(y ln(y / p)), both clipped to [1e-7, 1]: ln 2 + 1e-7 (ln(1e-7 / .2) + ln(1e-7 / .3))
    ("kl_divergence", "linear", [0.2, 0.3, 0.5], 2, 0.6931442),
    ("mean_squared_error", "linear", [0.2, 0.3, 0.5], 2, 0.1266667),  # (.04 + .09 + .25) / 3
    # softmax [1, 2, 3] = [.0900306, .2447285, .6652410]
    ("mean_squared_error", "softmax", [1.0, 2.0, 3.0], 2, 0.0600204),
])
def test_losses_match_keras_formulas_on_a_3_class_example(loss, activation, logits, label,
                                                          expected):
  loss_fn = classification.logits_loss(loss, activation)
  loss_B = loss_fn(jnp.array([logits]), jax.nn.one_hot(jnp.array([label]), 3))
  assert loss_B.shape == (1,)
  np.testing.assert_allclose(loss_B, [expected], rtol=1e-6)


@pytest.mark.parametrize("call, message", [
    (lambda: classification.logits_loss("hinge", "softmax"),
     r"config.classification.loss='hinge': unknown loss for classification; allowed: "
     r"categorical_crossentropy, kl_divergence, mean_squared_error, poisson, "
     r"sparse_categorical_crossentropy"),
    (lambda: classification.output_activation("softmx"),
     r"config.classification.output_activation='softmx': unknown output activation; allowed: "
     r"elu, exponential, gelu, leaky_relu, linear, relu, selu, sigmoid, softmax, softplus, tanh"),
])
def test_unknown_names_are_one_line_errors_naming_key_value_and_allowed(call, message):
  with pytest.raises(ConfigError, match=f"^{re.escape(message)}$"):
    call()


# A tiny task: 4x5-pixel, 2-channel images, an MLP, 3 classes.
IMAGES = np.random.default_rng(0).integers(0, 256, (6, 4, 5, 2), dtype=np.uint8)
LABELS = np.array([0, 1, 2, 0, 1, 2])


def _task(**overrides):
  config = config_lib.load(os.path.join(REPO, "configs/mnist_mlp.py"))
  for key, value in {"model.hidden": (4,), "model.num_classes": 3, **overrides}.items():
    config_lib.override(config, key, value)
  arrays = {"image": IMAGES, "label": LABELS}
  return classification.build(config, Splits(train=arrays, validation=None, test=arrays),
                              total_steps=1)


def test_accuracy_is_the_argmax_of_the_activated_outputs():
  """Logits [-3, -1, -2] for every image: class 1, but relu makes them all 0, whose argmax is 0."""
  for activation, correct in (("softmax", [0, 1, 0]), ("relu", [1, 0, 0])):
    task = _task(**{"model.hidden": (), "classification.output_activation": activation})
    state = task.init(jax.random.key(0), {"image": IMAGES})
    params = {"Dense_0": {"kernel": jnp.zeros((40, 3)), "bias": jnp.array([-3.0, -1.0, -2.0])}}
    metrics = task.eval_step(state.replace(params=params),
                             {"image": IMAGES[:3], "label": LABELS[:3]}, jax.random.key(0))
    np.testing.assert_array_equal(metrics["accuracy"], correct)


def test_unknown_output_activation_stops_the_task_build():
  with pytest.raises(ConfigError,
                     match=r"^config.classification.output_activation='soft': unknown"):
    _task(**{"classification.output_activation": "soft"})


def _distinct_pixels() -> np.ndarray:
  """One 4x5 image whose 20 pixels all differ; channel 1 is channel 0 + 100."""
  index_HW = np.arange(20, dtype=np.uint8).reshape(4, 5)
  return np.stack([index_HW, index_HW + 100], axis=-1)[None]


def test_permute_pixels_is_a_fixed_seeded_bijection_moving_channels_together():
  image = _distinct_pixels()
  permuted = np.asarray(supervised.permute_pixels(jnp.asarray(image), seed=0))
  assert permuted.shape == image.shape and permuted.dtype == image.dtype
  # A bijection of the pixels: every pixel once, none lost, its channels kept together.
  np.testing.assert_array_equal(np.sort(permuted[0, ..., 0].ravel()), np.arange(20))
  np.testing.assert_array_equal(permuted[..., 1], permuted[..., 0] + 100)
  assert not np.array_equal(permuted, image)
  # Fixed by the seed, the same for every image of a batch; another seed, another permutation.
  np.testing.assert_array_equal(supervised.permute_pixels(jnp.asarray(image), seed=0), permuted)
  batch = np.concatenate([image, image + 1])
  np.testing.assert_array_equal(supervised.permute_pixels(jnp.asarray(batch), seed=0),
                                np.concatenate([permuted, permuted + 1]))
  assert not np.array_equal(supervised.permute_pixels(jnp.asarray(image), seed=1), permuted)


def test_permuted_pixels_reach_the_model_in_train_and_eval_steps():
  """The permuting task on images = the plain task on permuted images != the plain task."""
  permuting = _task(**{"data.permute_pixels": True, "data.permutation_seed": 3})
  plain = _task()
  state = plain.init(jax.random.key(0), {"image": IMAGES})
  batch = {"image": IMAGES, "label": LABELS}
  moved = dict(batch, image=supervised.permute_pixels(jnp.asarray(IMAGES), seed=3))

  def losses(task, batch):  # eval and train step, the same params and dropout RNG
    return (task.eval_step(state, batch, jax.random.key(0))["loss"],
            task.train_step(state, batch, jax.random.key(1))[1]["loss"])

  for permuted, moved_first, unpermuted in zip(losses(permuting, batch), losses(plain, moved),
                                               losses(plain, batch), strict=True):
    np.testing.assert_allclose(permuted, moved_first, rtol=1e-6)
    assert not np.allclose(permuted, unpermuted)


def test_permuting_augmented_images_is_a_config_error():
  config = config_lib.load(os.path.join(REPO, "configs/cifar10_cnn.py:aug=light"))
  config_lib.override(config, "data.permute_pixels", "true")
  with pytest.raises(ConfigError, match=r"^config.data.permute_pixels=True: augmenting permuted"):
    config_lib.validate(config)

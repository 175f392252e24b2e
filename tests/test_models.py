"""The reference models: Keras parameter counts, shapes, BatchNorm and Dropout modes, the pool."""

import functools
import re

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from flax import linen as nn

import configs.cifar10_cnn
import configs.geron_cnn
import configs.geron_mlp
import configs.mnist_cnn
import configs.mnist_mlp
from dljax import models
from dljax.errors import ConfigError
from dljax.models import cnn, layers


def conv(size: int, channels_in: int, features: int) -> int:
  """Keras Conv2D's parameter count: a size x size kernel per (in, out) channel pair, a bias."""
  return size * size * channels_in * features + features


def dense(units_in: int, units: int) -> int:
  return units_in * units + units


def batch_norm(channels: int) -> int:
  """Keras counts gamma, beta (trainable) and the moving mean and variance (non-trainable)."""
  return 4 * channels


# Keras's model.summary() totals, layer by layer (spatial sizes in the comments).
KERAS_PARAMS = {
    # 784 -> 512 -> 512 -> 10
    "mnist_mlp": dense(784, 512) + dense(512, 512) + dense(512, 10),
    # 784 -> 300 -> 100 -> 10
    "geron_mlp": dense(784, 300) + dense(300, 100) + dense(100, 10),
    # 28 -> 26 -> 24 (valid 3x3 convs) -> 12 (pool) -> 12 * 12 * 64 -> 128 -> 10
    "mnist_cnn": conv(3, 1, 32) + conv(3, 32, 64) + dense(12 * 12 * 64, 128) + dense(128, 10),
    # 28 -> 14 -> 7 -> 3 ('same' convs; pools floor 7 to 3) -> 3 * 3 * 256 -> 128 -> 64 -> 10
    "geron_cnn": (conv(7, 1, 64) + conv(3, 64, 128) + conv(3, 128, 128) + conv(3, 128, 256)
                  + conv(3, 256, 256) + dense(3 * 3 * 256, 128) + dense(128, 64)
                  + dense(64, 10)),
    # 32 -> 16 -> 8 -> 4, global average pool -> 256 -> 10
    "cifar10_cnn": (conv(3, 3, 32) + conv(3, 32, 64) + conv(3, 64, 128) + conv(3, 128, 256)
                    + dense(256, 10)),
}
KERAS_PARAMS["cifar10_cnn:batchnorm"] = (KERAS_PARAMS["cifar10_cnn"] + batch_norm(32)
                                         + batch_norm(64))

MODELS = {  # name -> (model config, input shape)
    "mnist_mlp": (configs.mnist_mlp.get_config().model, (28, 28, 1)),
    "mnist_cnn": (configs.mnist_cnn.get_config().model, (28, 28, 1)),
    "geron_mlp": (configs.geron_mlp.get_config().model, (28, 28, 1)),
    "geron_cnn": (configs.geron_cnn.get_config().model, (28, 28, 1)),
    "cifar10_cnn": (configs.cifar10_cnn.get_config().model, (32, 32, 3)),
    "cifar10_cnn:batchnorm": (configs.cifar10_cnn.get_config("batchnorm").model, (32, 32, 3)),
}


def count(tree) -> int:
  return sum(x.size for x in jax.tree.leaves(tree))


def init(name: str, batch: int = 2):
  """The model, its variables and a random input; `apply` is compiled (eager is slow on CPU)."""
  config, shape = MODELS[name]
  model = models.build(config)
  x = jax.random.normal(jax.random.key(1), (batch, *shape))
  variables = jax.jit(model.init, static_argnames="train")(jax.random.key(0), x, train=False)
  return jax.jit(model.apply, static_argnames=("train", "mutable")), variables, x


def test_keras_counts_match_the_published_summaries():
  assert KERAS_PARAMS["mnist_mlp"] == 669_706
  assert KERAS_PARAMS["mnist_cnn"] == 1_199_882  # keras-team mnist_cnn.py's summary
  assert KERAS_PARAMS["geron_mlp"] == 266_610  # the book's model.summary()
  assert KERAS_PARAMS["geron_cnn"] == 1_413_834


@pytest.mark.parametrize("name", sorted(MODELS))
def test_parameter_counts_equal_keras_and_logits_have_one_column_per_class(name):
  config, shape = MODELS[name]
  model = models.build(config)
  x = jax.ShapeDtypeStruct((2, *shape), jnp.float32)
  variables = jax.eval_shape(functools.partial(model.init, train=False), jax.random.key(0), x)
  batch_stats = count(variables.get("batch_stats", {}))
  # Keras's total counts BatchNorm's moving statistics too; Flax keeps them out of params.
  assert count(variables["params"]) + batch_stats == KERAS_PARAMS[name]
  assert batch_stats == (2 * (32 + 64) if name.endswith("batchnorm") else 0)
  logits = jax.eval_shape(functools.partial(model.apply, train=False), variables, x)
  assert logits.shape == (2, 10)


def test_batch_norm_updates_keras_running_statistics_in_train_mode_only():
  apply, variables, x = init("cifar10_cnn:batchnorm", batch=4)
  _, updates = apply(variables, x, train=False, mutable=("batch_stats",))
  jax.tree.map(np.testing.assert_array_equal, updates["batch_stats"], variables["batch_stats"])

  _, updates = apply(variables, x, train=True, mutable=("batch_stats",),
                     rngs={"dropout": jax.random.key(2)})
  assert set(updates["batch_stats"]) == {"BatchNorm_0", "BatchNorm_1"}
  # Keras: running = momentum * running + (1 - momentum) * batch, biased variance; init 0 and 1.
  conv_out = nn.Conv(32, (3, 3), padding="SAME").apply(
      {"params": variables["params"]["Conv_0"]}, x)
  stats = updates["batch_stats"]["BatchNorm_0"]
  momentum = cnn.BATCH_NORM_MOMENTUM
  np.testing.assert_allclose(stats["mean"], (1 - momentum) * conv_out.mean(axis=(0, 1, 2)),
                             rtol=1e-4, atol=1e-7)
  np.testing.assert_allclose(stats["var"], momentum + (1 - momentum) * conv_out.var(axis=(0, 1, 2)),
                             rtol=1e-5)


def test_dropout_is_active_only_in_train_mode():
  apply, variables, x = init("mnist_cnn")
  evaluate = lambda: apply(variables, x, train=False)
  train = lambda seed: apply(variables, x, train=True, rngs={"dropout": jax.random.key(seed)})
  np.testing.assert_array_equal(evaluate(), evaluate())
  np.testing.assert_array_equal(train(1), train(1))
  assert not np.allclose(train(1), train(2))
  assert not np.allclose(train(1), evaluate())


@pytest.mark.parametrize("key, value, problem", [
    ("kernel_sizes", (3,), "needs one size per conv layer"),
    ("pool_after", (2,), "conv layer indices must be in [0, 2)"),
    ("dropout_after", (-1,), "conv layer indices must be in [0, 2)"),
])
def test_misshapen_layer_lists_are_config_errors(key, value, problem):
  with pytest.raises(ConfigError, match=rf"config\.model\.{key}=.*{re.escape(problem)}"):
    cnn.CNN(**{key: value})


@pytest.mark.parametrize("values", ["random", "ties"])
def test_max_pool_2x2_matches_flax_max_pool_forward_and_gradient_on_odd_sizes(values):
  key_x, key_g = jax.random.split(jax.random.key(0))
  shape = (2, 7, 9, 3)
  x = (jax.random.normal(key_x, shape) if values == "random"
       else jax.random.randint(key_x, shape, 0, 3).astype(jnp.float32))  # many equal maxima
  reference = lambda x: nn.max_pool(x, (2, 2), strides=(2, 2), padding="VALID")
  np.testing.assert_array_equal(jax.jit(layers.max_pool_2x2)(x), jax.jit(reference)(x))
  cotangent = jax.random.normal(key_g, (2, 3, 4, 3))
  grad = lambda pool: jax.jit(jax.grad(lambda x: jnp.sum(pool(x) * cotangent)))(x)
  np.testing.assert_array_equal(grad(layers.max_pool_2x2), grad(reference))

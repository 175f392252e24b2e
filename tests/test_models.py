"""The reference models: Keras parameter counts, shapes, BatchNorm and Dropout modes and placement,
bias initialisers, the pool."""

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
from dljax.models import cnn, layers, mlp


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
  momentum = layers.BATCH_NORM_MOMENTUM
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


@pytest.mark.parametrize("model, key, value, problem", [
    (cnn.CNN, "kernel_sizes", (3,), "needs one size per conv layer"),
    (cnn.CNN, "strides", (1, 2, 2), "needs one stride per conv layer"),
    (cnn.CNN, "pool_after", (2,), "conv layer indices in [0, 2)"),
    (cnn.CNN, "dropout_after", (-1,), "conv layer indices in [0, 2)"),
    (mlp.MLP, "dropout_after", (2,), "hidden layer indices in [0, 2)"),
    (mlp.MLP, "dropout_after", 0, "must be a tuple of hidden layer indices in [0, 2)"),
    (mlp.MLP, "batch_norm_after", (0, -1), "hidden layer indices in [0, 2)"),
])
def test_misshapen_layer_lists_are_config_errors(model, key, value, problem):
  with pytest.raises(ConfigError, match=rf"config\.model\.{key}=.*{re.escape(problem)}"):
    model(**{key: value})


@pytest.mark.parametrize("model, key, value, problem", [
    (mlp.MLP, "hidden", (512, 0), "sizes must be ints > 0"),
    (mlp.MLP, "hidden", (-3,), "sizes must be ints > 0"),
    (mlp.MLP, "num_classes", 0, "sizes must be ints > 0"),
    (cnn.CNN, "conv_features", (32, -64), "sizes must be ints > 0"),
    (cnn.CNN, "kernel_sizes", (3, 0), "sizes must be ints > 0"),
    (cnn.CNN, "strides", 0, "sizes must be ints > 0"),
    (cnn.CNN, "hidden", (0,), "sizes must be ints > 0"),
    (mlp.MLP, "dropout", 1.0, "must be a dropout rate in [0, 1)"),
    (mlp.MLP, "dropout", -0.1, "must be a dropout rate in [0, 1)"),
    (cnn.CNN, "conv_dropout", 1.5, "must be a dropout rate in [0, 1)"),
    (cnn.CNN, "dropout", "0.5", "must be a dropout rate in [0, 1)"),
])
def test_sizes_and_rates_out_of_range_are_config_errors(model, key, value, problem):
  with pytest.raises(ConfigError, match=rf"^config\.model\.{key}=.*: {re.escape(problem)}$"):
    model(**{key: value})


def test_cnn_strides_may_differ_per_layer():
  model = cnn.CNN(conv_features=(2, 3, 4), kernel_sizes=(3, 3, 3), strides=(1, 2, 2),
                  padding="SAME", pool_after=(), dropout_after=(), hidden=())
  params = model.init(jax.random.key(0), jnp.zeros((1, 16, 16, 1)), train=False)["params"]
  assert params["Dense_0"]["kernel"].shape == (4 * 4 * 4, 10)  # 16 -> 16 -> 8 -> 4


def test_traced_dropout_rates_are_not_range_checked():
  x = jnp.ones((2, 4))

  @jax.jit
  def forward(rate):
    model = mlp.MLP(hidden=(3,), dropout=rate)
    return model.apply(model.init(jax.random.key(0), x, train=False), x, train=True,
                       rngs={"dropout": jax.random.key(1)})

  assert forward(0.5).shape == (2, 10)


HIDDEN = (5, 4, 3)  # distinct widths tell the hidden layers apart


def _apply_capturing(model: nn.Module, x: jax.Array):
  """Train-mode outputs and {module name: its output}, from fresh variables."""
  variables = model.init(jax.random.key(0), x, train=False)
  outputs, state = model.apply(variables, x, train=True, rngs={"dropout": jax.random.key(1)},
                               mutable=["batch_stats", "intermediates"],
                               capture_intermediates=True)
  captured = {name: value["__call__"][0] for name, value in state["intermediates"].items()
              if name != "__call__"}
  return variables, outputs, state, captured


@pytest.mark.parametrize("dropout_after, dropped", [
    (None, (0, 1, 2)),  # the default: every hidden layer, as before the knob
    ((), ()),
    ((2, 0), (0, 2)),
])
def test_mlp_dropout_follows_the_hidden_layers_it_names(dropout_after, dropped):
  model = mlp.MLP(hidden=HIDDEN, dropout=0.5, dropout_after=dropout_after)
  *_, captured = _apply_capturing(model, jnp.ones((2, 2, 2, 1)))
  dropout_outputs = [captured[f"Dropout_{i}"] for i in range(len(dropped))]
  assert [out.shape[-1] for out in dropout_outputs] == [HIDDEN[i] for i in dropped]
  assert f"Dropout_{len(dropped)}" not in captured
  assert all((out == 0).any() for out in dropout_outputs)  # rate 0.5 drops something


def test_mlp_batch_norm_sits_between_dense_and_activation_with_keras_statistics():
  model = mlp.MLP(hidden=(5, 4), batch_norm_after=(1,), activation="relu")
  x = jax.random.normal(jax.random.key(2), (8, 3, 3, 1))
  variables, logits, state, captured = _apply_capturing(model, x)
  assert count(variables) == dense(9, 5) + dense(5, 4) + batch_norm(4) + dense(4, 10)
  pre_activation = captured["Dense_1"]
  momentum = layers.BATCH_NORM_MOMENTUM
  stats = state["batch_stats"]["BatchNorm_0"]
  np.testing.assert_allclose(stats["mean"], (1 - momentum) * pre_activation.mean(0), atol=1e-7)
  np.testing.assert_allclose(stats["var"], momentum + (1 - momentum) * pre_activation.var(0),
                             rtol=1e-6)
  # Keras' epsilon 1e-3; gamma 1 and beta 0 at init; then relu, then the logits.
  normalized = (pre_activation - pre_activation.mean(0)) / np.sqrt(pre_activation.var(0) + 1e-3)
  np.testing.assert_allclose(captured["BatchNorm_0"], normalized, rtol=1e-5, atol=1e-6)
  head = variables["params"]["Dense_2"]
  np.testing.assert_allclose(logits, nn.relu(normalized) @ head["kernel"] + head["bias"],
                             rtol=1e-5, atol=1e-6)


def _bias_init_models(bias_init: str, width: int) -> list[nn.Module]:
  return [mlp.MLP(hidden=(width,), bias_init=bias_init),
          cnn.CNN(conv_features=(width,), kernel_sizes=(1,), pool_after=(), dropout_after=(),
                  hidden=(3,), bias_init=bias_init)]


def _biases(model: nn.Module) -> dict[str, np.ndarray]:
  variables = jax.jit(model.init, static_argnames="train")(
      jax.random.key(0), jnp.ones((1, 2, 2, 1)), train=False)
  return {name: np.asarray(layer["bias"]) for name, layer in variables["params"].items()}


def test_bias_init_ones_sets_every_dense_and_conv_bias_of_mlp_and_cnn():
  for model in _bias_init_models("ones", width=3):
    biases = _biases(model)
    assert len(biases) == (3 if isinstance(model, cnn.CNN) else 2)
    for bias in biases.values():
      np.testing.assert_array_equal(bias, 1.0)


def test_variance_scaling_biases_use_keras_fans_of_a_1d_shape():
  """Keras: a bias of n units has fan_in = fan_out = n; he_uniform's limit is sqrt(6 / n)."""
  width = 4096
  for model in _bias_init_models("he_uniform", width):
    for name, bias in _biases(model).items():
      if bias.size == width:
        limit = np.sqrt(6 / width)
        assert np.abs(bias).max() <= limit
        np.testing.assert_allclose(bias.std(), limit / np.sqrt(3), rtol=0.05, err_msg=name)


@pytest.mark.parametrize("model", [mlp.MLP, cnn.CNN])
def test_unknown_bias_init_names_its_key(model):
  with pytest.raises(ConfigError, match=r"config\.model\.bias_init='nope': unknown initializer"):
    model(bias_init="nope").init(jax.random.key(0), jnp.ones((1, 4, 4, 1)), train=False)


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


@pytest.mark.parametrize("strides, padding, kernel", [
    ((1, 1), "VALID", 3), ((2, 2), "SAME", 3), ((2, 2), "VALID", 5), ((1, 2), ((1, 2), (0, 1)), 2)])
def test_the_fast_convolution_has_lax_values_and_gradients(strides, padding, kernel):
  x_BHWC = jax.random.normal(jax.random.key(0), (3, 10, 9, 4))
  kernel_HWIO = jax.random.normal(jax.random.key(1), (kernel, kernel, 4, 5))
  numbers = ("NHWC", "HWIO", "NHWC")

  def loss(conv, x, w):
    return jnp.sum(jnp.sin(conv(x, w, strides, padding, dimension_numbers=numbers)))

  ours = jax.value_and_grad(functools.partial(loss, layers.conv_general_dilated), (0, 1))
  reference = jax.value_and_grad(functools.partial(loss, jax.lax.conv_general_dilated), (0, 1))
  for got, want in zip(jax.tree.leaves(ours(x_BHWC, kernel_HWIO)),
                       jax.tree.leaves(reference(x_BHWC, kernel_HWIO)), strict=True):
    np.testing.assert_allclose(got, want, rtol=1e-5, atol=1e-5)

"""Building blocks shared by the model files: named activations and initialisers, Keras'
BatchNorm, dropout whose rate may be a traced value, checks of layer indices, sizes and rates,
a fast pool and a convolution whose weight gradient compiles well on CPU."""

import functools
from collections.abc import Callable, Sequence

import jax
import jax.numpy as jnp
from flax import linen as nn
from jax import lax

from dljax import trials
from dljax.errors import ConfigError
from dljax.registry import lookup

Initializer = Callable[..., jax.Array]  # (rng, shape, dtype) -> array

ACTIVATIONS = {
    "relu": nn.relu,
    "sigmoid": nn.sigmoid,
    "tanh": jnp.tanh,
    "linear": lambda x: x,
    "softplus": nn.softplus,
    "exponential": jnp.exp,
    "leaky_relu": nn.leaky_relu,
    "elu": nn.elu,
    "selu": nn.selu,
    "gelu": nn.gelu,
}

# Keras' default is glorot_uniform for kernels and zeros for biases; Flax's is lecun_normal.
INITIALIZERS = {
    "zeros": nn.initializers.zeros,
    "ones": nn.initializers.ones,
    "random_normal": nn.initializers.normal(0.05),  # Keras RandomNormal(stddev=0.05)
    "random_uniform": nn.initializers.uniform(0.1),  # shifted to Keras's [-0.05, 0.05) below
    "glorot_uniform": nn.initializers.glorot_uniform(),
    "glorot_normal": nn.initializers.glorot_normal(),
    "he_uniform": nn.initializers.he_uniform(),
    "he_normal": nn.initializers.he_normal(),
    "lecun_uniform": nn.initializers.lecun_uniform(),
    "lecun_normal": nn.initializers.lecun_normal(),
}


# Keras' BatchNormalization defaults (Flax's epsilon is 1e-5); both update the running statistics
# as `momentum * running + (1 - momentum) * batch`, with the biased batch variance.
BATCH_NORM_MOMENTUM = 0.99
BATCH_NORM_EPSILON = 1e-3


def activation(name: str) -> Callable[[jax.Array], jax.Array]:
  return lookup(ACTIVATIONS, name, "config.model.activation", "activation")


def initializer(name: str, key: str = "config.model.kernel_init") -> Initializer:
  """`INITIALIZERS[name]` with Keras' fans for 1-D shapes (biases); `key` names it in errors.

  Keras (`compute_fans` in keras/src/initializers/random_initializers.py) gives a 1-D shape (n,)
  fan_in = fan_out = n, where Flax's variance scaling refuses shapes under 2-D. An (n, 1, 1)
  kernel has exactly those fans (a receptive field of n, one input and one output channel), so a
  1-D shape is drawn as that and flattened: glorot, he and lecun biases are Keras's.
  """
  init = lookup(INITIALIZERS, name, key, "initializer")

  def keras_init(rng: jax.Array, shape: Sequence[int], dtype=jnp.float32) -> jax.Array:
    if len(shape) == 1:
      return keras_init(rng, (*shape, 1, 1), dtype).reshape(shape)
    values = init(rng, shape, dtype)
    # flax's uniform draws from [0, 0.1): centre it on Keras's [-0.05, 0.05).
    return values - 0.05 if name == "random_uniform" else values

  return keras_init


def param_inits(kernel_init: str, bias_init: str) -> dict[str, Initializer]:
  """`kernel_init=` and `bias_init=` for nn.Dense and nn.Conv from config.model's names."""
  return dict(kernel_init=initializer(kernel_init),
              bias_init=initializer(bias_init, "config.model.bias_init"))


def batch_norm(x: jax.Array, *, train: bool, name: str | None = None) -> jax.Array:
  """Keras BatchNormalization over the last axis; statistics in the 'batch_stats' collection.

  The mode is a call argument, not a field, so a frozen layer can be switched to inference mode
  at call time (`supervised.frozen_batch_norm`). `name` names the layer (a Keras layer name, for
  weights imported from Keras); None keeps Flax's BatchNorm_N."""
  return nn.BatchNorm(momentum=BATCH_NORM_MOMENTUM, epsilon=BATCH_NORM_EPSILON, name=name)(
      x, use_running_average=not train)


def resize(x_BHWC: jax.Array, size: int) -> jax.Array:
  """Bilinear resize to size x size inside the step (Keras tutorials' `tf.image.resize`, whose
  upsampling is the same; downsampling here is antialiased); 0 leaves the images alone."""
  if not size or x_BHWC.shape[1:3] == (size, size):
    return x_BHWC
  b, _, _, c = x_BHWC.shape
  return jax.image.resize(x_BHWC, (b, size, size, c), "bilinear")


def check_choice(key: str, value: str, allowed: Sequence[str]) -> None:
  """Raises a one-line ConfigError unless config.model.<key> is one of `allowed`."""
  if value not in allowed:
    raise ConfigError(f"config.model.{key}={value!r}: allowed: {', '.join(allowed)}")


def check_layer_indices(key: str, indices: Sequence[int], num_layers: int, kind: str) -> None:
  """Raises a one-line ConfigError unless config.model.<key> holds `kind` layer indices."""
  if not (isinstance(indices, Sequence) and all(
      isinstance(index, int) and 0 <= index < num_layers for index in indices)):
    raise ConfigError(f"config.model.{key}={indices!r}: must be a tuple of {kind} layer "
                      f"indices in [0, {num_layers})")


def check_sizes(key: str, sizes: int | Sequence[int]) -> None:
  """Raises a one-line ConfigError unless config.model.<key> (layer widths, kernel sizes,
  strides, ...) is an int > 0 or a sequence of them: Flax would build a layer of 0 units, or fail
  deep inside XLA, from the others."""
  values = (sizes,) if isinstance(sizes, int) else sizes
  if not (isinstance(values, Sequence) and all(
      isinstance(value, int) and not isinstance(value, bool) and value > 0 for value in values)):
    raise ConfigError(f"config.model.{key}={sizes!r}: sizes must be ints > 0")


def check_rate(key: str, rate: float) -> None:
  """Raises a one-line ConfigError unless config.model.<key> is a dropout rate in [0, 1).

  A traced rate (trials trained together) is skipped: each was checked as a number before.
  """
  if isinstance(rate, jax.core.Tracer):
    return
  if isinstance(rate, bool) or not isinstance(rate, int | float) or not 0 <= rate < 1:
    raise ConfigError(f"config.model.{key}={rate!r}: must be a dropout rate in [0, 1)")


class Dropout(nn.Module):
  """`nn.Dropout` (the same random bits, the same outputs) for a rate that may be traced.

  Trials trained together (`dljax.trials`) hold their dropout rates as traced scalars, and Flax's
  layer decides in Python whether the rate is 0 or 1. A rate of exactly 0 given as a number still
  skips the layer; a traced rate always draws its mask (for rate 0 it keeps everything).
  """
  rate: float
  # Axes the mask is shared along: (1, 2, 3) drops whole examples of a BHWC batch (Keras'
  # noise_shape=(None, 1, 1, 1): EfficientNet's drop connect).
  broadcast_dims: Sequence[int] = ()

  @nn.compact
  def __call__(self, x: jax.Array, *, train: bool) -> jax.Array:
    if not train or not trials.nonzero(self.rate):
      return x
    keep = 1.0 - self.rate
    shape = [1 if axis in self.broadcast_dims else size for axis, size in enumerate(x.shape)]
    mask = jax.random.bernoulli(self.make_rng("dropout"), p=keep, shape=shape)
    # The floor keeps rate 1 (nothing kept) from dividing by zero, in values and in gradients.
    return jnp.where(mask, x / jnp.maximum(keep, 1e-12), jnp.zeros_like(x))


@jax.custom_vjp
def max_pool_2x2(x_BHWC: jax.Array) -> jax.Array:
  """2x2 max-pool with stride 2 ('valid': an odd last row/column is dropped, as in Keras).

  Written as a reshape and a max with a hand-written gradient: on CPU the `reduce_window`
  gradient of `nn.max_pool` cost ~60 ms a step on mnist_cnn, this ~5 ms (stack-notes).
  """
  return _max_pool_2x2_forward(x_BHWC)[0]


def _windows(x_BHWC):
  """(B, H, W, C) -> (B, H/2, W/2, C, 4): the four values of each 2x2 window, row-major."""
  b, h, w, c = x_BHWC.shape
  x_BHWC = x_BHWC[:, : h // 2 * 2, : w // 2 * 2]
  return x_BHWC.reshape(b, h // 2, 2, w // 2, 2, c).transpose(0, 1, 3, 5, 2, 4).reshape(
      b, h // 2, w // 2, c, 4)


def _max_pool_2x2_forward(x_BHWC):
  return _windows(x_BHWC).max(axis=-1), x_BHWC


def _max_pool_2x2_backward(x_BHWC, grad_BhwC):
  # The gradient goes to the first maximum of each window, as with reduce_window.
  windows = _windows(x_BHWC)
  first_max = jax.nn.one_hot(jnp.argmax(windows, axis=-1), 4, dtype=grad_BhwC.dtype)
  b, h2, w2, c, _ = windows.shape
  grad = (first_max * grad_BhwC[..., None]).reshape(b, h2, w2, c, 2, 2)
  grad = grad.transpose(0, 1, 4, 2, 5, 3).reshape(b, h2 * 2, w2 * 2, c)
  _, h, w, _ = x_BHWC.shape
  return (jnp.pad(grad, ((0, 0), (0, h - h2 * 2), (0, w - w2 * 2), (0, 0))),)


max_pool_2x2.defvjp(_max_pool_2x2_forward, _max_pool_2x2_backward)


_NHWC = ("NHWC", "HWIO", "NHWC")


def conv_general_dilated(lhs, rhs, window_strides, padding, lhs_dilation=None, rhs_dilation=None,
                         dimension_numbers=None, feature_group_count=1, precision=None):
  """`lax.conv_general_dilated` for `nn.Conv(conv_general_dilated=...)`: the same values and
  gradients, with the kernel's gradient written as a plain NHWC convolution.

  XLA's CPU backend compiles its own kernel-gradient convolution as a naive loop inside a
  `lax.scan` body (mnist_cnn's second conv: 26 s against 0.3 s for 4 steps, 2 cores), which
  made `steps_per_call` > 1 unusable for CNNs; outside a scan this form is as fast or faster.
  2-D, undilated, ungrouped convolutions take this path; any other goes to lax unchanged.
  """
  plain = (lhs.ndim != 4 or feature_group_count != 1 or precision is not None
           or any(d != 1 for d in (*(lhs_dilation or ()), *(rhs_dilation or ()))))
  if plain:
    return lax.conv_general_dilated(
        lhs, rhs, window_strides, padding, lhs_dilation=lhs_dilation, rhs_dilation=rhs_dilation,
        dimension_numbers=dimension_numbers, feature_group_count=feature_group_count,
        precision=precision)
  if isinstance(padding, str):
    padding = lax.padtype_to_pads(lhs.shape[1:3], rhs.shape[:2], window_strides, padding)
  return _conv_nhwc(lhs, rhs, tuple(window_strides), tuple(tuple(p) for p in padding))


@functools.partial(jax.custom_vjp, nondiff_argnums=(2, 3))
def _conv_nhwc(x_BHWC, kernel_HWIO, strides, pads):
  return lax.conv_general_dilated(x_BHWC, kernel_HWIO, strides, pads, dimension_numbers=_NHWC)


def _conv_nhwc_forward(x_BHWC, kernel_HWIO, strides, pads):
  return _conv_nhwc(x_BHWC, kernel_HWIO, strides, pads), (x_BHWC, kernel_HWIO)


def _conv_nhwc_backward(strides, pads, saved, grad_BhwO):
  x_BHWC, kernel_HWIO = saved
  _, input_gradient = jax.vjp(lambda x: lax.conv_general_dilated(
      x, kernel_HWIO, strides, pads, dimension_numbers=_NHWC), x_BHWC)
  (grad_BHWC,) = input_gradient(grad_BhwO)
  # grad_kernel[i, j, c, o] = sum_{b, h, w} x_padded[b, h*s + i, w*s + j, c] * grad[b, h, w, o]:
  # a convolution of x_padded with the output gradient as its kernel (dilated by the stride),
  # channels as its batch and the batch as its features.
  x_padded = jnp.pad(x_BHWC, ((0, 0), *pads, (0, 0)))
  grad_kernel = lax.conv_general_dilated(
      x_padded.transpose(3, 1, 2, 0), grad_BhwO.transpose(1, 2, 0, 3), (1, 1), "VALID",
      rhs_dilation=strides, dimension_numbers=_NHWC).transpose(1, 2, 0, 3)
  height, width = kernel_HWIO.shape[:2]  # a stride that does not divide leaves extra rows
  return grad_BHWC, grad_kernel[:height, :width]


_conv_nhwc.defvjp(_conv_nhwc_forward, _conv_nhwc_backward)

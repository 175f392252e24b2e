"""Building blocks shared by the model files: named activations and initialisers, dropout whose
rate may be a traced value, a fast pool."""

import jax
import jax.numpy as jnp
from flax import linen as nn

from dljax import trials
from dljax.registry import lookup

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


def activation(name: str):
  return lookup(ACTIVATIONS, name, "config.model.activation", "activation")


def initializer(name: str, key: str = "config.model.kernel_init"):
  init = lookup(INITIALIZERS, name, key, "initializer")
  if name == "random_uniform":  # flax's uniform draws from [0, scale): centre it like Keras.
    return lambda rng, shape, dtype=jnp.float32: init(rng, shape, dtype) - 0.05
  return init


class Dropout(nn.Module):
  """`nn.Dropout` (the same random bits, the same outputs) for a rate that may be traced.

  Trials trained together (`dljax.trials`) hold their dropout rates as traced scalars, and Flax's
  layer decides in Python whether the rate is 0 or 1. A rate of exactly 0 given as a number still
  skips the layer; a traced rate always draws its mask (for rate 0 it keeps everything).
  """
  rate: float

  @nn.compact
  def __call__(self, x: jax.Array, *, train: bool) -> jax.Array:
    if not train or not trials.nonzero(self.rate):
      return x
    keep = 1.0 - self.rate
    mask = jax.random.bernoulli(self.make_rng("dropout"), p=keep, shape=x.shape)
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

"""EfficientNet (B0 by default) laid out as `keras.applications.EfficientNetB0`, layer for layer
and name for name (keras/src/applications/efficientnet.py), so Keras' ImageNet weight files load
by layer name (`dljax.weights`).

    normalization (Keras' Normalization: mean and variance per channel, kept in 'batch_stats'
    with the BatchNorm statistics: not trained) -> stem_conv (3x3 stride 2) -> stem_bn -> swish
    -> 16 MBConv blocks blockNx_ (expand_conv 1x1 -> expand_bn -> swish, dwconv depthwise k x k
    -> bn -> swish, squeeze-excitation se_reduce / se_expand, project_conv 1x1 -> project_bn,
    drop connect and the residual add where shapes allow)
    -> top_conv 1x1 (1280) -> top_bn -> swish
    include_top: avg_pool -> top_dropout (dropout) -> predictions (Dense num_classes)
    without the top: `pooling` ('avg', 'max', 'flatten') -> predictions, a new dense head

Keras semantics throughout: convs without biases before BatchNorm(momentum 0.99, eps 1e-3),
stride-2 convs after Keras' `correct_pad` zero padding, drop connect as per-example Dropout
(noise_shape (None, 1, 1, 1)) at rate drop_connect_rate * block / 16, Keras' initialisers
(VarianceScaling(2, fan_out, truncated normal) for convs, (1/3, fan_out, uniform) for the dense).
Keras' model takes 0-255 pixels and starts with Rescaling(1/255); dljax feeds [0, 1] pixels, so
that layer is left out. `imagenet_rescaling` is the extra per-channel Rescaling Keras inserts
after the normalization when it builds the model for its ImageNet weights (tensorflow#49930):
set it with those weights. The model returns logits.
"""

import math
from typing import NamedTuple

import jax
import jax.numpy as jnp
from flax import linen as nn

from dljax.errors import ConfigError
from dljax.models import layers
from dljax.models.vgg import POOLINGS, pool


class BlockArgs(NamedTuple):
  kernel_size: int
  repeats: int
  filters_in: int
  filters_out: int
  expand_ratio: int
  strides: int


# Keras' DEFAULT_BLOCKS_ARGS (every block has id_skip and se_ratio 0.25).
BLOCKS = (BlockArgs(3, 1, 32, 16, 1, 1), BlockArgs(3, 2, 16, 24, 6, 2),
          BlockArgs(5, 2, 24, 40, 6, 2), BlockArgs(3, 3, 40, 80, 6, 2),
          BlockArgs(5, 3, 80, 112, 6, 1), BlockArgs(5, 4, 112, 192, 6, 2),
          BlockArgs(3, 1, 192, 320, 6, 1))
SE_RATIO = 0.25
IMAGENET_STDDEV_RGB = (0.229, 0.224, 0.225)
CONV_INIT = nn.initializers.variance_scaling(2.0, "fan_out", "truncated_normal")
# Keras' fan_out of a depthwise kernel (k, k, C, 1) is k*k: Flax's fan_in of its (k, k, 1, C).
DEPTHWISE_INIT = nn.initializers.variance_scaling(2.0, "fan_in", "truncated_normal")
DENSE_INIT = nn.initializers.variance_scaling(1.0 / 3.0, "fan_out", "uniform")


def correct_pad(size_HW: tuple[int, int], kernel_size: int) -> tuple[tuple[int, int], ...]:
  """keras.applications.imagenet_utils.correct_pad: (top, bottom), (left, right) zero padding
  before a stride-2 'valid' conv."""
  return tuple((kernel_size // 2 - (1 - size % 2), kernel_size // 2) for size in size_HW)


def zero_pad(x_BHWC: jax.Array, kernel_size: int) -> jax.Array:
  return jnp.pad(x_BHWC, ((0, 0), *correct_pad(x_BHWC.shape[1:3], kernel_size), (0, 0)))


class Normalization(nn.Module):
  """Keras' Normalization over the last axis: (x - mean) / max(sqrt(variance), 1e-7), with mean
  and variance (0 and 1 until loaded) in 'batch_stats', which no gradient step changes."""

  @nn.compact
  def __call__(self, x_BHWC: jax.Array) -> jax.Array:
    channels = x_BHWC.shape[-1]
    mean = self.variable("batch_stats", "mean", jnp.zeros, (channels,))
    variance = self.variable("batch_stats", "var", jnp.ones, (channels,))
    return (x_BHWC - mean.value) / jnp.maximum(jnp.sqrt(variance.value), 1e-7)


def block(inputs: jax.Array, *, train: bool, name: str, drop_rate: float,
          filters_in: int, filters_out: int, kernel_size: int, expand_ratio: int,
          strides: int) -> jax.Array:
  """Keras' `block`: an inverted residual block with squeeze-excitation (its layers are
  created in the calling module, under `name`)."""
  filters = filters_in * expand_ratio
  x = inputs
  if expand_ratio != 1:
    x = nn.Conv(filters, (1, 1), use_bias=False, kernel_init=CONV_INIT,
                name=f"{name}expand_conv")(x)
    x = nn.swish(layers.batch_norm(x, train=train, name=f"{name}expand_bn"))
  if strides == 2:
    x = zero_pad(x, kernel_size)
  x = nn.Conv(filters, (kernel_size, kernel_size), strides=strides,
              padding="VALID" if strides == 2 else "SAME", feature_group_count=filters,
              use_bias=False, kernel_init=DEPTHWISE_INIT, name=f"{name}dwconv")(x)
  x = nn.swish(layers.batch_norm(x, train=train, name=f"{name}bn"))
  se = x.mean(axis=(1, 2), keepdims=True)
  se = nn.swish(nn.Conv(max(1, int(filters_in * SE_RATIO)), (1, 1), kernel_init=CONV_INIT,
                        name=f"{name}se_reduce")(se))
  se = nn.sigmoid(nn.Conv(filters, (1, 1), kernel_init=CONV_INIT, name=f"{name}se_expand")(se))
  x = nn.Conv(filters_out, (1, 1), use_bias=False, kernel_init=CONV_INIT,
              name=f"{name}project_conv")(x * se)
  x = layers.batch_norm(x, train=train, name=f"{name}project_bn")
  if strides == 1 and filters_in == filters_out:
    x = layers.Dropout(drop_rate, broadcast_dims=(1, 2, 3), name=f"{name}drop")(x, train=train)
    x = x + inputs
  return x


class EfficientNet(nn.Module):
  width_coefficient: float = 1.0  # B0's; scales filters as Keras' round_filters
  depth_coefficient: float = 1.0  # B0's; scales block repeats as Keras' round_repeats
  dropout: float = 0.2  # top_dropout, before predictions
  drop_connect_rate: float = 0.2
  depth_divisor: int = 8
  include_top: bool = True  # avg_pool, top_dropout, predictions; else `pooling`, predictions
  pooling: str = "avg"  # without the top
  num_classes: int = 1000
  resize_to: int = 0  # resize inputs to resize_to x resize_to inside the step; 0 = as they come
  imagenet_rescaling: bool = False  # Keras' extra Rescaling for its ImageNet weights

  def __post_init__(self):
    super().__post_init__()
    for key in ("width_coefficient", "depth_coefficient"):
      value = getattr(self, key)
      if not (isinstance(value, int | float) and value > 0):
        raise ConfigError(f"config.model.{key}={value!r}: must be > 0")
    for key in ("depth_divisor", "num_classes"):
      layers.check_sizes(key, getattr(self, key))
    for key in ("dropout", "drop_connect_rate"):
      layers.check_rate(key, getattr(self, key))
    layers.check_choice("pooling", self.pooling, POOLINGS)
    if self.resize_to:
      layers.check_sizes("resize_to", self.resize_to)

  def round_filters(self, filters: int) -> int:
    divisor = self.depth_divisor
    filters *= self.width_coefficient
    rounded = max(divisor, int(filters + divisor / 2) // divisor * divisor)
    return int(rounded + divisor if rounded < 0.9 * filters else rounded)

  @nn.compact
  def __call__(self, x_BHWC: jax.Array, *, train: bool) -> jax.Array:
    x = Normalization(name="normalization")(layers.resize(x_BHWC, self.resize_to))
    if self.imagenet_rescaling:
      x = x / jnp.sqrt(jnp.asarray(IMAGENET_STDDEV_RGB))
    x = nn.Conv(self.round_filters(32), (3, 3), strides=2, padding="VALID", use_bias=False,
                kernel_init=CONV_INIT, name="stem_conv")(zero_pad(x, 3))
    x = nn.swish(layers.batch_norm(x, train=train, name="stem_bn"))
    repeats = [math.ceil(self.depth_coefficient * args.repeats) for args in BLOCKS]
    index = 0
    for stage, (args, count) in enumerate(zip(BLOCKS, repeats, strict=True), start=1):
      for repeat in range(count):
        filters_in = self.round_filters(args.filters_in if repeat == 0 else args.filters_out)
        x = block(x, train=train, name=f"block{stage}{chr(97 + repeat)}_",
                       drop_rate=self.drop_connect_rate * index / sum(repeats),
                       filters_in=filters_in, filters_out=self.round_filters(args.filters_out),
                       kernel_size=args.kernel_size, expand_ratio=args.expand_ratio,
                       strides=args.strides if repeat == 0 else 1)
        index += 1
    x = nn.Conv(self.round_filters(1280), (1, 1), use_bias=False, kernel_init=CONV_INIT,
                name="top_conv")(x)
    x = nn.swish(layers.batch_norm(x, train=train, name="top_bn"))
    if self.include_top:
      x = layers.Dropout(self.dropout, name="top_dropout")(pool(x, "avg"), train=train)
    else:
      x = pool(x, self.pooling)
    return nn.Dense(self.num_classes, kernel_init=DENSE_INIT, name="predictions")(x)

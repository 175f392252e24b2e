"""The Imperial coursework's UNet (Keras, tasks 4 and 5: denoising, colourisation) and the
pix2pix-style conditional GAN built on it.

  UNet: for f in features: Conv(f) 3x3 relu he_normal (+ Dropout at the last level) -> skip ->
        MaxPool 2x2; bottleneck Conv(bottleneck) 3x3 relu -> Dropout;
        for f in reversed(features): UpSampling 2 -> Conv(f) up_kernel relu -> concat(skip) ->
        Conv(f) 3x3 relu; out Conv(channels) 3x3 linear.
      reports: features=(64, 128, 256, 512), bottleneck=1024, dropout=0.5; up_kernel 2 (2020,
      CIFAR-100) or 3 (2021, Tiny ImageNet)
  PatchDiscriminator (the colourisation tutorial's, without its BatchNorm layers):
        concat(colour, grey) -> Conv64 5x5 s2 LReLU .2 -> Conv64 5x5 s2 LReLU -> Conv128 5x5 s2
        valid LReLU -> Flatten -> Dense1024 -> Dense1 (linear: the least-squares loss's score)
  Pix2Pix: both; `generate(grey)` and `discriminate(colour, grey)` run one each.

An image whose sides cannot be halved len(features) times is refused with a one-line
ConfigError when the model first sees it (the skips would not line up).
"""

from collections.abc import Sequence

import jax
import jax.numpy as jnp
from flax import linen as nn

from dljax.errors import ConfigError
from dljax.models import dcgan, layers
from dljax.models.layers import max_pool_2x2


def _conv(features: int, kernel: int = 3, **kwargs) -> nn.Conv:
  return nn.Conv(features, (kernel, kernel), padding="SAME",
                 kernel_init=nn.initializers.he_normal(), **kwargs)


def check_halvable(features: Sequence[int], height: int, width: int) -> None:
  """A one-line ConfigError unless both sides divide by 2^len(features)."""
  factor = 2 ** len(features)
  if height % factor or width % factor:
    raise ConfigError(
        f"config.model.features={tuple(features)}: a UNet of {len(features)} levels halves "
        f"images {len(features)} times, so their sides must divide by {factor}; these are "
        f"{height}x{width} (resize them, or use fewer levels)")


class UNet(nn.Module):
  features: Sequence[int] = (64, 128, 256, 512)  # one per level, outermost first
  bottleneck: int = 1024
  dropout: float = 0.5  # after the last level's and the bottleneck's convolutions
  up_kernel: int = 2  # the kernel of the convolution after each upsampling
  channels: int = 3  # of the output

  def __post_init__(self):
    super().__post_init__()
    for key in ("features", "bottleneck", "up_kernel", "channels"):
      layers.check_sizes(key, getattr(self, key))
    layers.check_rate("dropout", self.dropout)

  @nn.compact
  def __call__(self, x_BHWC: jax.Array, *, train: bool = False) -> jax.Array:
    check_halvable(self.features, *x_BHWC.shape[1:3])
    skips = []
    x = x_BHWC
    for level, features in enumerate(self.features):
      x = nn.relu(_conv(features)(x))
      if level == len(self.features) - 1:
        x = layers.Dropout(self.dropout)(x, train=train)
      skips.append(x)
      x = max_pool_2x2(x)
    x = layers.Dropout(self.dropout)(nn.relu(_conv(self.bottleneck)(x)), train=train)
    for features, skip in zip(reversed(self.features), reversed(skips), strict=True):
      x = nn.relu(_conv(features, self.up_kernel)(dcgan.upsample_2x(x)))
      x = nn.relu(_conv(features)(jnp.concatenate([skip, x], axis=-1)))
    return nn.Conv(self.channels, (3, 3), padding="SAME",
                   kernel_init=nn.initializers.glorot_uniform())(x)


class PatchDiscriminator(nn.Module):
  """(colour_BHWC, grey_BHW1) -> score_B (linear: least squares pulls real to 1, fake to 0)."""
  features: Sequence[int] = (64, 64, 128)
  dense: int = 1024

  @nn.compact
  def __call__(self, colour_BHWC: jax.Array, grey_BHW1: jax.Array) -> jax.Array:
    x = jnp.concatenate([colour_BHWC, grey_BHW1], axis=-1)
    for index, features in enumerate(self.features):
      last = index == len(self.features) - 1
      x = dcgan.leaky_relu(nn.Conv(features, (5, 5), strides=2, padding="VALID" if last else "SAME",
                                   kernel_init=nn.initializers.glorot_uniform())(x))
    x = nn.Dense(self.dense, kernel_init=nn.initializers.glorot_uniform())(
        x.reshape(x.shape[0], -1))
    return nn.Dense(1, kernel_init=nn.initializers.glorot_uniform())(x)[:, 0]


class Pix2Pix(nn.Module):
  """A UNet generator (grey -> colour) and a discriminator of (colour, grey) pairs."""
  features: Sequence[int] = (64, 128, 256, 512)
  bottleneck: int = 1024
  dropout: float = 0.5
  up_kernel: int = 2
  channels: int = 3
  discriminator_features: Sequence[int] = (64, 64, 128)
  discriminator_dense: int = 1024

  def __post_init__(self):
    super().__post_init__()
    for key in ("discriminator_features", "discriminator_dense"):
      layers.check_sizes(key, getattr(self, key))

  def setup(self):
    self.generator = UNet(self.features, self.bottleneck, self.dropout, self.up_kernel,
                          self.channels)
    self.discriminator = PatchDiscriminator(self.discriminator_features, self.discriminator_dense)

  def generate(self, grey_BHW1: jax.Array, *, train: bool = False) -> jax.Array:
    return self.generator(grey_BHW1, train=train)

  def discriminate(self, colour_BHWC: jax.Array, grey_BHW1: jax.Array) -> jax.Array:
    return self.discriminator(colour_BHWC, grey_BHW1)

  def __call__(self, grey_BHW1: jax.Array, *, train: bool = False) -> jax.Array:
    """The generator's colour images, also scored by D so that `init` makes every parameter."""
    colour_BHWC = self.generate(grey_BHW1, train=train)
    self.discriminate(colour_BHWC, grey_BHW1)
    return colour_BHWC

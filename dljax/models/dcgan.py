"""The Imperial coursework's MNIST DCGAN (2020 and 2021 notebooks, Keras):

  Generator:     z -> Dense(128*7*7, N(0, .02) init) -> LeakyReLU .2 -> Reshape 7x7x128
                 -> UpSampling 2 -> Conv64 5x5 -> LeakyReLU .2 -> UpSampling 2 -> Conv1 5x5 -> tanh
  Discriminator: x -> Conv64 5x5 s2 -> LeakyReLU .2 -> Dropout .3 -> Conv128 5x5 s2 -> LeakyReLU .2
                 -> Dropout .3 -> Flatten -> Dense1 (the sigmoid is in the loss: a logit)

Convolutions are 'same', upsampling is nearest-neighbour (Keras' UpSampling2D), every other
kernel is Keras' glorot_uniform and every bias zeros. The generator's output activation is a
field: tanh for the GAN's [-1, 1] images, linear for the convolutional VAE's decoder, whose task
puts the sigmoid into its loss. `DCGAN` holds both networks, so their parameters sit apart under
'generator' and 'discriminator', each with its own optimiser.
"""

from collections.abc import Sequence

import jax
import jax.numpy as jnp
from flax import linen as nn

from dljax.models import layers

LEAK = 0.2


def leaky_relu(x: jax.Array) -> jax.Array:
  return nn.leaky_relu(x, negative_slope=LEAK)


def upsample_2x(x_BHWC: jax.Array) -> jax.Array:
  """Keras' UpSampling2D(2): each pixel repeated into a 2x2 block."""
  return jnp.repeat(jnp.repeat(x_BHWC, 2, axis=1), 2, axis=2)


def _conv(features: int, strides: int = 1) -> nn.Conv:
  return nn.Conv(features, (5, 5), strides=strides, padding="SAME",
                 kernel_init=nn.initializers.glorot_uniform())


class Generator(nn.Module):
  """z_BL -> images_BHWC: a 7x7 seed map upsampled twice (7 -> 14 -> 28)."""
  seed_size: int = 7
  seed_features: int = 128
  features: int = 64
  channels: int = 1
  output_activation: str = "tanh"  # a name of layers.ACTIVATIONS

  @nn.compact
  def __call__(self, z_BL: jax.Array) -> jax.Array:
    size = self.seed_size
    x = nn.Dense(size * size * self.seed_features, kernel_init=nn.initializers.normal(0.02))(z_BL)
    x = leaky_relu(x).reshape(-1, size, size, self.seed_features)
    x = leaky_relu(_conv(self.features)(upsample_2x(x)))
    x = _conv(self.channels)(upsample_2x(x))
    return layers.activation(self.output_activation)(x)


class Discriminator(nn.Module):
  """images_BHWC -> logit_B that they are real."""
  features: Sequence[int] = (64, 128)
  dropout: float = 0.3

  @nn.compact
  def __call__(self, x_BHWC: jax.Array, *, train: bool) -> jax.Array:
    x = x_BHWC
    for features in self.features:
      x = leaky_relu(_conv(features, strides=2)(x))
      x = layers.Dropout(self.dropout)(x, train=train)
    x = x.reshape(x.shape[0], -1)
    return nn.Dense(1, kernel_init=nn.initializers.glorot_uniform())(x)[:, 0]


class DCGAN(nn.Module):
  """Both networks; `generate(z_BL)` and `discriminate(images_BHWC, train=)` run one each."""
  latent: int = 10  # the noise's size (the reports' randomDim)
  generator_features: int = 64
  discriminator_features: Sequence[int] = (64, 128)
  dropout: float = 0.3
  channels: int = 1

  def __post_init__(self):
    super().__post_init__()
    for key in ("latent", "generator_features", "discriminator_features", "channels"):
      layers.check_sizes(key, getattr(self, key))
    layers.check_rate("dropout", self.dropout)

  def setup(self):
    self.generator = Generator(features=self.generator_features, channels=self.channels)
    self.discriminator = Discriminator(self.discriminator_features, self.dropout)

  def generate(self, z_BL: jax.Array) -> jax.Array:
    return self.generator(z_BL)

  def discriminate(self, images_BHWC: jax.Array, *, train: bool) -> jax.Array:
    return self.discriminator(images_BHWC, train=train)

  def __call__(self, z_BL: jax.Array) -> jax.Array:
    """D(G(z)) without dropout: touches every parameter, for `init`."""
    return self.discriminate(self.generate(z_BL), train=False)

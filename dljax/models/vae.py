"""The Imperial coursework's MNIST variational autoencoders (Keras): an encoder to the mean and
log-variance of q(z|x), a decoder from a code z to pixel logits (the task applies the sigmoid,
fused into its cross-entropy). The task draws z between them (the reparameterisation).

  DenseVAE (2020 notebook): Flatten -> [Dense256 relu] x len(hidden) -> mu, logvar = Dense(latent)
      decoder: [Dense256 relu] x len(hidden) -> Dense784 (sigmoid) -> Reshape 28x28x1
      base: hidden=(256,), latent=2; latent=20; an extra layer in each: hidden=(256, 256)
  ConvVAE (2021 notebook): Conv64 5x5 s2 -> LeakyReLU .2 -> Conv128 5x5 s2 -> LeakyReLU .2
      -> Flatten -> mu, logvar = Dense(latent); latent=10
      decoder: the DCGAN generator (dcgan.Generator) with a sigmoid output

Keras' defaults throughout: glorot_uniform kernels, zero biases; the decoder's hidden layers
mirror the encoder's in reverse order.
"""

from collections.abc import Sequence

import jax
import numpy as np
from flax import linen as nn

from dljax.models import dcgan, layers

MNIST_SHAPE = (28, 28, 1)


def _dense(features: int) -> nn.Dense:
  return nn.Dense(features, kernel_init=nn.initializers.glorot_uniform())


class _Gaussian(nn.Module):
  """features -> (mu_BL, logvar_BL) of q(z|x): two Dense(latent) heads."""
  latent: int

  @nn.compact
  def __call__(self, x_BF: jax.Array) -> tuple[jax.Array, jax.Array]:
    return _dense(self.latent)(x_BF), _dense(self.latent)(x_BF)


class _VAE(nn.Module):
  """What both VAEs share: `encode`, `decode` and, for `init`, decoding the mean."""

  def __call__(self, x_BHWC: jax.Array) -> jax.Array:
    mu_BL, _ = self.encode(x_BHWC)
    return self.decode(mu_BL)


class DenseVAE(_VAE):
  latent: int = 2
  hidden: Sequence[int] = (256,)  # the encoder's widths; the decoder's are these reversed
  image_shape: Sequence[int] = MNIST_SHAPE

  def __post_init__(self):
    super().__post_init__()
    for key in ("latent", "hidden", "image_shape"):
      layers.check_sizes(key, getattr(self, key))

  def setup(self):
    self.encoder_layers = [_dense(width) for width in self.hidden]
    self.gaussian = _Gaussian(self.latent)
    self.decoder_layers = [_dense(width) for width in reversed(self.hidden)]
    self.pixels = _dense(int(np.prod(self.image_shape)))

  def encode(self, x_BHWC: jax.Array) -> tuple[jax.Array, jax.Array]:
    x = x_BHWC.reshape(x_BHWC.shape[0], -1)
    for dense in self.encoder_layers:
      x = nn.relu(dense(x))
    return self.gaussian(x)

  def decode(self, z_BL: jax.Array) -> jax.Array:
    x = z_BL
    for dense in self.decoder_layers:
      x = nn.relu(dense(x))
    return self.pixels(x).reshape(-1, *self.image_shape)


class ConvVAE(_VAE):
  latent: int = 10
  features: Sequence[int] = (64, 128)  # the encoder's convolutions (5x5, stride 2)
  generator_features: int = 64
  channels: int = 1

  def __post_init__(self):
    super().__post_init__()
    for key in ("latent", "features", "generator_features", "channels"):
      layers.check_sizes(key, getattr(self, key))

  def setup(self):
    self.convs = [nn.Conv(features, (5, 5), strides=2, padding="SAME",
                          kernel_init=nn.initializers.glorot_uniform())
                  for features in self.features]
    self.gaussian = _Gaussian(self.latent)
    self.decoder = dcgan.Generator(features=self.generator_features, channels=self.channels,
                                   output_activation="linear")

  def encode(self, x_BHWC: jax.Array) -> tuple[jax.Array, jax.Array]:
    x = x_BHWC
    for conv in self.convs:
      x = dcgan.leaky_relu(conv(x))
    return self.gaussian(x.reshape(x.shape[0], -1))

  def decode(self, z_BL: jax.Array) -> jax.Array:
    return self.decoder(z_BL)

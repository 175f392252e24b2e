"""The Imperial coursework's autoencoders (Keras, task 4): an encoder to a representation of
`representation` units and a decoder back to the pixels. `encode` gives the representation (the
autoencoder task's clustering, probe and scatter plot read it); calling the model gives
{"reconstruction": images_BHWC, "representation": code_BL}.

  DenseAE: Flatten -> [Dense(w) act] for w in encoder -> Dense(representation)
           representation_activation -> [Dense(w) act] for w in decoder -> Dense(pixels)
           output_activation -> Reshape(image_shape)
      2020 tutorial linear AE:  encoder=(), representation=2, decoder=(), activation linear,
                                output linear (784-2-784)
      2020 best non-linear AE:  encoder=(128, 30), representation=50, decoder=(128,), relu,
                                output sigmoid (784-128-30-50-128-784)
      2021 dense AE at 32x32:   encoder=(256, 512, 2048, 1024), representation=10,
                                decoder=(1024, 2048), relu everywhere (its last Dense1024 is the
                                1,024 pixels)
  ConvAE:  [Conv(f) 3x3 same relu -> MaxPool 2x2] for all but the last f in features -> Conv(last
           f) 3x3 relu -> Flatten -> Dense(representation) -> the DenseAE's decoder
      2021 conv AE at 32x32:    features=(128, 256, 512, 1024), representation=10,
                                decoder=(2048, 2048), relu

Keras' defaults throughout: glorot_uniform kernels, zero biases.
"""

from collections.abc import Sequence

import jax
import numpy as np
from flax import linen as nn

from dljax.errors import ConfigError
from dljax.models import layers
from dljax.models.layers import max_pool_2x2

MNIST_SHAPE = (28, 28, 1)


def _dense(features: int) -> nn.Dense:
  return nn.Dense(features, kernel_init=nn.initializers.glorot_uniform())


def check_representation(representation: int, image_shape: Sequence[int]) -> None:
  """A one-line ConfigError unless the representation is narrower than the image: a code as wide
  as the pixels can copy them and learns no representation."""
  layers.check_sizes("image_shape", image_shape)
  layers.check_sizes("representation", representation)
  pixels = int(np.prod(image_shape))
  if representation >= pixels:
    raise ConfigError(
        f"config.model.representation={representation}: must be < the {pixels} values of an "
        f"image of shape {tuple(image_shape)}, or the autoencoder can copy its input")


class _Decoder(nn.Module):
  """code_BL -> [Dense(w) act] for w in widths -> Dense(pixels) output activation -> images."""
  widths: Sequence[int]
  activation: str
  output_activation: str
  image_shape: Sequence[int]

  @nn.compact
  def __call__(self, code_BL: jax.Array) -> jax.Array:
    x = code_BL
    for width in self.widths:
      x = layers.activation(self.activation)(_dense(width)(x))
    x = layers.activation(self.output_activation)(_dense(int(np.prod(self.image_shape)))(x))
    return x.reshape(-1, *self.image_shape)


class _Autoencoder(nn.Module):
  """What both autoencoders share: the decoder, the checks, and calling = decode(encode(x))."""

  def check(self, *size_keys: str) -> None:
    check_representation(self.representation, self.image_shape)
    for key in size_keys:
      if getattr(self, key):
        layers.check_sizes(key, getattr(self, key))
    for key in ("activation", "representation_activation", "output_activation"):
      layers.activation(getattr(self, key))

  def make_decoder(self) -> _Decoder:
    return _Decoder(self.decoder, self.activation, self.output_activation, self.image_shape)

  def __call__(self, x_BHWC: jax.Array, *, train: bool = False) -> dict[str, jax.Array]:
    del train  # no dropout or BatchNorm
    code_BL = self.encode(x_BHWC)
    return {"reconstruction": self.decode(code_BL), "representation": code_BL}

  def decode(self, code_BL: jax.Array) -> jax.Array:
    return self.decoder_net(code_BL)


class DenseAE(_Autoencoder):
  encoder: Sequence[int] = (128, 30)  # hidden widths before the representation layer
  representation: int = 50
  decoder: Sequence[int] = (128,)  # hidden widths after it
  activation: str = "relu"  # of every hidden layer
  representation_activation: str = "linear"
  output_activation: str = "sigmoid"
  image_shape: Sequence[int] = MNIST_SHAPE

  def __post_init__(self):
    super().__post_init__()
    self.check("encoder", "decoder")

  def setup(self):
    self.encoder_layers = [_dense(width) for width in self.encoder]
    self.code = _dense(self.representation)
    self.decoder_net = self.make_decoder()

  def encode(self, x_BHWC: jax.Array) -> jax.Array:
    x = x_BHWC.reshape(x_BHWC.shape[0], -1)
    for dense in self.encoder_layers:
      x = layers.activation(self.activation)(dense(x))
    return layers.activation(self.representation_activation)(self.code(x))


class ConvAE(_Autoencoder):
  features: Sequence[int] = (128, 256, 512, 1024)  # 3x3 convolutions; a 2x2 pool between two
  representation: int = 10
  decoder: Sequence[int] = (2048, 2048)
  activation: str = "relu"
  representation_activation: str = "linear"
  output_activation: str = "relu"
  image_shape: Sequence[int] = (32, 32, 1)

  def __post_init__(self):
    super().__post_init__()
    self.check("features", "decoder")

  def setup(self):
    self.convs = [nn.Conv(features, (3, 3), padding="SAME",
                          kernel_init=nn.initializers.glorot_uniform())
                  for features in self.features]
    self.code = _dense(self.representation)
    self.decoder_net = self.make_decoder()

  def encode(self, x_BHWC: jax.Array) -> jax.Array:
    act = layers.activation(self.activation)
    x = x_BHWC
    for index, conv in enumerate(self.convs):
      x = act(conv(x))
      if index < len(self.convs) - 1:
        x = max_pool_2x2(x)
    return layers.activation(self.representation_activation)(self.code(x.reshape(x.shape[0], -1)))

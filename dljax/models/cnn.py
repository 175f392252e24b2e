"""Plain CNN: conv layers with 2x2 max-pools between them, then the MLP's dense head.

keras-team mnist_cnn.py, the reference config, reads
    Conv32 3x3 relu -> Conv64 3x3 relu -> MaxPool 2 -> Dropout .25 -> Flatten
    -> Dense128 relu -> Dropout .5 -> Dense10
which is `conv_features=(32, 64), pool_after=(1,), conv_dropout=0.25, hidden=(128,), dropout=0.5`.
"""

from collections.abc import Sequence

import jax
from flax import linen as nn

from dljax.models import layers


class CNN(nn.Module):
  conv_features: Sequence[int] = (32, 64)
  kernel_size: int = 3
  strides: int = 1
  padding: str = "VALID"
  pool_after: Sequence[int] = (1,)  # indices of the conv layers followed by a 2x2 max-pool
  conv_dropout: float = 0.25  # after each pool
  hidden: Sequence[int] = (128,)
  dropout: float = 0.5
  activation: str = "relu"
  kernel_init: str = "glorot_uniform"
  num_classes: int = 10

  @nn.compact
  def __call__(self, x_BHWC: jax.Array, *, train: bool) -> jax.Array:
    act = layers.activation(self.activation)
    init = layers.initializer(self.kernel_init)
    x = x_BHWC
    for index, features in enumerate(self.conv_features):
      x = act(nn.Conv(features, (self.kernel_size,) * 2, strides=self.strides,
                      padding=self.padding, kernel_init=init)(x))
      if index in self.pool_after:
        x = layers.max_pool_2x2(x)
        x = nn.Dropout(self.conv_dropout, deterministic=not train)(x)
    x = x.reshape(x.shape[0], -1)
    for width in self.hidden:
      x = act(nn.Dense(width, kernel_init=init)(x))
      x = nn.Dropout(self.dropout, deterministic=not train)(x)
    return nn.Dense(self.num_classes, kernel_init=init)(x)

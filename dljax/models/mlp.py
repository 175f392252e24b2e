"""Multi-layer perceptron: Flatten, [Dense, activation, Dropout] per hidden layer, Dense logits.

keras-team mnist_mlp.py is `hidden=(512, 512), dropout=0.2`; Géron's Fashion-MNIST MLP (ch. 10)
is `hidden=(300, 100), dropout=0`.
"""

from collections.abc import Sequence

import jax
from flax import linen as nn

from dljax.models import layers


class MLP(nn.Module):
  hidden: Sequence[int] = (512, 512)
  dropout: float = 0.0
  activation: str = "relu"
  kernel_init: str = "glorot_uniform"
  num_classes: int = 10

  @nn.compact
  def __call__(self, x_B: jax.Array, *, train: bool) -> jax.Array:
    act = layers.activation(self.activation)
    x = x_B.reshape(x_B.shape[0], -1)
    for width in self.hidden:
      x = act(nn.Dense(width, kernel_init=layers.initializer(self.kernel_init))(x))
      x = layers.Dropout(self.dropout)(x, train=train)
    return nn.Dense(self.num_classes, kernel_init=layers.initializer(self.kernel_init))(x)

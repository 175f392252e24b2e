"""Multi-layer perceptron: Flatten, then hidden layer i, then Dense logits (the task applies the
output activation).

Hidden layer i reads like a row of the papers' tables:
    Dense(hidden[i]) -> BatchNorm if i in batch_norm_after -> activation
    -> Dropout(dropout) if i in dropout_after (None: after every hidden layer)
Keras semantics, as in the CNN: `kernel_init` kernels and `bias_init` biases (zeros, Keras'
default) in every dense layer, BatchNorm(momentum=0.99, epsilon=1e-3) between Dense and
activation with its running statistics in the 'batch_stats' collection.

The reference architectures (configs/mnist_mlp.py, geron_mlp.py):
  keras-team mnist_mlp.py: Dense512 -> Drop .2 -> Dense512 -> Drop .2 (relu)
    hidden=(512, 512), dropout=0.2, dropout_after=None
  Géron ch. 10 (Fashion-MNIST): Dense300 -> Dense100 (relu)
    hidden=(300, 100), dropout=0.0
"""

from collections.abc import Sequence

import jax
from flax import linen as nn

from dljax.models import layers


class MLP(nn.Module):
  hidden: Sequence[int] = (512, 512)  # widths of the hidden layers
  dropout: float = 0.0
  # Indices of the hidden layers followed by Dropout (None: every one) / with BatchNorm.
  dropout_after: Sequence[int] | None = None
  batch_norm_after: Sequence[int] = ()
  activation: str = "relu"  # of every hidden layer
  kernel_init: str = "glorot_uniform"  # a name of layers.INITIALIZERS, for every kernel
  bias_init: str = "zeros"  # the same, for every bias
  num_classes: int = 10

  def __post_init__(self):
    super().__post_init__()
    layers.check_sizes("hidden", self.hidden)
    layers.check_sizes("num_classes", self.num_classes)
    layers.check_rate("dropout", self.dropout)
    if self.dropout_after is not None:
      layers.check_layer_indices("dropout_after", self.dropout_after, len(self.hidden), "hidden")
    layers.check_layer_indices("batch_norm_after", self.batch_norm_after, len(self.hidden),
                               "hidden")

  @nn.compact
  def __call__(self, x_B: jax.Array, *, train: bool) -> jax.Array:
    act = layers.activation(self.activation)
    inits = layers.param_inits(self.kernel_init, self.bias_init)
    dropout_after = range(len(self.hidden)) if self.dropout_after is None else self.dropout_after
    x = x_B.reshape(x_B.shape[0], -1)
    for index, width in enumerate(self.hidden):
      x = nn.Dense(width, **inits)(x)
      if index in self.batch_norm_after:
        x = layers.batch_norm(x, train=train)
      x = act(x)
      if index in dropout_after:
        x = layers.Dropout(self.dropout)(x, train=train)
    return nn.Dense(self.num_classes, **inits)(x)

"""Plain CNN: conv blocks, then Flatten (or global average pooling), then dense layers.

Conv block i reads like a row of the papers' tables:
    Conv(conv_features[i], kernel_sizes[i] x kernel_sizes[i]) -> BatchNorm if i in batch_norm_after
    -> activation -> 2x2 MaxPool if i in pool_after -> Dropout(conv_dropout) if i in dropout_after
then Flatten (GlobalAvgPool if global_pool) -> [Dense(hidden[j]) -> activation -> Dropout] -> Dense
logits (the task applies the output activation).
Keras semantics throughout: `kernel_init` kernels and `bias_init` biases (zeros, Keras' default)
in every conv and dense layer, one `padding` for every conv, 'valid' 2x2 pooling (an odd last
row/column is dropped), BatchNorm(momentum=0.99, epsilon=1e-3) between conv and activation with
its running statistics in the 'batch_stats' collection.

The reference architectures (configs/mnist_cnn.py, geron_cnn.py, cifar10_cnn.py; the defaults
are mnist_cnn's):
  keras-team mnist_cnn.py: Conv32 -> Conv64 -> MP -> Drop .25 -> Dense128 -> Drop .5 (3x3 valid)
    conv_features=(32, 64), kernel_sizes=(3, 3), pool_after=(1,), dropout_after=(1,),
    conv_dropout=0.25, hidden=(128,), dropout=0.5
  Géron ch. 14: Conv64 7x7 -> MP -> Conv128 -> Conv128 -> MP -> Conv256 -> Conv256 -> MP
    -> Dense128 -> Drop .5 -> Dense64 -> Drop .5 (3x3 same unless stated)
    conv_features=(64, 128, 128, 256, 256), kernel_sizes=(7, 3, 3, 3, 3), padding="SAME",
    pool_after=(0, 2, 4), dropout_after=(), hidden=(128, 64), dropout=0.5
  Imperial CIFAR-10 baseline: Conv32 -> MP -> Conv64 -> MP -> Conv128 -> MP -> Conv256 -> GAP
    (3x3 same), no hidden layers
    conv_features=(32, 64, 128, 256), kernel_sizes=(3, 3, 3, 3), padding="SAME",
    pool_after=(0, 1, 2), dropout_after=(), global_pool=True, hidden=()
    + Dropout .3 in each layer: dropout_after=(0, 1, 2, 3), conv_dropout=0.3
    + BatchNorm in the first two conv layers: batch_norm_after=(0, 1)
"""

from collections.abc import Sequence

import jax
from flax import linen as nn

from dljax.errors import ConfigError
from dljax.models import layers


class CNN(nn.Module):
  conv_features: Sequence[int] = (32, 64)
  kernel_sizes: Sequence[int] = (3, 3)  # one per conv layer
  # One stride for every conv layer, or one per layer: e.g. (1, 1, 2, 2, 2) keeps the first
  # layers at full resolution, where a stride of 2 would step over lines a pixel wide.
  strides: int | Sequence[int] = 1
  padding: str = "VALID"
  # Indices of the conv layers with BatchNorm / followed by a 2x2 max-pool / by Dropout.
  batch_norm_after: Sequence[int] = ()
  pool_after: Sequence[int] = (1,)
  dropout_after: Sequence[int] = (1,)
  conv_dropout: float = 0.25
  global_pool: bool = False  # average over height and width instead of flattening
  hidden: Sequence[int] = (128,)
  dropout: float = 0.5  # after each hidden dense layer
  activation: str = "relu"
  kernel_init: str = "glorot_uniform"  # a name of layers.INITIALIZERS, for every kernel
  bias_init: str = "zeros"  # the same, for every bias
  num_classes: int = 10

  def __post_init__(self):
    super().__post_init__()
    for key in ("conv_features", "kernel_sizes", "strides", "hidden", "num_classes"):
      layers.check_sizes(key, getattr(self, key))
    for key in ("conv_dropout", "dropout"):
      layers.check_rate(key, getattr(self, key))
    num_convs = len(self.conv_features)
    per_layer = {"kernel_sizes": "size", **({} if isinstance(self.strides, int) else
                                            {"strides": "stride"})}
    for key, noun in per_layer.items():
      if len(getattr(self, key)) != num_convs:
        raise ConfigError(f"config.model.{key}={tuple(getattr(self, key))}: needs one {noun} per "
                          f"conv layer ({num_convs}, as conv_features)")
    for key in ("batch_norm_after", "pool_after", "dropout_after"):
      layers.check_layer_indices(key, getattr(self, key), num_convs, "conv")

  @nn.compact
  def __call__(self, x_BHWC: jax.Array, *, train: bool) -> jax.Array:
    act = layers.activation(self.activation)
    inits = layers.param_inits(self.kernel_init, self.bias_init)
    x = x_BHWC
    strides = [self.strides] * len(self.conv_features) if isinstance(self.strides, int) else (
        self.strides)
    for index, (features, size, stride) in enumerate(zip(self.conv_features, self.kernel_sizes,
                                                         strides, strict=True)):
      x = nn.Conv(features, (size, size), strides=stride, padding=self.padding,
                  conv_general_dilated=layers.conv_general_dilated, **inits)(x)
      if index in self.batch_norm_after:
        x = layers.batch_norm(x, train=train)
      x = act(x)
      if index in self.pool_after:
        x = layers.max_pool_2x2(x)
      if index in self.dropout_after:
        x = layers.Dropout(self.conv_dropout)(x, train=train)
    x = x.mean(axis=(1, 2)) if self.global_pool else x.reshape(x.shape[0], -1)
    for width in self.hidden:
      x = act(nn.Dense(width, **inits)(x))
      x = layers.Dropout(self.dropout)(x, train=train)
    return nn.Dense(self.num_classes, **inits)(x)

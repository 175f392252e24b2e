"""VGG16 and VGG19 laid out as `keras.applications.VGG16` / `VGG19`, layer for layer and name for
name, so Keras' ImageNet weight files load by layer name (`dljax.weights`).

    blockB_convC: Conv 3x3 'same' + relu (filters 64, 128, 256, 512, 512 in blocks 1-5; two
    convs in blocks 1-2, then three (VGG16) or four (VGG19)); blockB_pool: 2x2 max-pool
    include_top: flatten -> fc1 -> fc2 (Dense top_width + relu) -> predictions (Dense num_classes)
    without the top: `pooling` ('flatten', 'avg', 'max') -> predictions, a new dense head

The top at another input size than 224 is the transfer-learning tutorial's head (Flatten ->
Dense4096 -> Dense4096 -> Dense N, e.g. 2x2x512 features at 64 px): Keras' layers and names, so
`init_from` loads the base (`load='block'`) and trains the head fresh. The model returns logits
(the task applies the softmax). `width` scales every conv's filters (1.0 is Keras'; 0.125 makes a
network a CPU trains in minutes); `resize_to` resizes the inputs inside the step (64 -> 224);
`caffe_inputs` turns the [0, 1] inputs dljax feeds into what Keras' ImageNet weights expect
(`keras.applications.vgg16.preprocess_input`: 0-255, RGB -> BGR, minus the ImageNet mean).
Keras' initialisers: glorot_uniform kernels, zero biases.
"""

import jax
import jax.numpy as jnp
from flax import linen as nn

from dljax.errors import ConfigError
from dljax.models import layers

FILTERS = (64, 128, 256, 512, 512)  # of blocks 1-5
CONVS_PER_BLOCK = {16: (2, 2, 3, 3, 3), 19: (2, 2, 4, 4, 4)}
POOLINGS = ("flatten", "avg", "max")
CAFFE_MEAN_BGR = (103.939, 116.779, 123.68)  # keras.applications.imagenet_utils, mode 'caffe'


def caffe_inputs(x_BHWC: jax.Array) -> jax.Array:
  """[0, 1] RGB images -> Keras' 'caffe' preprocessing of the same images in 0-255."""
  return x_BHWC[..., ::-1] * 255.0 - jnp.asarray(CAFFE_MEAN_BGR)


def pool(x_BHWC: jax.Array, pooling: str) -> jax.Array:
  """Feature maps -> one vector per example: Keras' Flatten, GlobalAveragePooling2D or
  GlobalMaxPooling2D."""
  if pooling == "avg":
    return x_BHWC.mean(axis=(1, 2))
  if pooling == "max":
    return x_BHWC.max(axis=(1, 2))
  return x_BHWC.reshape(x_BHWC.shape[0], -1)


class VGG(nn.Module):
  depth: int = 16  # 16 or 19
  width: float = 1.0  # multiplies every conv's filters
  include_top: bool = True  # fc1, fc2, predictions; else `pooling` then predictions
  top_width: int = 4096  # units of fc1 and fc2
  pooling: str = "flatten"  # without the top
  dropout: float = 0.0  # after fc1 and fc2 (Keras' VGG has none)
  num_classes: int = 1000
  resize_to: int = 0  # resize inputs to resize_to x resize_to inside the step; 0 = as they come
  caffe_inputs: bool = False  # Keras' ImageNet preprocessing, for Keras' ImageNet weights

  def __post_init__(self):
    super().__post_init__()
    if self.depth not in CONVS_PER_BLOCK:
      raise ConfigError(f"config.model.depth={self.depth!r}: allowed: 16, 19")
    if not (isinstance(self.width, int | float) and round(FILTERS[0] * self.width) >= 1):
      raise ConfigError(f"config.model.width={self.width!r}: must leave every conv >= 1 filter")
    layers.check_sizes("top_width", self.top_width)
    layers.check_sizes("num_classes", self.num_classes)
    layers.check_choice("pooling", self.pooling, POOLINGS)
    layers.check_rate("dropout", self.dropout)
    if self.resize_to:
      layers.check_sizes("resize_to", self.resize_to)

  @nn.compact
  def __call__(self, x_BHWC: jax.Array, *, train: bool) -> jax.Array:
    inits = layers.param_inits("glorot_uniform", "zeros")
    x = layers.resize(x_BHWC, self.resize_to)
    if self.caffe_inputs:
      x = caffe_inputs(x)
    for block, (filters, convs) in enumerate(zip(FILTERS, CONVS_PER_BLOCK[self.depth],
                                                 strict=True), start=1):
      for conv in range(1, convs + 1):
        x = nn.relu(nn.Conv(round(filters * self.width), (3, 3), padding="SAME",
                            name=f"block{block}_conv{conv}", **inits)(x))
      x = layers.max_pool_2x2(x)
    if self.include_top:
      x = pool(x, "flatten")
      for name in ("fc1", "fc2"):
        x = nn.relu(nn.Dense(self.top_width, name=name, **inits)(x))
        x = layers.Dropout(self.dropout)(x, train=train)
    else:
      x = pool(x, self.pooling)
    return nn.Dense(self.num_classes, name="predictions", **inits)(x)

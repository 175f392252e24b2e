r"""Leiden task 1 (2021): the keras-team MNIST CNN one factor at a time, on MNIST and Fashion-MNIST.

Experiments.md G, seed report 004. The reference is configs/mnist_cnn.py (Conv32 3x3 -> Conv64
3x3 -> MaxPool2 -> Drop .25 -> Dense128 -> Drop .5 -> Dense10, Adadelta lr 1.0, batch 128) with
the report's EarlyStopping(val_loss, patience=5) on 5,000 held-out train images, at most 12
epochs, tested with the best-validation-loss weights. Each sweep changes one factor, the
reference value included, so each is one table of the report.

    python -m launch.sweep --config=configs/leiden_cnn.py:data=fashion_mnist --sweep=stride \
        --workdir=runs/leiden_cnn_fashion_mnist/stride
    python -m dljax.report runs/leiden_cnn_fashion_mnist/stride

Config arguments: `data=mnist|fashion_mnist` (default fashion_mnist), `smoke`.
The report (seed 004, Fashion-MNIST) found: stride 1 vs 8 about 5% accuracy apart, pooling
worth about 0.4%, a one-conv network only 0.2% lower; permuted pixels cost the CNN accuracy
(still near the reference), unlike the MLP.
"""

from configs import mnist_cnn
from dljax import config_lib


def get_config(arg: str | None = None):
  arg = config_lib.parse_arg(arg, smoke=False, data="fashion_mnist")
  config = mnist_cnn.get_config("smoke" if arg.smoke else None)
  config.data.name = arg.data
  config.data.validation, config.data.validation_size = "last", 5000.0
  config.early_stopping.update(metric="loss", mode="min", patience=5, restore_best=True)
  return config


def sweep_kernel():
  for size in (2, 3, 5, 7):
    yield {"model.kernel_sizes": (size, size)}


def sweep_filters():
  """Filters of the two convs: halved, the reference, doubled, and 256 in both."""
  for features in ((16, 32), (32, 64), (64, 128), (256, 256)):
    yield {"model.conv_features": features}


def sweep_stride():
  """The stride of both convs ('valid' 3x3 convs on 28 pixels leave 1 pixel at stride 4 and
  none at 8, so 8 is out of reach of this network)."""
  for stride in (1, 2, 4):
    yield {"model.strides": stride}


def sweep_padding():
  for padding in ("VALID", "SAME"):
    yield {"model.padding": padding}


def sweep_pooling():
  for pool_after in ((1,), ()):
    yield {"model.pool_after": pool_after}


def sweep_depth():
  """One, two (the reference) and three conv layers, the last followed by pool and dropout."""
  for features in ((32,), (32, 64), (32, 64, 64)):
    last = len(features) - 1
    yield {"model.conv_features": features, "model.kernel_sizes": (3,) * len(features),
           "model.pool_after": (last,), "model.dropout_after": (last,)}


def sweep_permuted():
  """Task 2: one fixed random permutation of the 784 pixels, for every image."""
  for permute in (False, True):
    yield {"data.permute_pixels": permute}

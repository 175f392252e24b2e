r"""Leiden task 1 (2021): Géron's MLP one factor at a time, on MNIST and on Fashion-MNIST.

Experiments.md G, seed report 004. The reference is configs/geron_mlp.py (Flatten -> Dense300
relu -> Dense100 relu -> Dense10 softmax, SGD lr 0.01, batch 32, validation = 5,000 train
images) with the report's EarlyStopping(val_loss, patience=5), for at most 30 epochs, tested
with the best-validation-loss weights. Each sweep below changes one factor of it, the reference
value included, so each sweep is one table of the report; `launch/leiden_task1.sh` runs them all.

    python -m launch.sweep --config=configs/leiden_mlp.py:data=mnist --sweep=dropout --vmap \
        --workdir=runs/leiden_mlp_mnist/dropout
    python -m dljax.report runs/leiden_mlp_mnist/dropout

Config arguments: `data=mnist|fashion_mnist` (default fashion_mnist), `smoke`.
The report (seed 004) found: zeros / ones init fail; best dropout 0.2, optimiser RMSprop, batch
32, widths (500, 250, 50); depth 100 fails to learn; permuted pixels leave the MLP unchanged.
Measured here: see README.md, "Hyper-parameter studies".
"""

from configs import geron_mlp
from dljax import config_lib

_BIAS = r"(^|/)bias$"  # optimizer.regularize: Keras' bias_regularizer instead of kernel_


def get_config(arg: str | None = None):
  arg = config_lib.parse_arg(arg, smoke=False, data="fashion_mnist")
  config = geron_mlp.get_config("smoke" if arg.smoke else None)
  config.data.name = arg.data
  config.early_stopping.update(metric="loss", mode="min", patience=5, restore_best=True)
  config.model.dropout_after = (len(config.model.hidden) - 1,)  # the dropout sweep's placement
  return config


def sweep_init():
  """Kernel initialiser (biases stay zeros)."""
  for name in ("glorot_uniform", "zeros", "ones", "random_normal", "he_normal"):
    yield {"model.kernel_init": name}


def sweep_dropout():
  """Dropout rate after the last hidden layer: one vmapped group with --vmap."""
  for rate in (0.0, 0.2, 0.5, 0.9):
    yield {"model.dropout": rate}


def sweep_optimizer():
  """The optimiser, each at its Keras default learning rate."""
  for name, learning_rate in (("sgd", 0.01), ("rmsprop", 1e-3), ("adam", 1e-3), ("nadam", 1e-3)):
    yield {"optimizer.name": name, "optimizer.learning_rate": learning_rate}


def sweep_loss():
  for loss in ("sparse_categorical_crossentropy", "categorical_crossentropy", "poisson",
               "kl_divergence", "mean_squared_error"):
    yield {"classification.loss": loss}


def sweep_batch():
  for batch_size in (32, 100, 500, 1000):
    yield {"batch_size": batch_size}


def sweep_widths():
  """The report's 3-hidden-layer shapes, and Géron's (300, 100)."""
  for hidden in ((300, 100), (100, 30, 10), (50, 50, 50), (10, 30, 100), (500, 250, 50)):
    yield {"model.hidden": hidden}


def sweep_output():
  """The output layer's activation (cross-entropy normalises non-softmax outputs, as Keras)."""
  for activation in ("softmax", "softplus", "sigmoid", "exponential"):
    yield {"classification.output_activation": activation}


def sweep_depth():
  """1, 3, 10 and 100 hidden layers of 10 units."""
  for depth in (1, 3, 10, 100):
    # One hidden layer has no layer 1 to put the (rate 0) dropout after.
    yield {"model.hidden": (10,) * depth, **({"model.dropout_after": ()} if depth == 1 else {})}


def sweep_regularizers():
  """Keras l1(0.01) / l2(0.01) on the kernels or on the biases."""
  yield {"optimizer.l2": 0.0}
  for pattern in (None, _BIAS):
    for key in ("optimizer.l1", "optimizer.l2"):
      yield {key: 0.01, **({"optimizer.regularize": pattern} if pattern else {})}


def sweep_permuted():
  """Task 2: one fixed random permutation of the 784 pixels, for every image."""
  for permute in (False, True):
    yield {"data.permute_pixels": permute}

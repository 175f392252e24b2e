r"""Géron ch. 10 Fashion-MNIST MLP: Flatten -> Dense300 relu -> Dense100 relu -> Dense10.

SGD (Keras default lr 0.01, no momentum), sparse categorical cross-entropy, batch 32 (Keras'
default), 30 epochs, inputs / 255, validation = the first 5,000 train examples. Note: TFDS stores
the train split in its own fixed shuffle of the original file order, so these are not the 5,000
images `keras.datasets.fashion_mnist` puts first: a different (equally random) hold-out.
The book (handson-ml2, ch. 10) reports 89.26% validation accuracy after 30 epochs.

    python -m dljax.main --config=configs/geron_mlp.py --workdir=/tmp/geron_mlp
    python -m dljax.main --config=configs/geron_mlp.py:smoke --workdir=/tmp/geron_mlp_smoke
"""

from dljax import config_lib, optim
from dljax.data import data_config


def get_config(arg: str | None = None):
  arg = config_lib.parse_arg(arg, smoke=False)
  config = config_lib.trainer_config(
      batch_size=32,
      num_epochs=30.0,
      early_stopping=dict(metric="accuracy", mode="max", patience=0, restore_best=False),
  )
  config.model = dict(name="mlp", hidden=(300, 100), dropout=0.0, dropout_after=None,
                      batch_norm_after=(), activation="relu", kernel_init="glorot_uniform",
                      bias_init="zeros", num_classes=10)
  config.data = data_config("fashion_mnist", validation="first", validation_size=5000)
  config.optimizer = optim.optimizer_config("sgd", learning_rate=0.01)
  if arg.smoke:
    config.data.train_limit = 256
    config.data.eval_limit = 128
    config.num_epochs = 2.0
    config.log_every_steps = 4
  return config.lock()

"""A GAN on a 2-D mixture of 8 Gaussians (tests/toy_tasks.py): two optimisers, an evaluator.

    python -m dljax.main --config=tests/configs/gan2d.py --workdir=/tmp/gan2d
"""

from dljax import config_lib, optim
from dljax.data import data_config
from tests import toy_tasks

toy_tasks.register()


def get_config(arg: str | None = None):
  del arg
  config = config_lib.trainer_config(
      task="gan2d", batch_size=128, num_steps=1200, eval_every_steps=300, log_every_steps=100,
      early_stopping=dict(metric="nearest_mode_distance", mode="min", patience=0,
                          restore_best=False))
  config.data = data_config("mixture2d")
  config.optimizers = dict(
      generator=optim.optimizer_config("adam", learning_rate=1e-3, b1=0.5),
      discriminator=optim.optimizer_config("adam", learning_rate=1e-3, b1=0.5))
  return config.lock()

"""A 10-armed bandit with no data set (tests/toy_tasks.py): the task makes its own experience.

    python -m dljax.main --config=tests/configs/bandit.py --workdir=/tmp/bandit
"""

from dljax import config_lib, optim
from tests import toy_tasks

toy_tasks.register()


def get_config(arg: str | None = None):
  del arg
  config = config_lib.trainer_config(
      task="bandit", batch_size=1, num_steps=400, eval_every_steps=50, log_every_steps=25,
      early_stopping=dict(metric="regret", mode="min", patience=0, restore_best=False))
  config.optimizer = optim.optimizer_config("sgd", learning_rate=0.1)
  return config.lock()

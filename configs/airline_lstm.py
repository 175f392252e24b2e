r"""Airline passengers, the Keras LSTM tutorial (Imperial task 3): the previous W months predict
the next.

LSTM(16) -> Dense(1), MSE on MinMax-scaled values (the scaler fitted on the first 70% of the
months only), Adam 1e-3, batch 32, 500 epochs, trained on the first 70% (100 months) and tested
on the last 30% (44), the test part also validating (as the course; the last state is tested).
RMSE in thousands of passengers on train and test (results.json: test `rmse`, `train_rmse`),
and predictions.png against the truth. `sweep_window()` trains W = 1, 2, 4, ..., 16.

    python -m dljax.main --config=configs/airline_lstm.py --workdir=runs/airline
    python -m launch.sweep --config=configs/airline_lstm.py --sweep=window --workdir=runs/airline_w
    python -m dljax.main --config=configs/airline_lstm.py:smoke --workdir=/tmp/airline_smoke

Measured (seed 0, 2-core CPU shared with other sessions): test RMSE 57.5 (train 22.4) thousand
passengers at W = 10; the sweep: W = 1: 48.5, 2: 55.2, 4: 53.9, 6: 57.2, 8: 60.1, 12: 67.4,
16: 88.8 (3.6-56 s of training each). The course's 39.9 scaled with all 144 months.
"""

from dljax import config_lib, optim
from dljax.data import data_config
from launch import sweeps


def get_config(arg: str | None = None):
  arg = config_lib.parse_arg(arg, smoke=False, window=10)
  config = config_lib.trainer_config(
      task="time_series",
      batch_size=32,
      num_epochs=500.0,
      log_every_steps=100,
      eval_every_epochs=25.0,
      early_stopping=dict(metric="loss", mode="min", patience=0, restore_best=False),
  )
  config.model = dict(name="lstm_regressor", units=16, outputs=1)
  config.data = data_config(
      "airline_passengers", validation="test",
      airline=dict(path="../shared/data/airline-passengers/airline-passengers.csv",
                   window=arg.window, test_fraction=0.3))
  config.optimizer = optim.optimizer_config("adam", learning_rate=1e-3)
  if arg.smoke:
    config.num_epochs = 3.0
    config.batch_size = 8
    config.eval_every_epochs = 1.0
    config.log_every_steps = 2
  return config.lock()


def sweep_window():
  """The window W: the course found W = 8-10 best."""
  return sweeps.grid(**{"data.airline.window": [1, 2, 4, 6, 8, 10, 12, 16]})

r"""Tell the time by regression: a CNN outputs the hour as one number h + m/60, plain MSE.

Experiments.md H, seed reports 002/003/004: a CNN reads an analogue clock; one linear output, the
hours as a float in [0, 12), mean squared error (the 12-hour wrap is ignored: 11:55 and 0:05 are
11.8 hours apart to the loss). Decoded as 60 x output, wrapped into [0, 720) minutes. The reports
measured a common-sense error of 11.48 min (002, MSE), 14.26 (002, MAE), 42.3 (003) and ~19
(004, with a common-sense loss: configs/clock_regression_wrap.py).

Data: dljax.data.clocks rendered on first use into the data dir: 18,000 clocks at 150x150 px
(the course data set's size), difficulty 1 (the full variety of dials, hands, second hands,
rotation, lighting and noise); train = the first 80% less its last 10% (validation: early
stopping and the best checkpoint), test = the held-out last 20%. `--config.data.clocks.source=
course` reads the course's files instead, once prepared (`python -m dljax.data prepare clocks
--from DIR`). Metric: the common-sense error in minutes, min(|dt|, 720 - |dt|); results.json also
has its median and 90th percentile, the workdir error_histogram.png and worst_predictions.png.

Model, shared by the clock_* configs: 6 x (Conv 3x3 stride 2 'same' -> BatchNorm -> relu) with
32-64-64-128-128-256 filters -> global average pooling -> Dense256 -> Dense(outputs); Adam 2e-3
with a cosine decay over 60 epochs, batch 64; augmentation that keeps the time (rotation +-18
deg: the labels follow the dial; translation and zoom 10%; never a flip: a mirror shows another
time). Expected result: not measured at 150 px (a GPU's work: bench/clocks.py). Measured at
64 px, difficulty 0.5, 10 epochs on 2 CPU cores (bench/clocks.py, whose docstring has the whole
table): 47.0 min mean error (median 31, p90 105).

    python -m dljax.main --config=configs/clock_regression.py --workdir=/tmp/clock_regression
    python -m dljax.main --config=configs/clock_regression.py:smoke --workdir=/tmp/smoke
"""

import ml_collections

from dljax import config_lib, optim
from dljax.data import clocks, data_config
from dljax.tasks import clock


def recipe(encoding: str, smoke: bool, **encoding_knobs) -> ml_collections.ConfigDict:
  """The clock study's recipe with `encoding`; every clock_* config is this, or starts from it."""
  config = config_lib.trainer_config(
      task="clock",
      batch_size=64,
      num_epochs=60.0,
      early_stopping=dict(metric="error_minutes", mode="min", patience=0, restore_best=True),
  )
  config.clock.update(encoding=encoding, **encoding_knobs)
  config.model = dict(name="cnn", conv_features=(32, 64, 64, 128, 128, 256),
                      kernel_sizes=(3, 3, 3, 3, 3, 3), strides=(2, 2, 2, 2, 2, 2), padding="SAME",
                      batch_norm_after=(0, 1, 2, 3, 4, 5), pool_after=(), dropout_after=(),
                      conv_dropout=0.0, global_pool=True, hidden=(256,), dropout=0.0,
                      activation="relu", kernel_init="glorot_uniform", bias_init="zeros",
                      num_classes=clock.encoding(config.clock).width)
  config.data = data_config(
      "clocks", validation="last", validation_size=0.1, clocks=dict(clocks.OPTIONS),
      augment=dict(zoom=0.1, rotation=0.05, translation=0.1, flip="", pad_crop=0))
  config.optimizer = optim.optimizer_config("adam", learning_rate=2e-3, schedule="cosine")
  if smoke:
    config.data.clocks.size = 32
    config.data.clocks.num_examples = 200
    config.batch_size = 16
    config.num_epochs = 1.0
    config.log_every_steps = 4
  return config


def get_config(arg: str | None = None):
  arg = config_lib.parse_arg(arg, smoke=False)
  return recipe("regression", arg.smoke).lock()

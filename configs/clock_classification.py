r"""Tell the time by classification into N bins of 720 / N minutes (`:classes=N`, default 24).

Experiments.md H, seed reports 002/003/004: softmax over N classes, bin k = minutes
[720 k / N, 720 (k + 1) / N), cross-entropy; decoded to the bin's centre (the middle of the
whole minutes it holds), so even a perfect classifier is off by N=24: 7.5 min on average
(48: 3.7, 72: 2.5, 96: 1.9, 192: 0.9, 360: 0.5, 720: 0). The reports measured (common-sense
error, minutes): 24 classes 23.94 (002) and 37.2 (003); 48: 47.29; 72: 57.1 (003); 96: 10.12;
192: 6.14; 360: 181.36 and 720: 179.61 (002: chance, too few examples per class to learn).
`sweep_classes()` lists the class counts for a launcher.

Data, model, training and metric as configs/clock_regression.py. Expected result: not measured
at 150 px yet (bench/clocks.py); the 64 px table in README.md has what was measured on a CPU.

    python -m dljax.main --config=configs/clock_classification.py --workdir=/tmp/clock_cls24
    python -m dljax.main --config=configs/clock_classification.py:classes=192 \
        --workdir=/tmp/clock_cls192
    python -m dljax.main --config=configs/clock_classification.py:smoke --workdir=/tmp/smoke
"""

from dljax import config_lib, optim
from dljax.data import clocks, data_config
from dljax.tasks import clock


def get_config(arg: str | None = None):
  arg = config_lib.parse_arg(arg, smoke=False, classes=24)
  config = config_lib.trainer_config(
      task="clock",
      loss="",  # the clock task's loss comes with config.clock.encoding
      batch_size=64,
      num_epochs=60.0,
      early_stopping=dict(metric="error_minutes", mode="min", patience=0, restore_best=True),
  )
  config.clock = clock.clock_config("classification", classes=arg.classes)
  config.model = dict(name="cnn", conv_features=(32, 64, 64, 128, 128, 256),
                      kernel_sizes=(3, 3, 3, 3, 3, 3), strides=2, padding="SAME",
                      batch_norm_after=(0, 1, 2, 3, 4, 5), pool_after=(), dropout_after=(),
                      conv_dropout=0.0, global_pool=True, hidden=(256,), dropout=0.0,
                      activation="relu", kernel_init="glorot_uniform", num_classes=arg.classes)
  config.data = data_config(
      "clocks", validation="last", validation_size=0.1, clocks=dict(clocks.OPTIONS),
      augment=dict(zoom=0.1, rotation=0.05, translation=0.1, flip="", pad_crop=0))
  config.optimizer = optim.optimizer_config("adam", learning_rate=2e-3, schedule="cosine")
  if arg.smoke:
    config.data.clocks.size = 32
    config.data.clocks.num_examples = 200
    config.batch_size = 16
    config.num_epochs = 1.0
    config.log_every_steps = 4
  return config.lock()


CLASS_COUNTS = (24, 48, 72, 96, 192, 360, 720)  # the reports' N (720 / N minutes a bin)


def sweep_classes():
  r"""The reports' classification study: one run per class count (a config argument, which sets
  the encoding's classes and the model's outputs together).

      python -m launch.sweep --config=configs/clock_classification.py --sweep=classes \
          --workdir=runs/clock_classes
  """
  for classes in CLASS_COUNTS:
    yield {"config_arg": f"classes={classes}"}

r"""Tell the time by classification into N bins of 720 / N minutes (`:classes=N`, default 24).

Experiments.md H, seed reports 002/003/004: softmax over N classes, bin k = minutes
[720 k / N, 720 (k + 1) / N), cross-entropy; decoded to the bin's centre (the middle of the
whole minutes it holds), so even a perfect classifier is off by N=24: 7.5 min on average
(48: 3.7, 72: 2.5, 96: 1.9, 192: 0.9, 360: 0.5, 720: 0). The reports measured (common-sense
error, minutes): 24 classes 23.94 (002) and 37.2 (003); 48: 47.29; 72: 57.1 (003); 96: 10.12;
192: 6.14; 360: 181.36 and 720: 179.61 (002: chance, too few examples per class to learn).
`sweep_classes()` lists the class counts for a launcher.

Data, model, training and metric as configs/clock_regression.py. At 150 px and difficulty 1
(one NVIDIA H200, bench/clocks.py --epochs 30 and 60) 48 and 192 classes did not learn: the loss
stayed at ln N, the error at chance (~182 min); so did 48 classes at 64 px, difficulty 1, for 8
epochs on the CPU, where `--config.optimizer.learning_rate=5e-4` left the plateau in epoch 3
(147 min after 5 epochs): the recipe's 2e-3 is too high for this encoding at full variety (not
yet measured further). Measured at 64 px, difficulty 0.5, 10 epochs on 2 CPU cores, mean
(median) minutes: 24 classes 13.5 (8), 48: 10.8 (4), 72: 11.0 (3), 96: 12.9 (2), 192: 20.0 (1),
360: 27.8 (1), 720: 179.3 (chance: 18 train examples a class).

    python -m dljax.main --config=configs/clock_classification.py --workdir=/tmp/clock_cls24
    python -m dljax.main --config=configs/clock_classification.py:classes=192 \
        --workdir=/tmp/clock_cls192
    python -m dljax.main --config=configs/clock_classification.py:smoke --workdir=/tmp/smoke
"""

from configs import clock_regression
from dljax import config_lib


def get_config(arg: str | None = None):
  arg = config_lib.parse_arg(arg, smoke=False, classes=24)
  return clock_regression.recipe("classification", arg.smoke, classes=arg.classes).lock()


CLASS_COUNTS = (24, 48, 72, 96, 192, 360, 720)  # the reports' N (720 / N minutes a bin)


def sweep_classes():
  r"""The reports' classification study: one run per class count (a config argument, which sets
  the encoding's classes and the model's outputs together).

      python -m launch.sweep --config=configs/clock_classification.py --sweep=classes \
          --workdir=runs/clock_classes
  """
  for classes in CLASS_COUNTS:
    yield {"config_arg": f"classes={classes}"}

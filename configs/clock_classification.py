r"""Tell the time by classification into N bins of 720 / N minutes (`:classes=N`, default 24).

Experiments.md H, seed reports 002/003/004: softmax over N classes, bin k = minutes
[720 k / N, 720 (k + 1) / N), cross-entropy; decoded to the bin's centre (the middle of the
whole minutes it holds), so even a perfect classifier is off by N=24: 7.5 min on average
(48: 3.7, 72: 2.5, 96: 1.9, 192: 0.9, 360: 0.5, 720: 0). The reports measured (common-sense
error, minutes): 24 classes 23.94 (002) and 37.2 (003); 48: 47.29; 72: 57.1 (003); 96: 10.12;
192: 6.14; 360: 181.36 and 720: 179.61 (002: chance, too few examples per class to learn).
`sweep_classes()` lists the class counts for a launcher.

Data, model and metric as configs/clock_regression.py; training too, but for a linear warm-up
of the learning rate over the first 500 steps and soft targets (`config.clock.soft_minutes=15`:
a circular Gaussian over the bins' centres, so a neighbouring bin earns part of the credit).

Why: without them, at difficulty 1, 48 and 192 classes never learnt (150 px on one NVIDIA H200,
30 and 60 epochs; 64 px on the CPU, 8 epochs): the train loss fell to ln N within ~100 steps and
stayed there, the error at chance (~180 min). Adam takes full-size steps from the first one
whatever the gradient's size, and the one-hot cross-entropy's early gradients are weak and noisy:
the network settles on the uniform prediction. Short diagnostic runs (64 px, difficulty 1, 48
classes, 4 epochs, the clock_quick trunk, 2 shared CPU cores at load 6-10; test mean error, min):
as it was 178.7 (loss 3.87 = ln 48 throughout); soft targets alone (15-20 min) 179.5; a learning
rate of 5e-4 157.9; a warm-up of 200 steps 139.6, of 400 steps 126.1 (train loss leaving 3.87
at step ~350), the same with a peak of 1e-3 139.6, with soft targets 122.7; flattening instead of
global pooling stayed at chance even with the warm-up (182.9). 192 classes: 181.7 as it was,
171.0 with the warm-up, 140.7 with warm-up and soft targets (15 min). The periodic encoding is
indifferent to the warm-up (127.9 without, 126.0 with): its gradient is informative from the
start. A stride-1 trunk with max-pooling learnt faster still (48 classes 89.7, 192: 143.3, at
twice the step time; clock_quick's trunk).

This config at 64 px, difficulty 1, 6 epochs on 2 CPU cores (load 3-7, ~5 min each): 48 classes
98.4 min mean test error (median 56; validation loss 3.88 -> 3.01), 192 classes 128.8 (median
71; 5.26 -> 4.78): both off chance, still early. Measured before the warm-up and soft targets,
at 64 px, difficulty 0.5, 10 epochs on 2 CPU cores, mean (median) minutes: 24 classes 13.5 (8),
48: 10.8 (4), 72: 11.0 (3), 96: 12.9 (2), 192: 20.0 (1), 360: 27.8 (1), 720: 179.3 (chance: 18
train examples a class).

    python -m dljax.main --config=configs/clock_classification.py --workdir=/tmp/clock_cls24
    python -m dljax.main --config=configs/clock_classification.py:classes=192 \
        --workdir=/tmp/clock_cls192
    python -m dljax.main --config=configs/clock_classification.py:smoke --workdir=/tmp/smoke
"""

from configs import clock_regression
from dljax import config_lib

# Why the one-hot softmax sat at ln N at difficulty 1 (see the docstring): Adam's full-size
# first steps on weak, noisy cross-entropy gradients. A linear warm-up gets it off the plateau;
# soft targets (a bin next to the true one earns part of the credit) speed it on.
WARMUP_STEPS = 500  # ~2.5 epochs of 202 steps
SOFT_MINUTES = 15.0


def get_config(arg: str | None = None):
  arg = config_lib.parse_arg(arg, smoke=False, classes=24)
  config = clock_regression.recipe("classification", arg.smoke, classes=arg.classes,
                                   soft_minutes=SOFT_MINUTES)
  config.optimizer.warmup_steps = 0 if arg.smoke else WARMUP_STEPS
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

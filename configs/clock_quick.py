r"""Tell the time, quickly: a first clock run for a new user, minutes end to end on a 2-core CPU.

Renders 18,000 clocks at 64x64 px with half the variety (difficulty 0.5: some rotation, other
dials and hands, second hands, lighting and noise; 5-20 s) into the data dir on first use, then
trains a small CNN for 15 epochs with the periodic encoding (sin, cos of both hands' angles, see
configs/clock_periodic.py): 5 x (Conv 3x3 stride 2 'same' -> BatchNorm -> relu) with
16-32-64-128-128 filters -> global average pooling -> Dense256 -> Dense4; Adam 2e-3 with a
cosine decay, batch 64, rotation / translation / zoom augmentation. Train on the first 80% less
its last 10% (validation), test on the held-out last 20%; the metric is the common-sense error in
minutes (results.json: mean, median, 90th percentile; error_histogram.png and
worst_predictions.png in the workdir). At full variety (difficulty 1) this model reached only
53 min after 20 epochs: that needs the larger clock_* configs and an accelerator.

Expected result (measured on 2 idle CPU cores, jaxlib 0.10.2): 10.97 min mean test error, median
1 min, 90th percentile 60 (one clock in ten is read an hour off), in 2 min 28 s wall end to end
(generating the clocks 5.5 s, training 127 s; 258 CPU-seconds in all). Reruns give the same
numbers bit for bit; on busy shared cores the wall time grows 2-3x.

    python -m dljax.main --config=configs/clock_quick.py --workdir=/tmp/clock_quick
    python -m dljax.data show clocks --size 64 --difficulty 0.5 --out clocks.png
    python -m dljax.main --config=configs/clock_quick.py:smoke --workdir=/tmp/smoke

On clocks it never saw: hold style families out of training and test on them too, as a second
test split (results.json's "test_styles" beside "test"; its PNGs in WORKDIR/test_styles/; a
5-epoch smoke under load 25-28: 24.5 min in-distribution, 37.7 held-out; README):

    python -m dljax.main --config=configs/clock_quick.py --workdir=/tmp/clock_held_out \
        --config.data.clocks.held_out="('dial=ellipse', 'hands=lance')" \
        --config.data.extra_tests="('test_styles',)"
"""

from configs import clock_regression
from dljax import config_lib


def get_config(arg: str | None = None):
  arg = config_lib.parse_arg(arg, smoke=False)
  config = clock_regression.recipe("periodic", arg.smoke)
  config.num_epochs = 1.0 if arg.smoke else 15.0
  config.log_every_steps = 4 if arg.smoke else 50
  config.model.update(conv_features=(16, 32, 64, 128, 128), kernel_sizes=(3, 3, 3, 3, 3),
                      strides=(2, 2, 2, 2, 2), batch_norm_after=(0, 1, 2, 3, 4))
  config.data.clocks.update(size=32 if arg.smoke else 64, difficulty=0.5)
  return config.lock()

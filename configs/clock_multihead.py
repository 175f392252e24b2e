r"""Tell the time with two heads: the hour as a 12-way class, the minute as a regression.

Experiments.md H, seed reports 002/003/004: one network, outputs = 12 hour logits + 1 minute
value (m / 60); loss = cross-entropy(hour) + squared error(minute / 60). Decoded as
60 x argmax(hour) + 60 x minute (clipped to 0..59). The reports measured ~5 min (004) and
0.8634 h = 51.8 min (003); 002's numbers have unclear units.

Data, model, training and metric as configs/clock_regression.py (here one shared trunk and a
13-wide output layer). Measured at 150 px, difficulty 1 on one NVIDIA H200 (bench/clocks.py
--epochs 60): 13.9 min mean error (median 5, p90 28) after 27 s of training. Measured at
64 px, difficulty 0.5, 10 epochs on 2 CPU cores: 13.0 min mean error (median 5, p90 23).

    python -m dljax.main --config=configs/clock_multihead.py --workdir=/tmp/clock_multihead
    python -m dljax.main --config=configs/clock_multihead.py:smoke --workdir=/tmp/smoke
"""

from configs import clock_regression
from dljax import config_lib


def get_config(arg: str | None = None):
  arg = config_lib.parse_arg(arg, smoke=False)
  return clock_regression.recipe("multihead", arg.smoke).lock()

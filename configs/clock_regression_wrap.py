r"""Tell the time by regression with a loss that knows the 12-hour wrap.

Experiments.md H, seed report 004 ("regression, normalised labels, CS loss": ~19 min, 19-25 over
splits): one linear output, the hours h + m/60, and the squared common-sense distance in hours,
((y - h + 6) mod 12 - 6)^2, so 11.9 against 0.1 costs 0.2^2, not 11.8^2 as in plain MSE
(configs/clock_regression.py). Decoded as 60 x output, wrapped into [0, 720) minutes.

Data, model, training and metric as configs/clock_regression.py. Expected result: not measured
at 150 px (bench/clocks.py). Measured at 64 px, difficulty 0.5, 10 epochs on 2 CPU cores: 110.6
min mean error (median 88), worse than plain MSE (47.0): one number cannot go round a circle, so
the network's output must jump somewhere whatever the loss, and a periodic loss adds local
minima (the smooth 1 - cos(2 pi d / 12) did worse still: 162 min). (sin, cos) outputs
(configs/clock_periodic.py) are the way to respect the wrap.

    python -m dljax.main --config=configs/clock_regression_wrap.py --workdir=/tmp/clock_wrap
    python -m dljax.main --config=configs/clock_regression_wrap.py:smoke --workdir=/tmp/smoke
"""

from configs import clock_regression
from dljax import config_lib


def get_config(arg: str | None = None):
  arg = config_lib.parse_arg(arg, smoke=False)
  return clock_regression.recipe("regression_wrap", arg.smoke).lock()

r"""Tell the time from the hands' angles: sin and cos of both, decoded with atan2 (`:cos_only`).

Experiments.md H, "common alternative (repos): (sin, cos) of angle": four linear outputs, (sin,
cos) of the hour hand's angle 2 pi (h + m/60) / 12 and of the minute hand's 2 pi m / 60, squared
error. The minute comes from the minute hand; the hour from the hour hand less the minutes it has
moved, so 2:59 stays 2:59 (the hour hand points almost at 3). No report number.

`:cos_only` is the reports' periodic variant instead (seed 004, ~6 min): two outputs,
Y_h = cos(pi h / 12) and Y_m = cos(pi m / 60) (half a period: invertible on [0, 12) and [0, 60)),
decoded by arccos. Its flaw, documented in dljax/tasks/clock.py and tested: 12 and 1 o'clock are
the closest hours in target space (the 12 <-> 1 confusion bump), and 11:59 and 0:00 lie at
opposite ends of it.

Data, model, training and metric as configs/clock_regression.py. Measured at 150 px,
difficulty 1 on one NVIDIA H200 (bench/clocks.py --epochs): 22.7 min mean error after 30 epochs
(11.5 s of training), 11.7 after 60 (23.5 s; median 1, p90 61); the config's own epochs not yet
run. Measured at 64 px, difficulty 0.5 on 2 CPU cores: periodic 16.9 min
mean error after 10 epochs, 10.2 after 15 (median 1: most errors are a whole hour, p90 60);
cos_only 58.3 after 10 (median 56).

    python -m dljax.main --config=configs/clock_periodic.py --workdir=/tmp/clock_periodic
    python -m dljax.main --config=configs/clock_periodic.py:cos_only --workdir=/tmp/clock_cos
    python -m dljax.main --config=configs/clock_periodic.py:smoke,cos_only --workdir=/tmp/smoke
"""

from configs import clock_regression
from dljax import config_lib


def get_config(arg: str | None = None):
  arg = config_lib.parse_arg(arg, smoke=False, cos_only=False)
  return clock_regression.recipe("cos_only" if arg.cos_only else "periodic", arg.smoke).lock()

"""PNG plots of a run, drawn from its metrics.jsonl (so they can be redrawn for any workdir).

The trainer draws a run's curves.png at its end, so a sweep draws one per trial (128 for the
DQN study). Drawn the plain way (pyplot, a new figure, `tight_layout`, a legend and full ticks on
every panel) a six-panel figure cost 0.85 s of CPU; here the figure for each panel count is
made once and reused (new lines in the same axes), the margins, titles and axis labels are at
fixed places rather than fitted, the panels have 4 ticks and one legend, and the PNG is
compressed fast: 0.09-0.1 s for the DQN's five panels (measured on the shared 2-core CPU).
Many figures at once (`draw_curves`) are drawn by worker processes, `python -m dljax.plots`.
"""

import functools
import os
import pickle
import subprocess
import sys
from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING

if TYPE_CHECKING:
  from matplotlib.figure import Figure

CURVE_SPLITS = ("train", "validation")
PANEL_INCHES = (4.5, 3.5)  # width, height of one panel
MARGIN_INCHES = {"left": 0.6, "right": 0.15, "bottom": 0.5, "top": 0.35, "between": 0.6}
# A worker process takes ~0.5 s to start (matplotlib's import), the time of ~5 figures: fewer
# figures than this a worker are drawn in the calling process.
FIGURES_PER_WORKER = 8
CurvesJob = tuple[list[dict], int | None, str]  # curves()'s arguments: records, steps/epoch, path


@functools.cache
def _figure(panels: int) -> "Figure":
  """A figure of `panels` empty panels side by side, made once per count (no pyplot: Agg only)."""
  # Imported here, not with the module: matplotlib costs every run ~0.3 s before its first step.
  from matplotlib.figure import Figure
  from matplotlib.ticker import MaxNLocator

  width, height = PANEL_INCHES[0] * panels, PANEL_INCHES[1]
  figure = Figure(figsize=(width, height))
  figure.subplots(1, panels, squeeze=False)
  m = MARGIN_INCHES
  panel_width = (width - m["left"] - m["right"] - m["between"] * (panels - 1)) / panels
  figure.subplots_adjust(left=m["left"] / width, right=1 - m["right"] / width,
                         bottom=m["bottom"] / height, top=1 - m["top"] / height,
                         wspace=m["between"] / panel_width)
  for axis in figure.axes:
    axis.grid(alpha=0.3)
    axis.xaxis.set_major_locator(MaxNLocator(4))
    axis.yaxis.set_major_locator(MaxNLocator(4))
    # Axis labels (and titles, `curves`) at fixed places: placed automatically, they measured
    # every tick label again at each draw (a fifth of a curves.png's time).
    axis.xaxis.set_label_coords(0.5, -0.1)
    axis.yaxis.set_label_coords(-0.1, 0.5)
  return figure


def curves(records: list[dict], steps_per_epoch: int | None, path: str) -> None:
  """One panel per metric: train and validation against epochs (against steps for a task with no
  data set, `steps_per_epoch` None)."""
  per_step = steps_per_epoch or 1
  names = sorted({key for r in records if r["split"] in CURVE_SPLITS for key in r}
                 - {"step", "split"})
  if not names:
    return
  figure = _figure(len(names))
  for axis, name in zip(figure.axes, names, strict=True):
    for line in list(axis.lines):  # the last call's
      line.remove()
    for split in CURVE_SPLITS:
      points = [(r["step"] / per_step, r[name]) for r in records
                if r["split"] == split and name in r]
      if points:
        epochs, values = zip(*points, strict=True)
        axis.plot(epochs, values, marker="o" if split == "validation" else None,
                  markersize=3, label=split, color=f"C{CURVE_SPLITS.index(split)}")
    axis.relim()
    axis.autoscale_view()
    axis.set_title(name, y=1.0)
  figure.axes[0].set_xlabel("epoch" if steps_per_epoch else "step")
  # One legend, in the first panel, for the splits of all panels.
  handles = {line.get_label(): line for axis in figure.axes for line in axis.lines}
  figure.axes[0].legend(handles=[handles[s] for s in CURVE_SPLITS if s in handles], loc="best")
  figure.savefig(path, dpi=100, pil_kwargs={"compress_level": 1})


def draw_curves(jobs: Sequence[CurvesJob]) -> Callable[[], None]:
  """Draws `curves(*job)` for every job; returns a function that waits until all are drawn.

  Many (the trials of a sweep trained together: the DQN study's 128) are drawn by worker
  processes, one per CPU, while the caller goes on (tests the trials, writes their results);
  a few are drawn here before this returns.
  """
  workers = min(len(jobs) // FIGURES_PER_WORKER, os.cpu_count() or 1)
  if workers < 2:
    for job in jobs:
      curves(*job)
    return lambda: None
  package_root = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
  env = dict(os.environ, PYTHONPATH=os.pathsep.join(
      filter(None, (package_root, os.environ.get("PYTHONPATH")))))
  processes = []
  for worker in range(workers):
    process = subprocess.Popen([sys.executable, "-m", "dljax.plots"], stdin=subprocess.PIPE,
                               env=env)
    pickle.dump(list(jobs[worker::workers]), process.stdin)
    process.stdin.close()
    processes.append(process)

  def wait() -> None:
    if failed := [p.args for p in processes if p.wait() != 0]:
      raise RuntimeError(f"drawing curves.png failed: {failed[0]} exited with an error (above)")

  return wait


if __name__ == "__main__":  # a worker of draw_curves: its jobs come pickled on stdin
  for job in pickle.load(sys.stdin.buffer):
    curves(*job)

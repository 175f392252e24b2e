"""PNG plots of a run, drawn from its metrics.jsonl (so they can be redrawn for any workdir).

The trainer draws a run's curves.png at its end, so a sweep draws one per trial (128 for the
DQN study). Drawn the plain way (pyplot, a new figure, `tight_layout`, a legend and full ticks on
every panel) a six-panel figure cost 0.85 s of CPU; here the figure for each panel count is
made once and reused (new lines in the same axes), the margins are fixed rather than fitted, and
the panels have 4 ticks and one legend: 0.25-0.33 s (measured on the shared 2-core CPU).
"""

import functools
from typing import TYPE_CHECKING

if TYPE_CHECKING:
  from matplotlib.figure import Figure

CURVE_SPLITS = ("train", "validation")
PANEL_INCHES = (4.5, 3.5)  # width, height of one panel
MARGIN_INCHES = {"left": 0.6, "right": 0.15, "bottom": 0.5, "top": 0.35, "between": 0.6}


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
    axis.set_title(name)
  figure.axes[0].set_xlabel("epoch" if steps_per_epoch else "step")
  # One legend, in the first panel, for the splits of all panels.
  handles = {line.get_label(): line for axis in figure.axes for line in axis.lines}
  figure.axes[0].legend(handles=[handles[s] for s in CURVE_SPLITS if s in handles], loc="best")
  figure.savefig(path, dpi=100)

"""PNG plots of a run, drawn from its metrics.jsonl (so they can be redrawn for any workdir)."""

import matplotlib

matplotlib.use("Agg")  # files only: runs on machines with no display
import matplotlib.pyplot as plt

CURVE_SPLITS = ("train", "validation")


def curves(records: list[dict], steps_per_epoch: int | None, path: str) -> None:
  """One panel per metric: train and validation against epochs (against steps for a task with no
  data set, `steps_per_epoch` None)."""
  per_step = steps_per_epoch or 1
  names = sorted({key for r in records if r["split"] in CURVE_SPLITS for key in r}
                 - {"step", "split"})
  if not names:
    return
  figure, axes = plt.subplots(1, len(names), figsize=(4.5 * len(names), 3.5), squeeze=False)
  for axis, name in zip(axes[0], names, strict=True):
    for split in CURVE_SPLITS:
      points = [(r["step"] / per_step, r[name]) for r in records
                if r["split"] == split and name in r]
      if points:
        epochs, values = zip(*points, strict=True)
        axis.plot(epochs, values, marker="o" if split == "validation" else None,
                  markersize=3, label=split)
    axis.set_xlabel("epoch" if steps_per_epoch else "step")
    axis.set_title(name)
    axis.grid(alpha=0.3)
    axis.legend()
  figure.tight_layout()
  figure.savefig(path, dpi=100)
  plt.close(figure)

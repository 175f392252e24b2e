r"""The clock study's table: every label encoding trained on the same rendered clocks.

    python bench/clocks.py > clocks.json                     # 150 px: a GPU's work
    python bench/clocks.py --size 64 --difficulty 0.5 --epochs 15   # a table on a CPU
    python bench/clocks.py --variants periodic,multihead --size 64

Each variant is its config file (configs/clock_*.py; classification once per class count of
`configs.clock_classification.sweep_classes()`), trained by `dljax.train.run` in its own
workdir under --workdir on --num_examples clocks (default 18,000: the course data set's size)
rendered at --size px: 10% of train held out for validation (early stopping and the best
checkpoint), the last 20% held-out test.
Prints one JSON object: the machine, the settings, and per variant the test mean / median / 90th
percentile common-sense error in minutes, epochs, train seconds, and the reports' numbers for
the same encoding (experiments.md section H) with whether the variant beats the best of them.
Progress goes to stderr. Running again on the same --workdir resumes (or just re-tests) each
variant.

`--held_out dial=ellipse,hands=lance` (families of clock_render.STYLE_FAMILIES) trains on clocks
of none of those styles and adds, per variant, `held_out_styles`: the mean / median / p90 error
on as many clocks of the held-out styles (the data set's `test_styles` split, a second test
split of the same run: `data.extra_tests`, results.json's "test_styles", its histogram and worst
predictions in the variant's WORKDIR/test_styles/) and its ratio to the in-distribution mean;
error_by_style.png there splits both test splits' errors by style family.

Measured with jaxlib 0.10.2 on the shared 2-core x86_64 CPU (load average 1-4; 53 min for the
table), `--size 64 --difficulty 0.5 --epochs 10`; test error in minutes and the reports' numbers:

    variant              mean  median  p90   train s  reports (experiments.md H)
    regression           47.0    31    105     207    11.48 (002 MSE), 14.26, 42.3
    regression_wrap     110.6    88    247     208    ~19 (004)
    classification_24    13.5     8     15     300    23.94 (002), 37.2   beaten
    classification_48    10.8     4      8     207    47.29 (002)         beaten
    classification_72    11.0     3      6     194    57.1 (003)          beaten
    classification_96    12.9     2      5     281    10.12 (002)
    classification_192   20.0     1     61     253    6.14 (002)
    classification_360   27.8     1    110     210    181.36 (002)        beaten
    classification_720  179.3   178    323     251    179.61 (002)        (both at chance)
    multihead            13.0     5     23     341    ~5 (004), 51.8
    periodic             16.9     1     61     287    (none)
    cos_only             58.3    56    129     218    ~6 (004)

Ten epochs at 64 px are far from the reports' 100 epochs at 150 px: the goal (best <= 2 min,
every variant better than its report) is for the default 150 px run on an accelerator. Most
remaining errors are whole hours (the hour hand read one hour off).

At 150 px, difficulty 1, on one NVIDIA H200 (jax 0.11.2; ~400 steps/s, so an epoch of 202 steps
takes half a second): periodic 22.7 min mean after 30 epochs (11.5 s of training) and 11.7 min
(median 1, p90 61) after 60 (23.5 s); multihead 13.9 min after 60 (27 s); classification with 48
and 192 classes did not learn at all in 30 and 60 epochs (train loss stayed at ln N, error at
chance, ~182 min). The full table was not run there. Difficulty, not size: at 64 px and
difficulty 1 on the CPU, classification_48 also stayed at chance for 8 epochs (test 178 min),
where at difficulty 0.5 it learns (table above). configs/clock_classification.py now warms the
learning rate up and uses soft targets, which takes it off chance at difficulty 1 (its
docstring); the classification rows above were measured before.
"""

import argparse
import contextlib
import json
import os
import platform
import sys
import time

import jax
import ml_collections
import numpy as np

from configs import clock_classification
from dljax import config_lib, inference, train
from dljax.data import clock_render, clocks, tfds_io
from dljax.tasks import clock

# variant -> config file[:arg]
VARIANTS = {
    "regression": "configs/clock_regression.py",
    "regression_wrap": "configs/clock_regression_wrap.py",
    **{f"classification_{trial['config_arg'].removeprefix('classes=')}":
       f"configs/clock_classification.py:{trial['config_arg']}"
       for trial in clock_classification.sweep_classes()},
    "multihead": "configs/clock_multihead.py",
    "periodic": "configs/clock_periodic.py",
    "cos_only": "configs/clock_periodic.py:cos_only",
}

# variant -> the reports' common-sense errors in minutes (experiments.md section H; hours x 60).
REPORTS = {
    "regression": {"002 (MSE)": 11.48, "002 (MAE)": 14.26, "003": 42.32},
    "regression_wrap": {"004 (common-sense loss)": 19.0},
    "classification_24": {"002": 23.94, "003": 37.24},
    "classification_48": {"002": 47.29},
    "classification_72": {"003": 57.10},
    "classification_96": {"002": 10.12},
    "classification_192": {"002": 6.14},
    "classification_360": {"002": 181.36},
    "classification_720": {"002": 179.61, "003": 181.85},
    "multihead": {"004": 5.0, "003": 51.80},
    "periodic": {},  # (sin, cos) of the hands' angles: the repos' alternative, no number
    "cos_only": {"004": 6.0},
}


def run_variant(name: str, args: argparse.Namespace) -> dict:
  config = config_lib.load(VARIANTS[name])
  overrides = {"data.clocks.size": args.size, "data.clocks.num_examples": args.num_examples,
               "data.clocks.difficulty": args.difficulty}
  if args.data_dir:
    overrides["data.dir"] = args.data_dir
  if args.epochs:
    overrides["num_epochs"] = args.epochs
  if args.held_out:
    overrides["data.clocks.held_out"] = tuple(args.held_out.split(","))
    overrides["data.extra_tests"] = ("test_styles",)
  for key, value in overrides.items():
    config_lib.override(config, key, value)
  start = time.perf_counter()
  workdir = os.path.join(args.workdir, name)
  # TFDS prints its progress to stdout while it renders the clocks on first use: keep stdout for
  # the JSON table alone.
  with contextlib.redirect_stdout(sys.stderr):
    results = train.run(config, workdir)
    held_out = held_out_styles(config, workdir, results) if args.held_out else None
  test, reports = results["test"], REPORTS[name]
  return {
      "variant": name,
      "config": VARIANTS[name],
      "mean_error_minutes": test["error_minutes"],
      "median_error_minutes": test["error_minutes_median"],
      "p90_error_minutes": test["error_minutes_p90"],
      "held_out_styles": held_out,
      "epochs": results["epochs"],
      "stopped_early": results["stopped_early"],
      "train_seconds": results["train_seconds"],
      "wall_seconds": time.perf_counter() - start,
      "parameters": results["parameters"],
      "reports_minutes": reports,
      "beats_reports": test["error_minutes"] < min(reports.values()) if reports else None,
  }


def held_out_styles(config: ml_collections.ConfigDict, workdir: str, results: dict) -> dict:
  """The run's error on its held-out styles (its results' "test_styles") and its ratio to the
  in-distribution error, and WORKDIR/error_by_style.png: both test splits' errors split by style
  family."""
  metrics = results["test_styles"]
  run = inference.load(workdir)
  options = config.data.clocks
  error_N, families = [], {family: [] for family in clock_render.STYLE_FAMILIES}
  for split in clocks.TEST_SPLITS:
    error_N.append(_errors(run, clocks.prepared(options, config.data.dir or None)
                           .as_data_source(split=split)))
    style = clocks.split_styles(options, split)
    for family, values in families.items():
      values.append(clock_render.family_values(style, family))
  path = os.path.join(workdir, "error_by_style.png")
  clock.plot_errors_by_style(np.concatenate(error_N),
                             {family: np.concatenate(v) for family, v in families.items()},
                             clocks.parse_held_out(options.held_out), path)
  return {"mean_error_minutes": metrics["error_minutes"],
          "median_error_minutes": metrics["error_minutes_median"],
          "p90_error_minutes": metrics["error_minutes_p90"],
          # The goal: within 1.5x of the in-distribution error.
          "over_in_distribution": metrics["error_minutes"] / results["test"]["error_minutes"],
          "examples": len(error_N[1]), "error_by_style_png": path}


def _errors(run: inference.TrainedRun, source, batch_size: int = 256) -> np.ndarray:
  """The common-sense error in minutes of `run` on every example of a clocks data source."""
  errors = []
  for start in range(0, len(source), batch_size):
    batch = tfds_io.read(source, list(range(start, min(start + batch_size, len(source)))))
    predicted_B = run.predict(batch["image"])["predicted_minutes"]
    errors.append(np.asarray(clock.common_sense_minutes(
        predicted_B, clock.time_minutes(batch["hour"], batch["minute"]))))
  return np.concatenate(errors)


def main() -> None:
  parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
  parser.add_argument("--variants", default=",".join(VARIANTS), help="comma-separated")
  parser.add_argument("--size", type=int, default=150, help="image size in pixels")
  parser.add_argument("--num_examples", type=int, default=18_000, help="train + test clocks")
  parser.add_argument("--difficulty", type=float, default=1.0,
                      help="0 = one clean clock style, 1 = the full variety")
  parser.add_argument("--epochs", type=float, default=0.0, help="0 = each config's own")
  parser.add_argument("--held_out", default="",
                      help="style families never trained on, scored as a second test split, "
                           "e.g. dial=ellipse,hands=lance (clock_render.STYLE_FAMILIES)")
  parser.add_argument("--workdir", default="runs/clock_bench")
  parser.add_argument("--data_dir", default="", help="TFDS data dir (default: dljax's)")
  args = parser.parse_args()
  names = args.variants.split(",")
  unknown = sorted(set(names) - set(VARIANTS))
  if unknown:
    parser.error(f"unknown variants {', '.join(unknown)}; allowed: {', '.join(VARIANTS)}")
  device = jax.devices()[0]
  table = {
      "machine": {"processor": platform.processor() or platform.machine(),
                  "cpu_cores": os.cpu_count(), "platform": device.platform,
                  "device": device.device_kind, "device_count": jax.device_count(),
                  "load_average_at_start": os.getloadavg()},
      "settings": {"size": args.size, "num_examples": args.num_examples,
                   "difficulty": args.difficulty, "held_out": args.held_out,
                   "epochs": args.epochs or "each config's own"},
      "variants": [],
  }
  start = time.perf_counter()
  for name in names:
    print(f"--- {name}", file=sys.stderr)
    table["variants"].append(run_variant(name, args))
  table["wall_seconds"] = time.perf_counter() - start
  table["machine"]["load_average_at_end"] = os.getloadavg()
  best = min(table["variants"], key=lambda row: row["mean_error_minutes"])
  table["best"] = {"variant": best["variant"], "mean_error_minutes": best["mean_error_minutes"]}
  print(json.dumps(table, indent=2))


if __name__ == "__main__":
  main()

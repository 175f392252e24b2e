"""Compares runs: `python -m dljax.report SWEEP_DIR`, or `python -m dljax.report DIR... --out OUT`
for a list of run workdirs, or of sweep dirs (a study: one table per sweep).

Writes, into the sweep dir (or --out):
  report.md    the trials ranked by their best validation metric (in its mode, min or max), or
               with `--rank_by=NAME:MODE` by another validation metric at that best step, with
               its epoch, the test metrics, train seconds and parameters;
  report.csv   the same rows, for a spreadsheet; report.json the same rows, for code;
  curves.png   the validation curves of every finished trial overlaid, one panel per metric.

A sweep dir's trials are its subdirectories with a config.json or results.json, and the trials
its sweep.json (written by `python -m launch.sweep`) lists. Trials without results.json are
listed as unfinished (or not started), below the ranked ones, never dropped.
"""

import argparse
import csv
import json
import os
import sys
from typing import Any

import matplotlib

matplotlib.use("Agg")  # files only: runs on machines with no display
import matplotlib.pyplot as plt

from dljax import writers

SWEEP_FILE = "sweep.json"
RESULTS_FILE = "results.json"
OUTPUTS = ("report.md", "report.csv", "report.json", "curves.png")
DONE, UNFINISHED, NOT_STARTED = "done", "unfinished", "not started"
# What the report reads of results.json and sweep.json.
RESULTS_KEYS = ("best_validation", "test", "train_seconds", "parameters", "steps", "epochs")
SWEEP_KEYS = ("config", "sweep", "trials")


def read_json(path: str, *keys: str) -> dict[str, Any]:
  """The JSON object in `path`; raises a one-line ValueError naming the file if it is not
  valid JSON (e.g. garbled, or cut short by a full disk) or lacks one of `keys`."""
  try:
    with open(path) as f:
      value = json.load(f)
  except ValueError as error:  # UnicodeDecodeError included
    raise ValueError(f"{path}: not valid JSON ({error})") from None
  if not isinstance(value, dict):
    raise ValueError(f"{path}: holds a {type(value).__name__}, not a JSON object")
  if missing := [key for key in keys if key not in value]:
    raise ValueError(f"{path}: has no {missing[0]!r}")
  return value


def is_sweep_dir(path: str) -> bool:
  """A sweep dir holds runs; a run's own workdir holds config.json or results.json."""
  return not any(os.path.exists(os.path.join(path, name)) for name in ("config.json",
                                                                        RESULTS_FILE))


def sweep_trials(sweep_dir: str) -> dict[str, dict[str, Any] | None]:
  """The sweep's workdirs and their overrides (None where sweep.json does not list them)."""
  listed = {}
  if os.path.exists(os.path.join(sweep_dir, SWEEP_FILE)):
    listed = {t["name"]: t["overrides"]
              for t in read_json(os.path.join(sweep_dir, SWEEP_FILE), *SWEEP_KEYS)["trials"]}
  started = sorted(name for name in os.listdir(sweep_dir)
                   if name not in listed and not is_sweep_dir(os.path.join(sweep_dir, name))
                   and os.path.isdir(os.path.join(sweep_dir, name)))
  return {os.path.join(sweep_dir, name): overrides
          for name, overrides in [*listed.items(), *((name, None) for name in started)]}


def row(workdir: str, overrides: dict[str, Any] | None = None) -> dict[str, Any]:
  """One trial's line of the report, flat: what results.json (or metrics.jsonl) says."""
  base = {"rank": None, "trial": os.path.basename(os.path.normpath(workdir))}
  tail = {"overrides": overrides, "workdir": workdir}
  results_path = os.path.join(workdir, RESULTS_FILE)
  if not os.path.exists(results_path):
    records = writers.read_metrics(workdir)
    started = os.path.exists(os.path.join(workdir, "config.json"))
    return {**base, "status": UNFINISHED if started else NOT_STARTED,
            "steps": records[-1]["step"] if records else None, **tail}
  results = read_json(results_path, *RESULTS_KEYS)
  best = results["best_validation"] or {}
  return {**base, "status": DONE, "metric": best.get("metric"), "mode": best.get("mode"),
          "best_validation": best.get("value"), "best_epoch": best.get("epoch"),
          "best_metrics": best.get("metrics") or {},
          **{f"test_{name}": value for name, value in sorted(results["test"].items())},
          "train_seconds": results["train_seconds"],
          "trials_together": results.get("trials_together", 1), "parameters": results["parameters"],
          "steps": results["steps"], "epochs": results["epochs"], **tail}


def rank(rows: list[dict[str, Any]], by: tuple[str, str] | None = None) -> list[dict[str, Any]]:
  """Finished trials best first by their validation metric's mode, then the others as they came.

  `by` = (name, mode) ranks by validation metric `name` at each trial's best step instead: e.g.
  by accuracy where the trials stopped early on losses of different kinds. Raises ValueError if
  the finished trials track different metrics or modes: there is no one order then.
  """
  # "ranked_by" heads the table's value column: "loss (best, min)", or ranked by accuracy at
  # the best loss's step, "accuracy at the best loss (max)".
  if by is None:
    rows = [{**r, "ranked_by": f"{r['metric']} (best, {r['mode']})"} if r["status"] == DONE
            else r for r in rows]
  else:
    name, mode = by
    rows = [{**r, "ranked_by": f"{name} at the best {r['metric']} ({mode})",
             "metric": name, "mode": mode, "best_validation": r["best_metrics"].get(name)}
            if r["status"] == DONE else r for r in rows]
  is_ranked = lambda r: r["status"] == DONE and r["best_validation"] is not None
  criteria = sorted({(r["metric"], r["mode"]) for r in rows if is_ranked(r)})
  if len(criteria) > 1:
    raise ValueError("the trials track different validation metrics: "
                     f"{', '.join(f'{m} ({mode})' for m, mode in criteria)}; report them apart")
  ranked = sorted(filter(is_ranked, rows), key=lambda r: r["best_validation"],
                  reverse=bool(criteria) and criteria[0][1] == "max")
  rest = [r for r in rows if not is_ranked(r)]
  return [{**r, "rank": index + 1} for index, r in enumerate(ranked)] + rest


def _cell(value: Any, digits: int = 4) -> str:
  if value is None:
    return ""
  if isinstance(value, float):
    return f"{value:.{digits}f}"
  return f"{value:,}" if isinstance(value, int) else str(value)


def markdown(rows: list[dict[str, Any]], title: str) -> str:
  """The ranked table; unfinished trials show their status and last logged step instead."""
  done = [r for r in rows if r["status"] == DONE]
  tests = sorted({key for r in done for key in r if key.startswith("test_")})
  metric = next((r["ranked_by"] for r in done if r["metric"]), "metric")
  header = ["#", "trial", f"validation {metric}", "epoch",
            *(key.replace("_", " ", 1) for key in tests), "train s", "parameters"]
  lines = [f"# {title}", "", "| " + " | ".join(header) + " |",
           "|" + "---|" * len(header)]
  for r in rows:
    if r["status"] == DONE:
      cells = [_cell(r["rank"]) or "-", r["trial"], _cell(r["best_validation"]),
               _cell(r["best_epoch"], 1), *(_cell(r.get(key)) for key in tests),
               _cell(r["train_seconds"], 1) + (f" ({r['trials_together']} together)"
                                               if r["trials_together"] > 1 else ""),
               _cell(r["parameters"])]
    else:
      steps = f" (step {r['steps']})" if r["steps"] is not None else ""
      cells = ["-", r["trial"], f"{r['status']}{steps}", *[""] * (len(header) - 3)]
    lines.append("| " + " | ".join(cells) + " |")
  unfinished = len(rows) - len(done)
  lines += ["", f"{len(done)} of {len(rows)} trials finished"
            + (f"; {unfinished} unfinished or not started." if unfinished else ".")]
  if any(r.get("trials_together", 1) > 1 for r in done):
    lines.append("Trials trained together (vmapped in one process) share their train seconds.")
  return "\n".join(lines) + "\n"


def write_csv(rows: list[dict[str, Any]], path: str) -> None:
  columns = list(dict.fromkeys(key for r in rows for key in r))
  with open(path, "w", newline="") as f:
    writer = csv.DictWriter(f, columns)
    writer.writeheader()
    for r in rows:
      writer.writerow({**r, "overrides": "" if r["overrides"] is None else json.dumps(
          r["overrides"])})


def overlay_curves(rows: list[dict[str, Any]], path: str) -> bool:
  """One panel per validation metric, one line per finished trial, against epochs.

  Returns whether there was anything to draw; if not, a stale plot at `path` is removed.
  """
  curves = {}  # trial -> validation records
  for r in rows:
    if r["status"] == DONE and r["epochs"]:
      steps_per_epoch = r["steps"] / r["epochs"]
      curves[r["trial"]] = [{**record, "epoch": record["step"] / steps_per_epoch}
                            for record in writers.read_metrics(r["workdir"])
                            if record["split"] == "validation"]
  names = sorted({key for records in curves.values() for record in records for key in record}
                 - {"step", "split", "epoch"})
  if not names:
    if os.path.exists(path):
      os.remove(path)
    return False
  # The legend, one trial a line, goes below the panels: the figure grows by a line per trial.
  figure, axes = plt.subplots(1, len(names), figsize=(4.5 * len(names), 3.5 + 0.2 * len(curves)),
                              squeeze=False, layout="constrained")
  for axis, name in zip(axes[0], names, strict=True):
    for trial, records in curves.items():
      points = [(record["epoch"], record[name]) for record in records if name in record]
      if points:
        axis.plot(*zip(*points, strict=True), marker="o", markersize=3, label=trial)
    axis.set_xlabel("epoch")
    axis.set_title(f"validation {name}")
    axis.grid(alpha=0.3)
  handles, labels = axes[0][0].get_legend_handles_labels()
  figure.legend(handles, labels, loc="outside lower center", fontsize="small")
  figure.savefig(path, dpi=100, bbox_inches="tight")  # "tight": long trial names stay whole
  plt.close(figure)
  return True


def write(rows: list[dict[str, Any]], out_dir: str, title: str,
          by: tuple[str, str] | None = None) -> list[str]:
  """Ranks `rows` (`by`: as `rank`), writes report.md, .csv, .json and curves.png into
  `out_dir`; returns the paths. curves.png is left out when no trial has finished.
  """
  rows = rank(rows, by)
  md, csv_path, json_path, png = (os.path.join(out_dir, name) for name in OUTPUTS)
  os.makedirs(out_dir, exist_ok=True)
  with open(md, "w") as f:
    f.write(markdown(rows, title))
  write_csv(rows, csv_path)
  with open(json_path, "w") as f:
    json.dump(rows, f, indent=2)
  return [md, csv_path, json_path, *([png] if overlay_curves(rows, png) else [])]


def _sweep_rows(sweep_dir: str) -> tuple[list[dict[str, Any]], str]:
  """A sweep dir's rows and its title."""
  rows = [row(workdir, overrides) for workdir, overrides in sweep_trials(sweep_dir).items()]
  title = f"Sweep {sweep_dir}"
  if os.path.exists(os.path.join(sweep_dir, SWEEP_FILE)):
    sweep = read_json(os.path.join(sweep_dir, SWEEP_FILE), *SWEEP_KEYS)
    title = f"Sweep {sweep['sweep']} of {sweep['config']} ({sweep_dir})"
  return rows, title


def write_sweep(sweep_dir: str, out_dir: str | None = None,
                by: tuple[str, str] | None = None) -> list[str]:
  """Writes the report of a sweep dir into it (or `out_dir`); returns the paths written."""
  rows, title = _sweep_rows(sweep_dir)
  return write(rows, out_dir or sweep_dir, title, by)


def write_study(sweep_dirs: list[str], out_dir: str,
                by: tuple[str, str] | None = None) -> list[str]:
  """A study's report in `out_dir`: report.md with each sweep's ranked table, one after the
  other (each sweep dir keeps its own curves.png); report.json and .csv with every row and its
  sweep dir. Returns the paths written."""
  tables, all_rows = [], []
  for sweep_dir in sweep_dirs:
    rows, title = _sweep_rows(sweep_dir)
    rows = rank(rows, by)
    tables.append(markdown(rows, title).replace("# ", "## ", 1))
    all_rows += [{"sweep": sweep_dir, **r} for r in rows]
  md, csv_path, json_path = (os.path.join(out_dir, name) for name in OUTPUTS[:3])
  os.makedirs(out_dir, exist_ok=True)
  with open(md, "w") as f:
    f.write(f"# Study {', '.join(sweep_dirs)}\n\n" + "\n".join(tables))
  write_csv(all_rows, csv_path)
  with open(json_path, "w") as f:
    json.dump(all_rows, f, indent=2)
  return [md, csv_path, json_path]


def main(argv: list[str] | None = None) -> int:
  """Reports a sweep dir or a list of workdirs (default: sys.argv[1:]); returns the exit status."""
  parser = argparse.ArgumentParser(prog="python -m dljax.report", description=__doc__,
                                   formatter_class=argparse.RawDescriptionHelpFormatter)
  parser.add_argument("dirs", nargs="+", metavar="DIR",
                      help="a sweep dir, or run workdirs, or sweep dirs")
  parser.add_argument("--out", help="where to write the report (default: the sweep dir)")
  parser.add_argument("--rank_by", metavar="NAME:MODE",
                      help="rank by validation metric NAME (at each trial's best step), MODE "
                      "max or min, e.g. accuracy:max (default: the early-stopping metric)")
  args = parser.parse_args(argv)
  try:
    by = None
    if args.rank_by:
      name, _, mode = args.rank_by.partition(":")
      if mode not in ("max", "min"):
        raise ValueError(f"--rank_by={args.rank_by}: needs NAME:max or NAME:min")
      by = (name, mode)
    if missing := [d for d in args.dirs if not os.path.isdir(d)]:
      raise ValueError(f"{missing[0]}: not a directory")
    if len(args.dirs) == 1 and is_sweep_dir(args.dirs[0]):
      paths = write_sweep(args.dirs[0], args.out, by)
    elif args.out is None:
      raise ValueError("--out is needed for a list of dirs (a sweep dir is its own)")
    elif all(map(is_sweep_dir, args.dirs)):
      paths = write_study(args.dirs, args.out, by)
    else:
      paths = write([row(d) for d in args.dirs], args.out, f"Runs {', '.join(args.dirs)}", by)
  except ValueError as error:
    print(f"{parser.prog}: error: {error}", file=sys.stderr)
    return 2
  print(f"wrote {', '.join(paths)}")
  return 0


if __name__ == "__main__":
  sys.exit(main())

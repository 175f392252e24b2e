r"""One sweep launched twice, its trials trained together (`--vmap`) and one by one: the time each
way and how far the two sets of results are apart.

    python bench/vmap_sweep.py > vmap_sweep.json            # leiden_mlp dropout on MNIST, 30 epochs
    python bench/vmap_sweep.py --config=configs/mnist_mlp.py --sweep=dropout \
        --override=num_epochs=5

Runs `python -m launch.sweep` on --workdir/vmap and --workdir/one_by_one (existing trials there
are skipped, so a second call only re-reads them) and prints one JSON object: the machine, the
settings, per way the wall seconds of the launcher and the sum of the trials' train seconds,
and per trial the test metrics both ways and their largest difference. Progress goes to stderr.

Measured on the shared 2-core x86_64 CPU with the defaults (real MNIST, 4 dropout rates, 30
epochs of 1,718 steps at batch 32): trained together 216 s wall, 186 s of training; one by one
255 s wall, 193 s of training (44-61 s a trial); test accuracies within 0.0005 of each other
(float rounding, reordered by the vmapped matrix products, grows over 51,540 steps). The
Géron MLP at batch 32 keeps both cores busy (about 0.9 ms a step), so on a CPU vmap saves each
trial's process start-up, compile and evaluation passes, not arithmetic; its gain is for
accelerators that one small model leaves idle.
"""

import argparse
import json
import os
import platform
import subprocess
import sys
import tempfile
import time

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def launch(args: argparse.Namespace, workdir: str, vmap: bool) -> float:
  """Runs the sweep into `workdir`; returns the launcher's wall seconds."""
  command = [sys.executable, "-m", "launch.sweep", f"--config={args.config}",
             f"--sweep={args.sweep}", f"--workdir={workdir}",
             *(f"--config.{item}" for item in args.override), *(["--vmap"] if vmap else [])]
  start = time.perf_counter()
  subprocess.run(command, check=True, cwd=REPO, stdout=sys.stderr)
  return time.perf_counter() - start


def results(workdir: str) -> dict[str, dict]:
  with open(os.path.join(workdir, "sweep.json")) as f:
    names = [trial["name"] for trial in json.load(f)["trials"]]
  found = {}
  for name in names:
    with open(os.path.join(workdir, name, "results.json")) as f:
      found[name] = json.load(f)
  return found


def main() -> None:
  parser = argparse.ArgumentParser(description=__doc__,
                                   formatter_class=argparse.RawDescriptionHelpFormatter)
  parser.add_argument("--config", default="configs/leiden_mlp.py:data=mnist")
  parser.add_argument("--sweep", default="dropout")
  parser.add_argument("--override", action="append", default=[], metavar="KEY=VALUE",
                      help="a sweep-wide --config.KEY=VALUE (repeatable)")
  parser.add_argument("--workdir", default=os.path.join(tempfile.gettempdir(), "vmap_sweep"))
  args = parser.parse_args()

  ways = {}
  for way, vmap in (("together", True), ("one_by_one", False)):
    workdir = os.path.join(args.workdir, way)
    wall = launch(args, workdir, vmap)
    ways[way] = {"wall_seconds": wall, "results": results(workdir)}
  together, alone = ways["together"]["results"], ways["one_by_one"]["results"]
  # Trials trained together share their train seconds; trials one by one add theirs up.
  train_seconds = {"together": max(r["train_seconds"] for r in together.values()),
                   "one_by_one": sum(r["train_seconds"] for r in alone.values())}
  print(json.dumps({
      "machine": {"cpu_count": os.cpu_count(), "platform": platform.platform()},
      "settings": vars(args),
      **{way: {"wall_seconds": round(ways[way]["wall_seconds"], 1),
               "train_seconds": round(train_seconds[way], 1)} for way in ways},
      "trials": {name: {"together": together[name]["test"], "one_by_one": alone[name]["test"],
                        "largest_difference": max(abs(together[name]["test"][metric] - value)
                                                  for metric, value in alone[name]["test"].items())}
                 for name in alone},
  }, indent=2))


if __name__ == "__main__":
  main()

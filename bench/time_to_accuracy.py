r"""Time to accuracy, cold: from the command to the first evaluation at the target, as a user waits.

    python -m dljax.data prepare mnist --from ../shared/data/mnist     # once: data prepared
    python bench/time_to_accuracy.py > time_to_accuracy.json
    python bench/time_to_accuracy.py --frameworks=dljax,keras --repeats=3
    python bench/time_to_accuracy.py --config=configs/cifar10_speedrun.py --target=0.94

Each repeat starts `python -m dljax.main --config=CONFIG --workdir=NEW` in a fresh process (imports,
data loading, compilation and the trainer's start-up all included) and reads, from the run's
TensorBoard events, the wall time of the first validation evaluation whose metric reached the
target; the config stops there (`early_stopping.target`). The command's whole wall time (test
evaluation and files included) and results.json's split of it (`startup_seconds`: the command to
its first train step; `compile_seconds`; `train_seconds`) are reported beside it. Cold runs
compile from scratch (an empty compilation cache each); one more run then reuses the last one's
cache (`warm`: every later run of a config, and every sweep trial, starts so). The data set is
prepared and read once before timing, which keeps its decoded copy (as any first run does).

`keras` runs the keras-team MNIST MLP (the recipe `configs/mnist_mlp.py` reproduces: Dense512,
Dropout .2, Dense512, Dropout .2, RMSprop 1e-3, batch 128) with Keras 3 on its JAX backend, in a
fresh process too, from the MNIST IDX files (`--mnist_dir`), one epoch at a time, stopping at
the first epoch whose test accuracy reaches the target: the figure a Keras user feels.

Prints one JSON object; progress goes to stderr. Run on a quiet machine.
"""

import argparse
import glob
import gzip
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from typing import Any

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
if __package__ in (None, ""):  # run as `python bench/time_to_accuracy.py`
  sys.path.insert(0, REPO)

from bench.throughput import machine_info  # noqa: E402

RESULT_PREFIX = "TIME_TO_ACCURACY "


def validation_times(workdir: str, metric: str) -> list[tuple[int, float, float]]:
  """(step, wall time, value) of every validation evaluation of `metric` the run logged."""
  from tensorboard.backend.event_processing import event_file_loader

  events = []
  for path in glob.glob(os.path.join(workdir, "tensorboard", "*")):
    for event in event_file_loader.EventFileLoader(path).Load():
      for value in event.summary.value:
        if value.tag == f"validation/{metric}":
          events.append((event.step, event.wall_time, _scalar(value)))
  return sorted(events)


def _scalar(value) -> float:
  from tensorboard.util import tensor_util

  if value.HasField("tensor"):
    return float(tensor_util.make_ndarray(value.tensor))
  return float(value.simple_value)


def reached(value: float, target: float, mode: str) -> bool:
  return value >= target if mode == "max" else value <= target


def run_dljax(config: str, target: float, data_dir: str | None,
              compilation_cache: str) -> dict[str, Any]:
  """One run of `python -m dljax.main` with `compilation_cache` as JAX's persistent compilation
  cache: seconds to the target and the run's own split of its time."""
  from dljax import config_lib

  recipe = config_lib.load(os.path.join(REPO, config))
  metric, mode = recipe.early_stopping.metric, recipe.early_stopping.mode
  with tempfile.TemporaryDirectory() as workdir:
    command = [sys.executable, "-m", "dljax.main", f"--config={config}", f"--workdir={workdir}",
               f"--config.early_stopping.target={target}"]
    env = dict(os.environ, JAX_COMPILATION_CACHE_DIR=compilation_cache,
               **({"DLJAX_DATA_DIR": data_dir} if data_dir else {}))
    start = time.time()
    process = subprocess.run(command, cwd=REPO, env=env, capture_output=True, text=True)
    command_seconds = time.time() - start
    if process.returncode != 0:
      return {"error": f"exit code {process.returncode}",
              "stderr_tail": process.stderr.strip().splitlines()[-10:]}
    evaluations = validation_times(workdir, metric)
    with open(os.path.join(workdir, "results.json")) as f:
      results = json.load(f)
  hit = next(((step, wall, value) for step, wall, value in evaluations
              if reached(value, target, mode)), None)
  return {
      "reached": hit is not None,
      "seconds_to_target": hit[1] - start if hit else None,
      "step": hit[0] if hit else None,
      "epochs": results["epochs"],
      f"validation_{metric}": hit[2] if hit else evaluations[-1][2],
      "test": results["test"],
      "command_seconds": command_seconds,
      **{key: results[key] for key in ("startup_seconds", "compile_seconds", "train_seconds",
                                       "examples_per_second")},
  }


def _read_idx(path: str):
  import numpy as np

  with gzip.open(path, "rb") as f:
    data = f.read()
  dims = data[3]
  shape = [int.from_bytes(data[4 + 4 * i: 8 + 4 * i], "big") for i in range(dims)]
  return np.frombuffer(data, np.uint8, offset=4 + 4 * dims).reshape(shape)


def keras_child(mnist_dir: str, target: float, max_epochs: int) -> dict[str, Any]:
  """In a fresh process: the keras-team MLP, one epoch at a time until the test accuracy
  reaches `target`. Returns wall clock times (time.time()) for the parent to subtract."""
  os.environ.setdefault("KERAS_BACKEND", "jax")
  import keras

  x_train, y_train, x_test, y_test = (
      _read_idx(os.path.join(mnist_dir, f"{name}-idx{dims}-ubyte.gz"))
      for name, dims in (("train-images", 3), ("train-labels", 1), ("t10k-images", 3),
                         ("t10k-labels", 1)))
  x_train = x_train.reshape(-1, 784).astype("float32") / 255
  x_test = x_test.reshape(-1, 784).astype("float32") / 255
  keras.utils.set_random_seed(0)
  model = keras.Sequential([
      keras.Input((784,)), keras.layers.Dense(512, activation="relu"), keras.layers.Dropout(0.2),
      keras.layers.Dense(512, activation="relu"), keras.layers.Dropout(0.2),
      keras.layers.Dense(10, activation="softmax")])
  model.compile(loss="sparse_categorical_crossentropy", optimizer=keras.optimizers.RMSprop(),
                metrics=["accuracy"])
  accuracy = 0.0
  for epoch in range(1, max_epochs + 1):
    model.fit(x_train, y_train, batch_size=128, epochs=1, verbose=0)
    accuracy = float(model.evaluate(x_test, y_test, verbose=0)[1])
    if accuracy >= target:
      return {"reached": True, "at": time.time(), "epochs": epoch, "test_accuracy": accuracy,
              "keras": keras.__version__, "backend": keras.backend.backend()}
  return {"reached": False, "at": time.time(), "epochs": max_epochs, "test_accuracy": accuracy}


def run_keras(mnist_dir: str, target: float, max_epochs: int) -> dict[str, Any]:
  """One cold Keras run in a subprocess; seconds from its command to the target."""
  command = [sys.executable, "-m", "bench.time_to_accuracy", "--child=keras",
             f"--mnist_dir={mnist_dir}", f"--target={target}", f"--max_epochs={max_epochs}"]
  env = dict(os.environ, KERAS_BACKEND="jax", JAX_PLATFORMS="cpu")
  start = time.time()
  process = subprocess.run(command, cwd=REPO, env=env, capture_output=True, text=True)
  command_seconds = time.time() - start
  lines = [line for line in process.stdout.splitlines() if line.startswith(RESULT_PREFIX)]
  if process.returncode != 0 or not lines:
    return {"error": f"exit code {process.returncode}",
            "stderr_tail": process.stderr.strip().splitlines()[-10:]}
  child = json.loads(lines[-1].removeprefix(RESULT_PREFIX))
  at = child.pop("at")
  return {**child, "seconds_to_target": at - start if child["reached"] else None,
          "command_seconds": command_seconds}


def summary(runs: list[dict[str, Any]]) -> dict[str, Any]:
  """Median and range of the seconds to the target over the runs that reached it."""
  seconds = [r["seconds_to_target"] for r in runs if r.get("reached")]
  return {"reached": f"{len(seconds)} of {len(runs)}",
          "median_seconds_to_target": statistics.median(seconds) if seconds else None,
          "min_seconds_to_target": min(seconds) if seconds else None,
          "max_seconds_to_target": max(seconds) if seconds else None}


def main(argv: list[str] | None = None) -> None:
  parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
  parser.add_argument("--config", default="configs/mnist_speedrun.py", help="dljax config[:arg]")
  parser.add_argument("--target", type=float, default=0.98,
                      help="the validation metric to reach (the config's early_stopping.metric)")
  parser.add_argument("--frameworks", default="dljax", help="comma-separated: dljax, keras")
  parser.add_argument("--repeats", type=int, default=3, help="cold runs per framework")
  parser.add_argument("--data_dir", help="TFDS data dir for dljax (default: $DLJAX_DATA_DIR)")
  parser.add_argument("--mnist_dir", default=os.path.join(REPO, "..", "shared", "data", "mnist"),
                      help="keras: the folder of MNIST's four IDX .gz files")
  parser.add_argument("--max_epochs", type=int, default=20, help="keras: epochs at most")
  parser.add_argument("--child", choices=("keras",), help=argparse.SUPPRESS)
  args = parser.parse_args(argv)
  if args.child:
    print(RESULT_PREFIX + json.dumps(keras_child(args.mnist_dir, args.target, args.max_epochs)),
          flush=True)
    return
  frameworks = [name for name in args.frameworks.split(",") if name]
  if unknown := set(frameworks) - {"dljax", "keras"}:
    parser.error(f"--frameworks: unknown {', '.join(sorted(unknown))}; allowed: dljax, keras")
  report: dict[str, Any] = {"machine": machine_info(), "target": args.target, "frameworks": {}}
  if "dljax" in frameworks:  # data prepared and decoded once, as by any first run
    from dljax import config_lib, data

    recipe = config_lib.load(os.path.join(REPO, args.config))
    recipe.data.dir = args.data_dir or recipe.data.dir
    data.load(recipe.data, seed=0)
  for framework in frameworks:
    runs = []
    with tempfile.TemporaryDirectory() as caches:
      for repeat in range(args.repeats):
        print(f"{framework} run {repeat + 1} of {args.repeats} ...", file=sys.stderr, flush=True)
        runs.append(run_dljax(args.config, args.target, args.data_dir,
                              os.path.join(caches, str(repeat))) if framework == "dljax"
                    else run_keras(args.mnist_dir, args.target, args.max_epochs))
        print(f"{framework}: {runs[-1].get('seconds_to_target') or runs[-1]}", file=sys.stderr,
              flush=True)
      name = f"dljax {args.config}" if framework == "dljax" else "keras mnist_mlp"
      report["frameworks"][name] = {**summary(runs), "runs": runs}
      if framework == "dljax":
        report["frameworks"][name]["warm"] = run_dljax(
            args.config, args.target, args.data_dir, os.path.join(caches, str(repeat)))
  report["machine"]["load_average_at_end"] = os.getloadavg()
  print(json.dumps(report, indent=2))


if __name__ == "__main__":
  main()

r"""Trains the keras-team reference models on the real MNIST and prints test accuracy as JSON.

    python -m dljax.data prepare mnist --from ../shared/data/mnist --data_dir /tmp/tfds
    python bench/reference_accuracy.py --data_dir /tmp/tfds [--models mnist_mlp,mnist_cnn]

Targets: mnist_mlp (20 epochs) >= 98.3% and mnist_cnn (12 epochs) >= 99.1% test accuracy; the
examples claim 98.40% and 99.25%. Each model trains in its own workdir under --workdir.
"""

import argparse
import json
import os
import platform
import tempfile
import time

from dljax import config_lib, train

TARGETS = {"mnist_mlp": 0.983, "mnist_cnn": 0.991}
PUBLISHED = {"mnist_mlp": 0.9840, "mnist_cnn": 0.9925}


def main() -> None:
  parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
  parser.add_argument("--data_dir", default=None, help="TFDS data dir with mnist prepared")
  parser.add_argument("--models", default=",".join(TARGETS))
  parser.add_argument("--workdir", default=None, help="default: a new temporary directory")
  args = parser.parse_args()
  workdir = args.workdir or tempfile.mkdtemp(prefix="reference_accuracy_")
  report = {"machine": f"{platform.processor() or platform.machine()}, {os.cpu_count()} cores",
            "models": {}}
  for name in args.models.split(","):
    config = config_lib.load(f"configs/{name}.py")
    if args.data_dir:
      config_lib.override(config, "data.dir", args.data_dir)
    start = time.perf_counter()
    results = train.run(config, os.path.join(workdir, name))
    accuracy = results["test"]["accuracy"]
    report["models"][name] = {
        "test_accuracy": accuracy, "target": TARGETS[name], "published": PUBLISHED[name],
        "meets_target": accuracy >= TARGETS[name], "epochs": results["epochs"],
        "wall_seconds": time.perf_counter() - start,
        "train_seconds": results["train_seconds"],
        "examples_per_second": results["examples_per_second"]}
  print(json.dumps(report, indent=2))


if __name__ == "__main__":
  main()

r"""Training throughput of dljax, Keras 3 (JAX backend) and PyTorch: same models, same machine.

    pip install keras torch==2.13.0
    python bench/throughput.py > throughput.json              # every model x framework
    python bench/throughput.py --models=mnist_cnn --frameworks=dljax,torch --epochs=4

Prints one JSON object: machine and versions, then per model, per framework, steady-state
training examples/s (and tokens/s for the LSTMs), start-up seconds, peak resident memory (MiB),
parameter count and the last epoch's train loss and accuracy; and per model the ratio of
dljax's examples/s to each other framework's. Progress goes to stderr. See bench/README.md
for what exactly is timed.

Each (model, framework) pair trains in its own subprocess (`--framework=X --model=Y`, which
prints that pair's result), so imports, thread pools and memory do not leak between them, and
each child's peak RSS is read from its own `wait4` resource usage.
"""

import argparse
import json
import os
import platform
import subprocess
import sys
import tempfile
import threading
import time
from importlib import metadata
from typing import Any

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
if __package__ in (None, ""):  # run as `python bench/throughput.py`: make `bench` importable
  sys.path.insert(0, REPO)

from bench.frameworks import common  # noqa: E402

# Two process settings dljax makes for itself (dljax/__init__.py, which this script does not
# import: importing it would set the first in every child) that any framework could use, so by
# default every framework gets them and the comparison is of the frameworks:
#   FAST_CPU_CONVOLUTIONS: XLA's own Eigen convolutions instead of YNNPACK (3-4x faster CPU
#     convolutions on jaxlib 0.10), for the JAX frameworks; dljax sets it when imported.
#   HUGE_PAGE_MALLOC: glibc maps large allocations as transparent huge pages (far fewer page
#     faults for the per-step temporaries of CPU convolutions); dljax's command lines set it.
FAST_CPU_CONVOLUTIONS = "--xla_cpu_experimental_ynn_fusion_type=-individual_convolution"
HUGE_PAGE_MALLOC = "glibc.malloc.hugetlb=1"

FRAMEWORKS = ("dljax", "jax_loop", "keras", "torch", "torch_compile")
JAX_PLATFORMS = {"cpu": "cpu", "gpu": "cuda,cpu"}  # --device -> JAX_PLATFORMS (torch: cpu, cuda)
RESULT_PREFIX = "BENCH_RESULT "
PACKAGES = ("dljax", "jax", "jaxlib", "flax", "optax", "keras", "torch", "numpy")


def train(framework: str, spec: common.ModelSpec | common.GanSpec | common.SequenceSpec,
          num_examples: int, epochs: int, torch_threads: int, device: str) -> dict[str, Any]:
  """Trains one pair in this process (the subprocess side) and returns its measurement."""
  if framework == "dljax":
    from bench.frameworks import dljax_trainer
    return dljax_trainer.train(spec, num_examples, epochs, REPO)
  if framework == "jax_loop":
    from bench.frameworks import jax_loop
    return jax_loop.train(spec, num_examples, epochs)
  if framework == "keras":
    from bench.frameworks import keras_models
    return keras_models.train(spec, num_examples, epochs)
  from bench.frameworks import torch_models
  return torch_models.train(spec, num_examples, epochs, threads=torch_threads,
                            compile_model=framework == "torch_compile", device=device)


def _child_env(framework: str, args: argparse.Namespace) -> dict[str, str]:
  # dljax's own command lines run with the huge-page tunable whatever is asked here.
  tunables = args.glibc_tunables or (HUGE_PAGE_MALLOC if framework == "dljax" else "")
  env = dict(os.environ, PYTHONUNBUFFERED="1", GLIBC_TUNABLES=tunables)
  if framework in ("dljax", "jax_loop", "keras"):
    # No persistent compilation cache: each JAX framework compiles from scratch, as in a first run.
    env.update(JAX_PLATFORMS=JAX_PLATFORMS[args.device], KERAS_BACKEND="jax",
               XLA_FLAGS=args.xla_flags, JAX_COMPILATION_CACHE_DIR="")
  return env


def run_pair(framework: str, model: str, args: argparse.Namespace) -> dict[str, Any]:
  """Runs one pair in a subprocess; its result plus peak RSS and wall time, or its error."""
  command = [sys.executable, "-m", "bench.throughput", f"--framework={framework}",
             f"--model={model}", f"--examples={args.examples}", f"--epochs={args.epochs}",
             f"--torch_threads={args.torch_threads}", f"--device={args.device}"]
  with tempfile.TemporaryFile("w+") as stdout, tempfile.TemporaryFile("w+") as stderr:
    start = time.perf_counter()
    process = subprocess.Popen(command, cwd=REPO, env=_child_env(framework, args),
                               stdout=stdout, stderr=stderr, text=True)
    killer = threading.Timer(args.timeout, process.kill)
    killer.start()
    # wait4, not RUSAGE_CHILDREN: the latter is the maximum over every child so far.
    _, status, usage = os.wait4(process.pid, 0)
    killer.cancel()
    process.returncode = os.waitstatus_to_exitcode(status)
    wall_seconds = time.perf_counter() - start
    stdout.seek(0)
    stderr.seek(0)
    lines = [line for line in stdout.read().splitlines() if line.startswith(RESULT_PREFIX)]
    if process.returncode != 0 or not lines:
      tail = stderr.read().strip().splitlines()[-15:]
      return {"error": f"exit code {process.returncode}", "stderr_tail": tail,
              "wall_seconds": wall_seconds}
  result = json.loads(lines[-1].removeprefix(RESULT_PREFIX))
  spec = common.MODELS[model]
  if isinstance(spec, common.SequenceSpec):
    result["tokens_per_second"] = result["examples_per_second"] * spec.seq_len
  result["peak_rss_mib"] = usage.ru_maxrss / 1024  # Linux reports KiB
  result["process_wall_seconds"] = wall_seconds
  return result


def gpu_model() -> str | None:
  """The first NVIDIA GPU's name, memory and driver, as nvidia-smi reports them; None if none."""
  try:
    lines = subprocess.run(["nvidia-smi", "--query-gpu=name,memory.total,driver_version",
                            "--format=csv,noheader"], capture_output=True, text=True,
                           check=True).stdout.splitlines()
  except (OSError, subprocess.CalledProcessError):
    return None
  return lines[0].strip() if lines else None


def machine_info() -> dict[str, Any]:
  """CPU model, cores, GPU, OS, Python and package versions, and the load at the start."""
  cpu_model = platform.processor() or "unknown"
  try:
    with open("/proc/cpuinfo") as f:
      cpu_model = next(line.split(":", 1)[1].strip() for line in f
                       if line.startswith("model name"))
  except (OSError, StopIteration):
    pass
  versions = {}
  for package in PACKAGES:
    try:
      versions[package] = metadata.version(package)
    except metadata.PackageNotFoundError:
      versions[package] = None
  return {
      "cpu_model": cpu_model,
      "cpu_count": os.cpu_count(),
      "cpus_usable": len(os.sched_getaffinity(0)),
      "gpu": gpu_model(),
      "platform": platform.platform(),
      "python": platform.python_version(),
      "versions": versions,
      "load_average_at_start": os.getloadavg(),
  }


def compare(results: dict[str, dict[str, Any]]) -> dict[str, float]:
  """dljax's examples/s over each other framework's (and over PyTorch's faster mode)."""
  speed = {name: r["examples_per_second"] for name, r in results.items() if "error" not in r}
  if "dljax" not in speed:
    return {}
  ratios = {f"dljax_over_{name}": speed["dljax"] / value
            for name, value in speed.items() if name != "dljax"}
  torch_modes = [speed[name] for name in ("torch", "torch_compile") if name in speed]
  if torch_modes:
    ratios["dljax_over_best_torch"] = speed["dljax"] / max(torch_modes)
  return ratios


def check_parameters(spec: common.ModelSpec | common.GanSpec | common.SequenceSpec,
                     results: dict[str, dict[str, Any]]) -> list[str]:
  """Every framework's parameter count must equal the spec's: the same network everywhere."""
  expected = common.parameter_count(spec)
  return [f"{spec.name}/{name}: {r['parameters']} parameters, expected {expected}"
          for name, r in results.items() if "error" not in r and r["parameters"] != expected]


def _names(text: str, allowed) -> list[str]:
  names = [name for name in text.split(",") if name]
  if unknown := sorted(set(names) - set(allowed)):
    raise argparse.ArgumentTypeError(f"unknown {', '.join(unknown)}; allowed: "
                                     f"{', '.join(allowed)}")
  return names


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
  parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                   formatter_class=argparse.RawDescriptionHelpFormatter)
  parser.add_argument("--models", default=",".join(common.MODELS),
                      type=lambda text: _names(text, tuple(common.MODELS)),
                      help="comma-separated models (default: all)")
  parser.add_argument("--frameworks", default=",".join(FRAMEWORKS),
                      type=lambda text: _names(text, FRAMEWORKS),
                      help="comma-separated frameworks (default: all)")
  parser.add_argument("--examples", type=int, default=10240,
                      help="train examples per epoch, rounded down to whole batches")
  parser.add_argument("--epochs", type=int, default=3,
                      help="epochs; the first is warm-up, the rest are timed (>= 2)")
  parser.add_argument("--device", choices=tuple(JAX_PLATFORMS), default="cpu",
                      help="where every framework trains (gpu: the first CUDA device)")
  parser.add_argument("--xla_flags",
                      help="XLA_FLAGS for dljax and Keras (default: the fast-convolution flag on "
                      "a CPU with jaxlib 0.10, else none); '' runs each as shipped (dljax then "
                      "adds its fast-convolution flag itself, Keras keeps XLA's defaults)")
  parser.add_argument("--glibc_tunables", default=HUGE_PAGE_MALLOC,
                      help="GLIBC_TUNABLES for every framework; '' runs each as shipped (dljax "
                      "then has its command lines' huge-page malloc, the others glibc's defaults)")
  parser.add_argument("--torch_threads", type=int, default=0,
                      help="torch.set_num_threads (default 0: os.cpu_count())")
  parser.add_argument("--timeout", type=float, default=1800,
                      help="seconds before one pair's subprocess is killed")
  parser.add_argument("--output", help="also write the JSON to this file")
  parser.add_argument("--framework", choices=FRAMEWORKS, help=argparse.SUPPRESS)
  parser.add_argument("--model", choices=tuple(common.MODELS), help=argparse.SUPPRESS)
  args = parser.parse_args(argv)
  if args.epochs < 2:
    parser.error("--epochs must be >= 2: the first epoch is warm-up")
  if args.xla_flags is None:  # XLA aborts on a flag its version does not know
    try:
      jaxlib = metadata.version("jaxlib")
    except metadata.PackageNotFoundError:
      jaxlib = ""
    cpu_flag = args.device == "cpu" and jaxlib.startswith("0.10.")
    args.xla_flags = FAST_CPU_CONVOLUTIONS if cpu_flag else ""
  return args


def main(argv: list[str] | None = None) -> None:
  args = parse_args(argv)
  if args.framework:  # one pair, in the subprocess run_pair started
    spec = common.MODELS[args.model]
    result = train(args.framework, spec, args.examples // spec.batch_size * spec.batch_size,
                   args.epochs, args.torch_threads, args.device)
    print(RESULT_PREFIX + json.dumps(result), flush=True)
    return

  report: dict[str, Any] = {
      "machine": machine_info(),
      "settings": {"examples_per_epoch": args.examples, "epochs": args.epochs,
                   "timed_epochs": args.epochs - 1, "device": args.device,
                   "xla_flags": args.xla_flags,
                   "glibc_tunables": args.glibc_tunables,
                   "torch_threads": args.torch_threads or os.cpu_count()},
      "models": {},
  }
  problems = []
  for model in args.models:
    spec = common.MODELS[model]
    results = {}
    for framework in args.frameworks:
      print(f"{model} / {framework} ...", file=sys.stderr, flush=True)
      result = run_pair(framework, model, args)
      results[framework] = result
      summary = result.get("error") or (f"{result['examples_per_second']:.0f} examples/s, "
                                        f"{result['peak_rss_mib']:.0f} MiB")
      print(f"{model} / {framework}: {summary}", file=sys.stderr, flush=True)
    problems += check_parameters(spec, results)
    report["models"][model] = {"parameters": common.parameter_count(spec),
                               "batch_size": spec.batch_size, "frameworks": results,
                               "ratios": compare(results)}
  report["machine"]["load_average_at_end"] = os.getloadavg()
  report["problems"] = problems + [f"{model}/{name}: {r['error']}"
                                   for model, entry in report["models"].items()
                                   for name, r in entry["frameworks"].items() if "error" in r]
  text = json.dumps(report, indent=2)
  print(text)
  if args.output:
    with open(args.output, "w") as f:
      f.write(text + "\n")
  sys.exit(1 if report["problems"] else 0)


if __name__ == "__main__":
  main()

"""dljax: classic deep-learning experiments in JAX/Flax, one trainer over per-experiment configs."""

import importlib.metadata
import os
import sys
from typing import TYPE_CHECKING

if TYPE_CHECKING:
  from dljax.inference import TrainedRun

__version__ = "0.1.0"

# On CPU, XLA's default convolution path (YNNPACK) ran the convolutions of the MNIST and CIFAR
# CNNs 3-4x slower than XLA's own Eigen convolutions (stack-notes; conv fwd+bwd 361 -> 96 ms on
# mnist_cnn's second layer, 2 cores). The flag must be set before jax is imported, and only for
# the jaxlib line it was verified on: XLA aborts on flags it does not know.
_FAST_CPU_CONVOLUTIONS = "--xla_cpu_experimental_ynn_fusion_type=-individual_convolution"


def _prefer_fast_cpu_convolutions() -> None:
  flags = os.environ.get("XLA_FLAGS", "")
  if "jax" in sys.modules or "xla_cpu_experimental_ynn_fusion_type" in flags:
    return
  try:
    jaxlib_version = importlib.metadata.version("jaxlib")
  except importlib.metadata.PackageNotFoundError:
    return
  if jaxlib_version.startswith("0.10."):
    os.environ["XLA_FLAGS"] = f"{flags} {_FAST_CPU_CONVOLUTIONS}".strip()


_prefer_fast_cpu_convolutions()


# Compiling a run's steps costs seconds every time (mnist_speedrun: 2.5 of its ~5 s start-up on 2
# cores), and a sweep pays it per trial. JAX's persistent compilation cache keeps compiled
# programs on disk, keyed by the program, the JAX and XLA versions, the devices and the flags,
# so a run whose steps were compiled before loads them (mnist_speedrun: 2.5 -> 0.5 s, the same
# results bit for bit; 0.3 MB). Set JAX_COMPILATION_CACHE_DIR to keep it elsewhere, or to ''
# to turn it off.
def _keep_compiled_programs() -> None:
  if "jax" in sys.modules or "JAX_COMPILATION_CACHE_DIR" in os.environ:
    return
  cache_home = os.environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache")
  os.environ["JAX_COMPILATION_CACHE_DIR"] = os.path.join(cache_home, "dljax", "jax_compilation")
  os.environ.setdefault("JAX_PERSISTENT_CACHE_MIN_COMPILE_TIME_SECS", "0")  # JAX's default: 1 s
  os.environ.setdefault("JAX_COMPILATION_CACHE_MAX_SIZE", str(2 << 30))  # bytes, least recent go


_keep_compiled_programs()


# XLA's Eigen convolutions allocate their packed blocks afresh on every call (mnist_cnn: 85, 85
# and 200 MB a step) and glibc serves allocations that large with mmap: each step then faulted
# its blocks in 4 KiB page by page (21k page faults, ~40 ms of kernel time a step on 2 cores).
# glibc's `hugetlb=1` tunable maps them as transparent huge pages, 500 faults a step: mnist_cnn
# 95 -> 86 ms a step, the MLP unchanged. (Keeping freed memory for reuse, one arena and no mmap,
# did as well for the CNN but slowed the MLP 7%: its threads then contend for one arena.)
# glibc reads tunables only when a process starts, so dljax's command lines restart themselves
# with it before importing jax; elsewhere, export GLIBC_TUNABLES=glibc.malloc.hugetlb=1.
_HUGE_PAGE_MALLOC = "glibc.malloc.hugetlb=1"  # a GLIBC_TUNABLES entry
_COMMAND_LINES = ("dljax.main", "launch.sweep")  # python -m MODULE


def _restart_command_line_with_huge_page_malloc() -> None:
  tunables = os.environ.get("GLIBC_TUNABLES", "")
  if ("jax" in sys.modules or "glibc.malloc.hugetlb" in tunables
      or not sys.platform.startswith("linux") or not sys.executable
      or sys.orig_argv[1:3] not in (["-m", module] for module in _COMMAND_LINES)
      # A setuid process's glibc drops GLIBC_TUNABLES: it would restart forever.
      or os.getuid() != os.geteuid() or os.getgid() != os.getegid()):
    return
  os.environ["GLIBC_TUNABLES"] = ":".join(filter(None, (tunables, _HUGE_PAGE_MALLOC)))
  os.execv(sys.executable, [sys.executable, *sys.orig_argv[1:]])


_restart_command_line_with_huge_page_malloc()


def load(workdir: str) -> "TrainedRun":
  """The run trained in `workdir`, restored for predictions: `dljax.inference.load`.

  dljax.inference is imported on the first call: importing dljax must not import jax, whose
  settings the code above makes first.
  """
  from dljax import inference

  return inference.load(workdir)

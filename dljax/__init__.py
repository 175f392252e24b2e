"""dljax: classic deep-learning experiments in JAX/Flax, one trainer over per-experiment configs."""

import importlib.metadata
import os
import sys

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

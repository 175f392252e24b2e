"""Shared fixtures: a tiny learnable MNIST-like data set prepared offline; a runner for main."""

import gzip
import os
import struct
import subprocess
import sys

import numpy as np
import pytest

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def write_idx(path: str, array: np.ndarray) -> None:
  """Writes `array` (uint8) as a gzip IDX file, the format MNIST is distributed in."""
  magic = 0x800 + array.ndim
  with gzip.open(path, "wb") as f:
    f.write(struct.pack(">I", magic) + struct.pack(f">{array.ndim}I", *array.shape))
    f.write(array.astype(np.uint8).tobytes())


def tiny_digits(num_examples: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
  """28x28 images whose class is a bright 7x7 block at one of 10 places, plus noise: learnable."""
  rng = np.random.default_rng(seed)
  labels = rng.integers(0, 10, num_examples).astype(np.uint8)
  images = rng.integers(0, 60, (num_examples, 28, 28)).astype(np.uint8)
  for index, label in enumerate(labels):
    row, col = divmod(int(label), 5)
    images[index, 3 + row * 12: 10 + row * 12, 1 + col * 5: 8 + col * 5] = 255
  return images, labels


@pytest.fixture(scope="session")
def tiny_mnist_dir(tmp_path_factory) -> str:
  """A TFDS data dir holding 'mnist' prepared offline from tiny IDX files (640 train, 160 test)."""
  source = tmp_path_factory.mktemp("idx")
  for prefix, count, seed in (("train", 640, 0), ("t10k", 160, 1)):
    images, labels = tiny_digits(count, seed)
    write_idx(str(source / f"{prefix}-images-idx3-ubyte.gz"), images)
    write_idx(str(source / f"{prefix}-labels-idx1-ubyte.gz"), labels)
  data_dir = str(tmp_path_factory.mktemp("tfds"))
  subprocess.run([sys.executable, "-m", "dljax.data", "prepare", "mnist", "--from", str(source),
                  "--data_dir", data_dir, "--partial"], check=True, cwd=REPO,
                 capture_output=True)
  return data_dir


def main_command(*args: str) -> list[str]:
  return [sys.executable, "-m", "dljax.main", *args]


def run_main(*args: str, devices: int = 1, timeout: float = 240,
             **popen_kwargs) -> subprocess.CompletedProcess:
  """Runs `python -m dljax.main ARGS` on `devices` fake CPU devices and returns the result."""
  return subprocess.run(main_command(*args), env=cpu_env(devices), cwd=REPO, capture_output=True,
                        text=True, timeout=timeout, **popen_kwargs)


def cpu_env(devices: int) -> dict[str, str]:
  env = dict(os.environ)
  env.pop("GLIBC_TUNABLES", None)  # as in a user's shell: dljax's command lines set their own
  env["XLA_FLAGS"] = f"--xla_force_host_platform_device_count={devices}"
  env["JAX_PLATFORMS"] = "cpu"
  return env

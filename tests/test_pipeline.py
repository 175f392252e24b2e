"""Streaming serves OnDevice's batches: across epochs, on resume, in worker processes, per host."""

import itertools
import os
import subprocess
import sys

import jax
import numpy as np
import pytest
import tensorflow_datasets as tfds

from dljax import data, sharding
from dljax.data import pipeline
from tests.conftest import REPO, cpu_env

BATCH = 128  # the 640 train examples of `tiny_mnist_dir` make 5 batches an epoch
EVAL_BATCH = 64  # its 160 test examples: 3 batches, the last half padding
DATA_KEY = jax.random.key(7)


def both_pipelines(data_dir: str, workers: int = 0) -> dict[str, dict]:
  """{'device': ..., 'streaming': ...} -> {'train': pipeline, 'test': pipeline} for tiny MNIST."""
  mesh = sharding.make_mesh()
  pipelines = {}
  for kind in ("device", "streaming"):
    config = data.data_config("mnist", dir=data_dir, pipeline=kind, workers=workers)
    splits = data.load(config, seed=0)
    pipelines[kind] = {name: pipeline.make(getattr(splits, name), mesh, config)
                       for name in ("train", "test")}
  assert isinstance(pipelines["streaming"]["train"], pipeline.Streaming)
  assert isinstance(pipelines["device"]["train"], pipeline.OnDevice)
  return pipelines


def train_batches(train_data, steps) -> list[dict]:
  return [jax.device_get(train_data.train_batch(DATA_KEY, step, BATCH)) for step in steps]


def eval_batches(eval_data) -> list[tuple[dict, np.ndarray]]:
  return jax.device_get(list(eval_data.eval_batches(EVAL_BATCH)))


def assert_batches_equal(a, b) -> None:
  assert len(a) == len(b)
  for x, y in zip(a, b, strict=True):
    jax.tree.map(np.testing.assert_array_equal, x, y)


@pytest.fixture(params=["prepared", "mock_data"])
def data_dir(request, tiny_mnist_dir, tmp_path):
  """The on-disk tiny MNIST, or TFDS's mock data (one record at a time, nothing on disk)."""
  if request.param == "prepared":
    yield tiny_mnist_dir
  else:
    with tfds.testing.mock_data(num_examples=600):
      yield str(tmp_path)


def test_streaming_serves_the_on_device_batches(data_dir):
  pipelines = both_pipelines(data_dir)
  steps = range(12)  # over two epoch boundaries
  device, streamed = (train_batches(pipelines[kind]["train"], steps)
                      for kind in ("device", "streaming"))
  assert_batches_equal(device, streamed)
  steps_per_epoch = pipelines["device"]["train"].num_examples // BATCH
  assert not np.array_equal(device[0]["label"], device[steps_per_epoch]["label"])  # reshuffled

  device_eval = eval_batches(pipelines["device"]["test"])
  num_examples = pipelines["device"]["test"].num_examples
  assert num_examples % EVAL_BATCH  # the last batch is padded
  assert [mask.sum() for _, mask in device_eval][-2:] == [EVAL_BATCH, num_examples % EVAL_BATCH]
  streamed_eval = pipelines["streaming"]["test"]
  assert_batches_equal(device_eval, eval_batches(streamed_eval))
  for batches_taken in (1, 2):  # passes left unfinished: after the first batch, as the trainer
    list(itertools.islice(streamed_eval.eval_batches(EVAL_BATCH), batches_taken))  # does, or later
    assert_batches_equal(device_eval, eval_batches(streamed_eval))


def test_a_fresh_start_at_step_k_reads_from_step_k(tiny_mnist_dir, monkeypatch):
  straight = both_pipelines(tiny_mnist_dir)["streaming"]["train"]
  expected = train_batches(straight, range(24))[-2:]
  steps_read = []
  read_rows = pipeline._read_train_rows

  def recording(split, train_index, row_b, step):
    steps_read.append(step)
    return read_rows(split, train_index, row_b, step)

  monkeypatch.setattr(pipeline, "_read_train_rows", recording)
  resumed = both_pipelines(tiny_mnist_dir)["streaming"]["train"]
  assert_batches_equal(expected, train_batches(resumed, (22, 23)))  # epoch 4
  assert min(steps_read) == 22


def test_worker_processes_serve_the_same_batches(tiny_mnist_dir):
  pipelines = both_pipelines(tiny_mnist_dir, workers=2)
  steps = range(3, 8)  # across an epoch boundary, starting mid-epoch
  assert_batches_equal(train_batches(pipelines["device"]["train"], steps),
                       train_batches(pipelines["streaming"]["train"], steps))


# Each of 2 processes (2 CPU devices each) checks its shards of the streamed batches against the
# on-device ones, and that it read only its half of each batch.
TWO_PROCESSES = """
import sys
import jax
import numpy as np
jax.distributed.initialize(f"127.0.0.1:{sys.argv[1]}", num_processes=2, process_id=int(sys.argv[2]))
from dljax import data
from dljax.data import pipeline
from tests import test_pipeline as t

rows_read = []
read = data.read
data.read = lambda split, position_B: rows_read.append(len(position_B)) or read(split, position_B)
pipelines = t.both_pipelines(sys.argv[3])

def shards(batches):
  return [[np.asarray(shard.data) for shard in leaf.addressable_shards]
          for leaf in jax.tree.leaves(list(batches))]

train_data = {kind: p["train"] for kind, p in pipelines.items()}
for step in (4, 5, 6):
  device, streamed = (shards([p.train_batch(t.DATA_KEY, step, t.BATCH)])
                      for p in train_data.values())
  jax.tree.map(np.testing.assert_array_equal, device, streamed)
device, streamed = (shards(p["test"].eval_batches(t.EVAL_BATCH)) for p in pipelines.values())
jax.tree.map(np.testing.assert_array_equal, device, streamed)
# After reading the on-device splits whole, each read (ahead too) is half of a batch.
assert rows_read[:2] == [640, 160] and set(rows_read[2:]) == {t.BATCH // 2, t.EVAL_BATCH // 2}
print("ok")
"""


def test_each_process_reads_only_its_rows(tiny_mnist_dir):
  port = str(20000 + (os.getpid() + 7) % 20000)
  processes = [subprocess.Popen(
      [sys.executable, "-c", TWO_PROCESSES, port, str(index), tiny_mnist_dir], env=cpu_env(2),
      cwd=REPO, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True) for index in range(2)]
  for process in processes:
    stdout, stderr = process.communicate(timeout=120)
    assert process.returncode == 0 and stdout.strip() == "ok", stderr


def test_streaming_trains_the_same_params(tiny_mnist_dir, tmp_path):
  # Imported here: the trainer's imports (Orbax, TensorBoard, Matplotlib) would slow the
  # processes above.
  from dljax import train
  from tests.test_train import assert_trees_close, latest_params, smoke_config

  results = {kind: train.run(smoke_config(**{"data.dir": tiny_mnist_dir, "data.pipeline": kind,
                                             "data.normalize": "per_channel"}),
                            str(tmp_path / kind))
             for kind in ("device", "streaming")}
  assert_trees_close(latest_params(str(tmp_path / "device")),
                     latest_params(str(tmp_path / "streaming")), atol=0)
  assert results["device"]["test"] == results["streaming"]["test"]


def test_epoch_order_without_a_cpu_backend(monkeypatch):
  """JAX_PLATFORMS=cuda leaves no CPU backend: the order is then drawn on the first device."""
  key = jax.random.key(3)
  expected = pipeline.epoch_order(key, 2, 50)
  real_local_devices = jax.local_devices

  def accelerators_only(*args, backend=None, **kwargs):
    if backend == "cpu":
      raise RuntimeError("Unknown backend cpu. Available backends are ['cuda']")
    return real_local_devices(*args, backend=backend, **kwargs)

  monkeypatch.setattr(jax, "local_devices", accelerators_only)
  order = pipeline.epoch_order(key, 2, 50)
  np.testing.assert_array_equal(order, expected)
  assert sorted(order) == list(range(50))

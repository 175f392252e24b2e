"""dljax's side: the real trainer (`dljax.train.run`) on the model's own config file.

Nothing is re-implemented: the config file the experiments use is loaded, shrunk to a benchmark
(epochs, one evaluation at the end on a few examples), and trained on `tfds.testing.mock_data`
(random examples of the data set's shapes; IMDB's ids are built from its random reviews into a
temporary data dir) or, for the char LM, on a random text file of its vocabulary. What is
timed:

- `compile_seconds`: results.json's, the ahead-of-time compilation of the train and eval steps
  (JAX's persistent compilation cache is off here, so every pair compiles from scratch).
- `startup_seconds`: results.json's, from the benchmark process's start to the first train step
  (imports, mock data, compilation).
- steady-state examples/s: epochs 2.. of the train loop. The trainer logs train metrics once
  per epoch (`log_every_steps` = steps per epoch); each log pulls the metrics to the host, so
  the TensorBoard event it writes is stamped after that epoch's last step has finished. The
  difference of the stamps of epochs 1 and E is the time of epochs 2..E, with no evaluation or
  checkpoint inside it (both happen only after the last step).
- results.json's own `examples_per_second` (every epoch, the first step's warm-up included) is
  reported next to it as `results_examples_per_second`.
"""

import glob
import itertools
import json
import math
import os
import string
import tempfile
from importlib import metadata
from typing import Any

import numpy as np

from bench.frameworks import common

EVAL_BATCHES = 4  # the final validation and test evaluations read this many batches


def _optimizers(config) -> list:
  """The config's optimiser sections: one, or a GAN's one per network."""
  return list(config.optimizers.values()) if "optimizers" in config else [config.optimizer]


def _check_same_model(config, spec: common.ModelSpec | common.GanSpec | common.SequenceSpec,
                      ) -> None:
  """The config must train the benchmark's model with its optimiser and batch size (an LSTM:
  and its sizes, sequence length and global-norm clipping)."""
  sequence = isinstance(spec, common.SequenceSpec)
  expected = (spec.optimizer.name.lower(), spec.optimizer.args["learning_rate"],
              spec.optimizer.args.get("beta_1", 0.9), spec.batch_size,
              _sequence_sizes(spec) if sequence else spec.tfds_name)
  actual = [(optimizer.name, optimizer.learning_rate, optimizer.b1, config.batch_size,
             _config_sizes(config, optimizer) if sequence else config.data.name)
            for optimizer in _optimizers(config)]
  if any(each != expected for each in actual):
    raise ValueError(f"{spec.dljax_config} trains (optimizer, lr, b1, batch, data) = {actual}; "
                     f"the benchmark's {spec.name} is {expected}")


def _sequence_sizes(spec: common.SequenceSpec) -> tuple:
  return (spec.vocab_size, spec.seq_len, spec.embedding, (spec.units,), spec.dropout,
          spec.optimizer.args.get("global_clipnorm", 0.0))


def _config_sizes(config, optimizer) -> tuple:
  """An LSTM config's `_sequence_sizes`: the IMDB classifier's or the language model's."""
  if config.data.name == "text_file":  # one LSTM layer per entry of `units`
    seq_len, units = config.data.text.seq_len, tuple(config.model.units)
  else:
    seq_len, units = config.data.imdb.maxlen, (config.model.units,)
  return (config.model.vocab_size, seq_len, config.model.embedding, units,
          config.model.dropout, optimizer.clip_norm)


def _random_text(path: str, spec: common.SequenceSpec, num_examples: int,
                 test_fraction: float) -> None:
  """A text file of `spec.vocab_size` distinct characters whose train part holds at least
  `num_examples` windows."""
  characters = np.array(list((string.ascii_letters + string.digits + string.punctuation)[
      :spec.vocab_size]))
  length = math.ceil((num_examples * spec.seq_len + 1) / (1 - test_fraction)) + 1
  text = np.random.default_rng(0).choice(characters, length)
  text[:spec.vocab_size] = characters  # every character present
  with open(path, "w") as f:
    f.write("".join(text))


def _train_log_times(workdir: str, loss: str) -> dict[int, float]:
  """step -> wall time of each train-metrics TensorBoard event the run wrote (those with the
  train metric `loss`)."""
  from tensorboard.backend.event_processing import event_file_loader

  times = {}
  for path in glob.glob(os.path.join(workdir, "tensorboard", "*")):
    for event in event_file_loader.EventFileLoader(path).Load():
      if any(value.tag == f"train/{loss}" for value in event.summary.value):
        times[event.step] = event.wall_time
  return times


def _train_metrics(workdir: str, step: int) -> dict[str, float]:
  """The train metrics logged at `step`: the means over the epoch that ended there."""
  from dljax import writers

  return next(r for r in writers.read_metrics(workdir)
              if r["split"] == "train" and r["step"] == step)


def train(spec: common.ModelSpec | common.GanSpec | common.SequenceSpec, num_examples: int,
          epochs: int, repo: str) -> dict[str, Any]:
  """Trains `spec` with dljax for `epochs` epochs of `num_examples` mock examples."""
  # dljax first: importing it before jax lets it set its CPU XLA flags, as in a user's run.
  import tensorflow_datasets as tfds

  from dljax import config_lib
  from dljax import train as dljax_train

  config = config_lib.load(os.path.join(repo, spec.dljax_config))
  config.update(spec.dljax_overrides)
  gan = isinstance(spec, common.GanSpec)
  _check_same_model(config, spec)
  steps_per_epoch = num_examples // spec.batch_size
  config.num_epochs = float(epochs)
  config.log_every_steps = steps_per_epoch
  config.eval_every_epochs = float(epochs)
  config.data.eval_limit = EVAL_BATCHES * spec.batch_size
  with tempfile.TemporaryDirectory() as workdir, tfds.testing.mock_data(num_examples=num_examples):
    # IMDB's ids are built from the mock reviews into this data dir, never the real one.
    config.data.dir = os.path.join(workdir, "data")
    if config.data.name == "text_file":
      config.data.text.path = os.path.join(workdir, "random.txt")
      _random_text(config.data.text.path, spec, num_examples, config.data.text.test_fraction)
      config.data.train_limit = num_examples
    results = dljax_train.run(config, os.path.join(workdir, "run"))
    run_dir = os.path.join(workdir, "run")
    times = _train_log_times(run_dir, "d_loss" if gan else "loss")
    final = _train_metrics(run_dir, epochs * steps_per_epoch)
    with open(os.path.join(run_dir, "config.json")) as f:
      run_info = json.load(f)
  stamps = [times[epoch * steps_per_epoch] for epoch in range(1, epochs + 1)]
  steady = [later - earlier for earlier, later in itertools.pairwise(stamps)]
  return common.measurement(
      steady, steps_per_epoch * spec.batch_size,
      compile_seconds=results["compile_seconds"],
      startup_seconds=results["startup_seconds"],
      first_epoch_seconds=results["compile_seconds"] + results["train_seconds"] - sum(steady),
      parameters=results["parameters"],
      # A GAN's: D's loss and accuracy over its real + fake batches.
      final_loss=final["d_loss" if gan else "loss"],
      final_accuracy=(final["d_real_accuracy"] + final["d_fake_accuracy"]) / 2 if gan else (
          final.get("accuracy")),
      results_examples_per_second=results["examples_per_second"],
      versions={name: metadata.version(name) for name in ("dljax", "jax", "jaxlib", "flax",
                                                          "optax")},
      devices=f"{run_info['device_count']} x {run_info['platform']} ({run_info['device_kind']})",
      xla_flags=os.environ.get("XLA_FLAGS", ""),  # as dljax left them
  )

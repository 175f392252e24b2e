"""Scoring a trained run on other data, without training:

    python -m dljax.main --config=configs/clock_quick.py --workdir=W --mode=evaluate \
        --eval_name=course --config.data.clocks.source=course

The run's own task and tested state (`dljax.load`: the model, its preprocessing, the best or
last checkpoint) meet the data of the config given, of which only the `data` section and the
eval batch size count: another data set, other files, another split (`--eval_split`). The
metrics go to WORKDIR/eval_NAME.json beside results.json; the task's analysis and evaluators
write their PNGs into WORKDIR/eval_NAME/. Nothing the run wrote changes.
"""

import os
import re
import time
from typing import Any

import jax
import ml_collections
import numpy as np

from dljax import config_lib, data, inference, sharding, train, trials, writers
from dljax.data import pipeline
from dljax.errors import ConfigError

SPLITS = ("test", "validation", "train")


def evaluate(config: ml_collections.ConfigDict, workdir: str, name: str = "",
             split: str = "test") -> dict[str, Any]:
  """Scores `workdir`'s tested state on `split` of `config.data`; returns eval_NAME.json's
  contents (NAME defaults to the data set's name)."""
  config_lib.validate(config)
  name = name or config.data.name
  if not re.fullmatch(r"[\w.-]+", name):
    raise ConfigError(f"--eval_name={name!r}: letters, digits, '_', '.' and '-' only")
  if split not in SPLITS:
    raise ConfigError(f"--eval_split={split!r}: allowed: {', '.join(SPLITS)}")
  trained = inference.load(workdir)
  examples = getattr(data.load(config.data, config.seed), split)
  if examples is None:
    raise ConfigError(f"--eval_split={split}: config.data.validation="
                      f"{config.data.validation!r} makes no validation split")
  _check_like_training(examples, trained.example_spec, config.data.name)

  mesh = sharding.make_mesh()
  replicated = sharding.replicated(mesh)
  split_data = pipeline.make(examples, mesh, config.data)
  state = jax.device_put(trained.state, replicated)
  root = jax.random.key(trained.config.seed)
  eval_key = jax.random.fold_in(root, train.STREAMS["eval"])
  batch_size = config.eval_batch_size or config.batch_size
  task = trained.task
  start = time.perf_counter()
  eval_sums = jax.jit(train.masked_sums(task.eval_step, eval_key), out_shardings=replicated)
  metrics = train.split_metrics(eval_sums, state, task, split_data, batch_size,
                                trials.Stack(1, mesh))[0]
  out_dir = os.path.join(workdir, f"eval_{name}")
  os.makedirs(out_dir, exist_ok=True)
  writer = writers.MetricWriter(out_dir)
  artefacts = writers.Artefacts(out_dir, writer, trained.step, "test")
  for evaluator in task.evaluators:
    metrics.update(evaluator(state, jax.random.fold_in(root, train.STREAMS["evaluators"]),
                             artefacts))
  if task.analyze is not None:
    outputs, gathered = train.gather_outputs(state, task, split_data, batch_size, eval_key)
    if jax.process_index() == 0:
      metrics.update(task.analyze(state, outputs, gathered, out_dir))
  writer.close()
  result = {"name": name, "split": split, "examples": split_data.num_examples,
            "tested_step": trained.step, "metrics": metrics, "data": config.data.to_dict(),
            "seconds": time.perf_counter() - start}
  writers.write_json(os.path.join(workdir, f"eval_{name}.json"), result)
  return result


def _check_like_training(split: data.Split, example_spec: dict[str, dict[str, Any]],
                         data_name: str) -> None:
  """Raises ConfigError unless the split's examples have the keys and shapes the run trained on."""
  first = data.read(split, np.arange(1)) if isinstance(split, data.Subset) else {
      key: value[:1] for key, value in split.items()}
  for key, spec in example_spec.items():
    if key not in first:
      raise ConfigError(f"config.data.name={data_name!r}: its examples have no {key!r} "
                        f"(they have {', '.join(sorted(first))}); the run trained on {key!r}")
    if list(first[key].shape[1:]) != spec["shape"]:
      raise ConfigError(f"config.data.name={data_name!r}: its {key!r} is "
                        f"{'x'.join(map(str, first[key].shape[1:]))}, the run trained on "
                        f"{'x'.join(map(str, spec['shape']))}")

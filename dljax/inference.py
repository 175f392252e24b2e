"""A trained run, used: `dljax.load(workdir)` restores a workdir's model for predictions.

A workdir holds everything needed without the data set: config.json (the resolved config, the
class names and what one example looks like) and the Orbax checkpoints. `load` rebuilds the
task from the config, restores the state the run tested (results.json's `tested_step`: the best
or the last) or, for a run that has not finished, its newest checkpoint, onto one device; the
returned `TrainedRun` predicts from inputs alone, as the task's `predict` does in the test.

The data set is read only where the task cannot be built without it: inputs standardised by the
train split's statistics (`config.data.normalize` other than 'none'). Then only those statistics
are read, through the streaming pipeline, which reads nothing else.
"""

import dataclasses
import json
import os
from collections.abc import Callable
from typing import Any

import jax
import ml_collections
import numpy as np

from dljax import checkpoint, data, optim, tasks
from dljax import workdir as workdir_lib
from dljax.errors import ConfigError, DataError

# Example spec: {batch key: {"shape": one example's shape, "dtype": its dtype name}}
ExampleSpec = dict[str, dict[str, Any]]


@dataclasses.dataclass
class TrainedRun:
  """A workdir's task and restored state; `predict` and `describe` use them."""
  workdir: str
  config: ml_collections.ConfigDict
  task: tasks.Task
  state: Any
  step: int  # the checkpoint `state` comes from
  label_names: tuple[str, ...] | None
  example_spec: ExampleSpec
  _predict: Callable[[Any, tasks.task.Batch], tasks.task.Metrics] = dataclasses.field(
      init=False, repr=False)

  def __post_init__(self):
    rng = jax.random.key(0)  # fixed: the same inputs always give the same outputs
    self._predict = self.task.predict and jax.jit(
        lambda state, batch: self.task.predict(state, batch, rng))

  def predict(self, batch: dict[str, np.ndarray] | np.ndarray) -> dict[str, np.ndarray]:
    """The task's per-example outputs for `batch`: a dict of arrays with a leading batch axis,
    or, for tasks whose examples have an 'image', a bare uint8 array [N, H, W, C] of images.

    Raises:
      ConfigError: the task makes no predictions from inputs (e.g. an agent with no data set:
        use its `state`).
      DataError: an array's shape or dtype is not what the model was trained on.
    """
    if self._predict is None:
      raise ConfigError(f"{self.workdir}: task {self.config.task!r} makes no predictions from "
                        "inputs; its trained state is `.state`")
    if not isinstance(batch, dict):
      if "image" not in self.example_spec:
        raise ConfigError(f"{self.workdir}: task {self.config.task!r} takes no images; pass a "
                          f"dict with keys {', '.join(self.example_spec)}")
      batch = {"image": batch}
    for key, value in batch.items():
      self._check(key, np.asarray(value))
    return jax.device_get(self._predict(self.state, batch))

  def describe(self, outputs: dict[str, np.ndarray]) -> list[dict[str, Any]]:
    """What a person reads about each example of `predict`'s outputs (the task's columns)."""
    if self.task.describe is None:
      raise ConfigError(f"{self.workdir}: task {self.config.task!r} does not describe its "
                        "predictions")
    return self.task.describe(outputs)

  def _check(self, key: str, value: np.ndarray) -> None:
    """Raises DataError unless `value` is a batch of examples of `key` as the run trained on:
    their shape, and their kind of number (float images would be read as 0-255 pixels)."""
    spec = self.example_spec.get(key)
    if spec is None:
      return
    if list(value.shape[1:]) != spec["shape"] or value.dtype.kind != np.dtype(spec["dtype"]).kind:
      raise DataError(f"inputs {key!r} of shape {list(value.shape)} and dtype {value.dtype}: "
                      f"this run's model takes [N, {', '.join(map(str, spec['shape']))}] "
                      f"{spec['dtype']}")


def load(workdir: str) -> TrainedRun:
  """The run trained in `workdir`, restored for predictions on this process's first device.

  Raises:
    ConfigError: `workdir` holds no run (no config.json or no checkpoints), or its checkpoint
      does not fit its config.
    DataError: the data set whose statistics standardise the inputs cannot be read, or the
      checkpoint is damaged.
  """
  info = workdir_lib.read_info(workdir)
  directory = os.path.join(workdir, "checkpoints")
  if info is None or not os.path.isdir(directory):
    raise ConfigError(f"{workdir}: holds no trained run (no config.json or no "
                      "checkpoints/); train one there first")
  if "example_spec" not in info:
    raise ConfigError(f"{workdir}: its config.json is from an older dljax, without "
                      "example_spec; run its training command again to rewrite it (a finished "
                      "run only tests again)")
  config = ml_collections.ConfigDict(info["config"])
  checkpointer = checkpoint.Checkpointer(directory)
  try:
    step, results = _tested_step(workdir, checkpointer.all_steps())
    task = tasks.build(config, _splits(config, info["label_names"]),
                       _schedule_steps(config, results.get("steps", step)))
    example_batch = {name: np.zeros((1, *spec["shape"]), spec["dtype"])
                     for name, spec in info["example_spec"].items()}
    state = _restore(checkpointer, step, jax.eval_shape(task.init, jax.random.key(0),
                                                        example_batch))
  finally:
    checkpointer.close()
  return TrainedRun(workdir=workdir, config=config, task=task, state=state, step=step,
                    label_names=info["label_names"] and tuple(info["label_names"]),
                    example_spec=info["example_spec"])


def _tested_step(workdir: str, steps: list[int]) -> tuple[int, dict[str, Any]]:
  """The checkpoint to restore: the one the run tested (results.json), else the newest; and
  results.json's contents ({} for a run that has not finished)."""
  if not steps:
    raise ConfigError(f"{workdir}: has no checkpoints; train it first")
  try:
    with open(os.path.join(workdir, "results.json")) as f:
      results = json.load(f)
  except (OSError, ValueError):
    return steps[-1], {}
  step = results.get("tested_step", steps[-1])
  if step not in steps:
    raise ConfigError(f"{workdir}: the step its results.json tested ({step}) has no "
                      f"checkpoint; it has {', '.join(map(str, steps))}")
  return step, results


def _splits(config: ml_collections.ConfigDict,
            label_names: list[str] | None) -> data.Splits | None:
  """What `tasks.build` needs of the data: the class names, and the train split's statistics
  where the inputs are standardised by them (read from the data set, streaming); None for a task
  with no data set."""
  if "data" not in config:
    return None
  if config.data.normalize == "none":
    # No examples: the task reads only the class names.
    return data.Splits(train={}, validation=None, test={},
                       label_names=label_names and tuple(label_names))
  data_config = config.data.copy_and_resolve_references()
  data_config.pipeline = "streaming"
  try:
    return data.load(data_config, config.seed)
  except (ConfigError, DataError) as error:
    raise DataError(f"data set {config.data.name!r} is needed for the train statistics that "
                    f"standardise inputs (config.data.normalize={config.data.normalize!r}): "
                    f"{error}") from None


def _schedule_steps(config: ml_collections.ConfigDict, steps: int) -> int:
  """A `total_steps` for `tasks.build`: it shapes only learning-rate schedules, which need more
  steps than their warm-up."""
  warmups = [section.warmup_steps for section in optim.sections(config).values()]
  return max(steps, 1, *(warmup + 1 for warmup in warmups))


def _restore(checkpointer: checkpoint.Checkpointer, step: int, abstract_state: Any) -> Any:
  """Checkpoint `step` in the structure of `abstract_state`, on this process's first device."""
  where = f"checkpoint {step} in {checkpointer.directory}"
  try:
    checkpoint.check_fits(abstract_state, checkpointer.shapes(step), where)
    on_one_device = jax.sharding.SingleDeviceSharding(jax.devices()[0])
    return checkpointer.restore(step, checkpoint.abstract_like(abstract_state, on_one_device))[0]
  except checkpoint.Mismatch as error:
    raise ConfigError(f"{error}: it does not fit the run's config.json") from None
  except Exception as error:  # any other failure to read is damage
    raise DataError(f"{where} cannot be read ({type(error).__name__}); it is damaged") from None

"""The task registry: `config.task` names a module with `build(config, data, total_steps) ->
Task` and `validate(config)`; the contract itself is `dljax.tasks.task`."""

import types

import ml_collections

from dljax.data import Splits
from dljax.registry import lookup
from dljax.tasks import (
  autoencoder,
  classification,
  clock,
  dqn,
  gan,
  image_to_image,
  language_model,
  pix2pix,
  sentiment,
  time_series,
  vae,
)
from dljax.tasks.task import Task

# name -> the task's module (`build`, `validate`).
TASKS: dict[str, types.ModuleType] = {
    "autoencoder": autoencoder,
    "classification": classification,
    "clock": clock,
    "dqn": dqn,
    "gan": gan,
    "language_model": language_model,
    "sentiment": sentiment,
    "time_series": time_series,
    "image_to_image": image_to_image,
    "pix2pix": pix2pix,
    "vae": vae,
}


def build(config: ml_collections.ConfigDict, data: Splits | None, total_steps: int) -> Task:
  return lookup(TASKS, config.task, "config.task", "task").build(config, data, total_steps)


def task_config(name: str) -> ml_collections.ConfigDict | None:
  """The task's own config section at its defaults (`config.<name>`), if it has one."""
  module = lookup(TASKS, name, "config.task", "task")
  return module.task_config() if hasattr(module, "task_config") else None


def validate(config: ml_collections.ConfigDict) -> None:
  """The task's own checks (its losses, outputs, ...), before any data is read."""
  lookup(TASKS, config.task, "config.task", "task").validate(config)

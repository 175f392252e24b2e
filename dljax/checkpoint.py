"""Orbax checkpoints of a run: the task state plus the JSON the trainer needs to resume exactly.

A checkpoint is written at every evaluation, on SIGTERM and at the end. It holds the task state
(params, optimiser state, BatchNorm statistics, ...) and `meta`: the step, the best validation,
the early stopping state and the seconds trained so far. The RNG and the data order are pure
functions of (seed, step), and the seed is the config's (which a resumption checks against
config.json), so the step is all it takes to continue with the same batches and the same dropout
masks.

Which checkpoints are kept is one rule, here: the two latest (a damaged latest one leaves the one
before it to resume from) and the one the trainer selected as best, whichever step that is; the
trainer names it with every save. Orbax's own BestN is not used: it ranked ties and NaN its own
way and could delete the checkpoint the trainer meant to test.
"""

import dataclasses
import os
from collections.abc import Sequence
from typing import Any

import jax
import numpy as np
import orbax.checkpoint as ocp
from absl import logging
from etils import epath
from jax.experimental import multihost_utils
from orbax.checkpoint import checkpoint_managers as policies

KEEP_LATEST = 2


@dataclasses.dataclass
class _KeepLatestAndBest(policies.PreservationPolicy):
  """Orbax preservation policy: the `latest` newest checkpoints, and step `best` if set."""
  latest: int
  best: int | None = None

  def should_preserve(self, checkpoints: Sequence[policies.PolicyCheckpointInfo], *,
                      context: policies.PreservationContext) -> Sequence[bool]:
    del context
    newest = sorted(c.step for c in checkpoints)[-self.latest:]
    return [c.step in newest or c.step == self.best for c in checkpoints]


class Checkpointer:
  """Saves asynchronously (training goes on while files are written); restores onto a mesh."""

  def __init__(self, directory: str):
    self._keep = _KeepLatestAndBest(latest=KEEP_LATEST)
    self.directory = os.path.abspath(directory)  # Orbax's array writer refuses relative paths
    self._manager = ocp.CheckpointManager(
        self.directory,
        options=ocp.CheckpointManagerOptions(preservation_policy=self._keep,
                                             enable_async_checkpointing=True))

  def latest_step(self) -> int | None:
    return self._manager.latest_step()

  def all_steps(self) -> list[int]:
    return sorted(self._manager.all_steps())

  def delete_after(self, step: int) -> None:
    """Drops the checkpoints of steps after `step` (a resume from `step` will make them again)."""
    for later in self.all_steps():
      if later > step:
        self._manager.delete(later)

  def save(self, step: int, state: Any, meta: dict, best_step: int | None) -> None:
    """Saves `state` and `meta` as step `step`; `best_step` is the checkpoint to keep as best."""
    self._keep.best = best_step
    self._manager.save(
        step, args=ocp.args.Composite(state=ocp.args.StandardSave(_on_host(state)),
                                      meta=ocp.args.JsonSave(meta)),
        force=True)

  def restore(self, step: int, abstract_state: Any) -> tuple[Any, dict]:
    """Restores `step` into arrays shaped and sharded like `abstract_state` (ShapeDtypeStructs)."""
    restored = self._manager.restore(
        step,
        args=ocp.args.Composite(
            state=ocp.args.StandardRestore(abstract_state), meta=ocp.args.JsonRestore()))
    return restored["state"], restored["meta"]

  def restore_meta(self, step: int) -> dict:
    """Only the JSON part of checkpoint `step`."""
    return self._manager.restore(step, args=ocp.args.Composite(meta=ocp.args.JsonRestore()))["meta"]

  def newest_intact(self, abstract_state: Any, at_most: int | None = None,
                    ) -> tuple[int, Any, dict] | None:
    """The newest checkpoint (at or before step `at_most`) that restores, as (step, state, meta).

    A damaged one (truncated, garbled, half-deleted by hand) is passed over with a one-line
    warning and set aside as `STEP.damaged` (not deleted: a person may want to look), so the
    steps after the one resumed from are made again. Raises
    `Mismatch` if a checkpoint reads but does not fit `abstract_state` (another model): that is
    a config change, not damage. None if no checkpoint restores.
    """
    for step in reversed(self.all_steps()):
      if at_most is not None and step > at_most:
        continue
      check_fits(abstract_state, self.shapes(step), f"checkpoint {step} in {self.directory}")
      try:
        return (step, *self.restore(step, abstract_state))
      except Exception as error:  # any failure to read is damage
        logging.warning("checkpoint %d in %s is damaged (%s: %s); set aside as %d.damaged, "
                        "trying the one before it", step, self.directory, type(error).__name__,
                        _first_line(error), step)
        self._set_aside(step)
    return None

  def _set_aside(self, step: int) -> None:
    if jax.process_index() == 0:
      path = os.path.join(self.directory, str(step))
      os.replace(path, next(f"{path}.damaged{suffix}" for suffix in ("", *range(1, 1000))
                            if not os.path.exists(f"{path}.damaged{suffix}")))
    if jax.process_count() > 1:
      multihost_utils.sync_global_devices(f"dljax: checkpoint {step} set aside")
    self._manager.reload()

  def shapes(self, step: int) -> dict[str, tuple[int, ...]] | None:
    """{variable path: shape} of checkpoint `step`'s state; None if its metadata is unreadable."""
    try:
      metadata = _state_metadata(os.path.join(self.directory, str(step), "state"))
    except Exception:  # damaged: `newest_intact` finds out when it restores
      return None
    return {path: tuple(m.shape) for path, m in flat(metadata).items()}

  def wait(self) -> None:
    """Blocks until the last async save is on disk."""
    self._manager.wait_until_finished()

  def close(self) -> None:
    self._manager.close()


def _on_host(state: Any) -> Any:
  """`state` with its arrays that this process holds whole copied to the host (numpy).

  Orbax copies a save's arrays to the host before it returns anyway, and its save of host arrays
  cost half the CPU (a DQN trial's state, 45 arrays: 60 against 115 ms), which the DQN study
  pays for 128 trials at once. Random keys and arrays spread over processes stay as they are.
  """
  def host(x):
    return np.asarray(x) if isinstance(x, jax.Array) and x.is_fully_addressable and not (
        jax.dtypes.issubdtype(x.dtype, jax.dtypes.prng_key)) else x

  return jax.tree.map(host, state)


class Mismatch(ValueError):
  """Saved variables do not fit the state a config builds; the message names the first one."""


def check_fits(abstract_state: Any, saved: dict[str, tuple[int, ...]] | None, where: str) -> None:
  """Raises Mismatch naming the first variable of `abstract_state` missing from `saved` or of
  another shape there (`saved` None: unknown, nothing to check)."""
  if saved is None:
    return
  for path, leaf in flat(abstract_state).items():
    if path not in saved:
      raise Mismatch(f"{where} has no {path} (it holds {_some(saved)})")
    if tuple(saved[path]) != tuple(leaf.shape):
      raise Mismatch(f"{where} has {path} of shape {tuple(saved[path])}, this config's is "
                     f"{tuple(leaf.shape)}")


def flat(tree: Any) -> dict[str, Any]:
  """{'/'-joined path: leaf} of a state (struct dataclasses, dicts, optax states alike)."""
  return {variable_path(path): leaf for path, leaf in jax.tree_util.tree_flatten_with_path(tree)[0]}


def variable_path(key_path: jax.tree_util.KeyPath) -> str:
  """'params/Dense_0/kernel': a leaf's path in a state, as `flat` names it."""
  return jax.tree_util.keystr(key_path, simple=True, separator="/")


def read_state(directory: str, step: int) -> dict[str, np.ndarray]:
  """Checkpoint `step`'s state in `directory` as {'/'-joined path: numpy array}, on the host,
  whatever the devices that wrote it (for loading another run's weights)."""
  path = os.path.join(os.path.abspath(directory), str(step), "state")
  on_host = jax.sharding.SingleDeviceSharding(jax.local_devices(backend="cpu")[0])
  target = jax.tree.map(lambda m: jax.ShapeDtypeStruct(m.shape, m.dtype, sharding=on_host),
                        _state_metadata(path))
  restored = ocp.StandardCheckpointer().restore(path, target)
  return {name: np.asarray(value) for name, value in flat(restored).items()}


def _state_metadata(path: str) -> Any:
  """The tree of array metadata (shapes, dtypes) of a checkpoint's saved state at `path`."""
  # The handler's own metadata: the checkpointer's also looks for (and warns about) a step-level
  # metadata file that a manager's items do not have.
  return ocp.StandardCheckpointHandler().metadata(epath.Path(path)).tree


def read_meta(directory: str, step: int) -> dict | None:
  """Checkpoint `step`'s meta JSON in `directory` without a manager (another run's workdir)."""
  try:
    return ocp.Checkpointer(ocp.JsonCheckpointHandler()).restore(
        os.path.join(os.path.abspath(directory), str(step), "meta"))
  except Exception:  # unreadable: the caller falls back
    return None


def abstract_like(state: Any, sharding: jax.sharding.Sharding) -> Any:
  """ShapeDtypeStructs of `state` (arrays or structs) carrying `sharding`, the restore target."""
  return jax.tree.map(
      lambda x: jax.ShapeDtypeStruct(x.shape, x.dtype, sharding=sharding), state)


def _some(saved: dict[str, Any], count: int = 3) -> str:
  names = sorted(saved)
  return ", ".join(names[:count]) + (f", ... ({len(names)} in all)" if len(names) > count else "")


def _first_line(error: Exception) -> str:
  return next((line.strip() for line in str(error).splitlines() if line.strip()), "")

"""Orbax checkpoints of a run: the task state plus the JSON the trainer needs to resume exactly.

A checkpoint is written at every evaluation, on SIGTERM and at the end. It holds the task state
(params, optimiser state, BatchNorm statistics, ...) and `meta`: the step, the seed, the early
stopping state and the seconds trained so far. The RNG and the data order are pure functions of
(seed, step), so step and seed are all it takes to continue with the same batches and the same
dropout masks. Two checkpoints are kept: the latest, and the best by the validation metric (trials
trained together keep the two latest).
"""

import os
from typing import Any

import jax
import orbax.checkpoint as ocp
from orbax.checkpoint import checkpoint_managers as policies


class Checkpointer:
  """Saves asynchronously (training goes on while files are written); restores onto a mesh."""

  def __init__(self, directory: str, best_metric: str | None, best_mode: str,
               keep_latest: int = 1):
    keep = [policies.LatestN(n=keep_latest)]
    if best_metric:
      keep.append(policies.BestN(
          get_metric_fn=lambda metrics: metrics[best_metric], reverse=best_mode == "min", n=1))
    self._manager = ocp.CheckpointManager(
        os.path.abspath(directory),  # Orbax's array writer refuses relative paths
        options=ocp.CheckpointManagerOptions(
            preservation_policy=policies.AnyPreservationPolicy(keep),
            # Without best_fn Orbax does not write the metrics BestN ranks by.
            best_fn=(lambda metrics: metrics[best_metric]) if best_metric else None,
            best_mode=best_mode,
            enable_async_checkpointing=True))

  def latest_step(self) -> int | None:
    return self._manager.latest_step()

  def all_steps(self) -> list[int]:
    return list(self._manager.all_steps())

  def delete_after(self, step: int) -> None:
    """Drops the checkpoints of steps after `step` (a resume from `step` will make them again)."""
    for later in self.all_steps():
      if later > step:
        self._manager.delete(later)

  def save(self, step: int, state: Any, meta: dict, metrics: dict[str, float] | None) -> None:
    self._manager.save(
        step,
        args=ocp.args.Composite(state=ocp.args.StandardSave(state), meta=ocp.args.JsonSave(meta)),
        metrics=metrics,
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

  def wait(self) -> None:
    """Blocks until the last async save is on disk."""
    self._manager.wait_until_finished()

  def close(self) -> None:
    self._manager.close()


def abstract_like(state: Any, sharding: jax.sharding.Sharding) -> Any:
  """ShapeDtypeStructs of `state` (arrays or structs) carrying `sharding`, the restore target."""
  return jax.tree.map(
      lambda x: jax.ShapeDtypeStruct(x.shape, x.dtype, sharding=sharding), state)

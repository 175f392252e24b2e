"""Starting a run from another run's weights: `config.init_from`.

The source is another dljax workdir (its best or last checkpoint) or a weights file: a `.npz`
whose keys are '/'-joined variable paths as a state holds them (`params/Conv_0/kernel`,
`batch_stats/BatchNorm_0/mean`), or a Keras `.h5` (Keras' ImageNet files), read by layer name
(`dljax.weights`). After the task's `init`, outside jit, every variable of the new
state whose path matches `load` and not `skip` is replaced by the source's; the rest (a new head,
the optimiser's moments) keeps its fresh values. A selected variable the source lacks, or has in
another shape, stops the run with one line naming it. Freezing what was loaded is the
optimiser's `freeze` pattern (BatchNorm layers frozen with it run in inference mode).
"""

import json
import os
import re
from typing import Any

import jax
import ml_collections
import numpy as np

from dljax import checkpoint, weights
from dljax import workdir as workdir_lib
from dljax.errors import ConfigError

LOADABLE = ("params/", "batch_stats/")  # model variables; never optimiser state


def read_source(config: ml_collections.ConfigDict,
                shapes: dict[str, tuple[int, ...]]) -> dict[str, np.ndarray]:
  """{variable path: array} of `config.path`: a workdir, a Keras .h5 file (read for a model
  whose variables have `shapes`), else (`config_lib.validate` checked) a .npz file."""
  path = config.path
  if os.path.isdir(path):
    return checkpoint.read_state(os.path.join(path, "checkpoints"), _source_step(path,
                                                                                config.checkpoint))
  if path.endswith(".h5"):
    return weights.to_variables(weights.read_h5(path), shapes, path)
  with np.load(path) as arrays:
    return {name: arrays[name] for name in arrays.files}


def load_into(state: Any, config: ml_collections.ConfigDict) -> Any:
  """`state` with the variables `config` selects replaced by the source's (same shardings)."""
  loadable = {path: leaf for path, leaf in checkpoint.flat(state).items()
              if path.startswith(LOADABLE)}
  source = {path: value for path, value in read_source(
      config, {path: leaf.shape for path, leaf in loadable.items()}).items()
            if path.startswith(LOADABLE)}
  load, skip = re.compile(config.load), re.compile(config.skip) if config.skip else None
  target = {path: leaf for path, leaf in loadable.items()
            if load.search(path) and not (skip and skip.search(path))}
  if not target:
    raise ConfigError(f"config.init_from.load={config.load!r} (skip={config.skip!r}): selects "
                      "no variable of this model")
  weights.check_head(source, {path: leaf.shape for path, leaf in target.items()}, config.path)
  try:
    checkpoint.check_fits(target, {path: value.shape for path, value in source.items()},
                          config.path)
  except checkpoint.Mismatch as error:
    raise ConfigError(f"config.init_from: {error}") from None

  def replace(key_path, leaf):
    path = checkpoint.variable_path(key_path)
    if path not in target:
      return leaf
    return jax.make_array_from_process_local_data(leaf.sharding,
                                                  source[path].astype(leaf.dtype))

  return jax.tree_util.tree_map_with_path(replace, state)


def _source_step(workdir: str, which: str) -> int:
  """The checkpoint step of `workdir` that `which` ('best' or 'last') names."""
  steps = workdir_lib.saved_steps(workdir)
  if not steps:
    raise ConfigError(f"config.init_from.path={workdir!r}: has no checkpoints")
  if which == "best":
    best = _best_step(workdir, steps[-1])
    if best is not None:
      if best not in steps:
        raise ConfigError(f"config.init_from.path={workdir!r}: its best checkpoint (step {best}) "
                          "is gone; use --config.init_from.checkpoint=last")
      return best
  return steps[-1]


def _best_step(workdir: str, latest: int) -> int | None:
  """The step a run tested (results.json), else the best one its latest checkpoint records."""
  try:
    with open(os.path.join(workdir, "results.json")) as f:
      return json.load(f)["tested_step"]
  except (OSError, ValueError, KeyError):
    pass
  meta = checkpoint.read_meta(os.path.join(workdir, "checkpoints"), latest)
  return meta["best"]["step"] if meta and meta.get("best") else None

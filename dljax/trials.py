"""Trials trained together: configs that differ only in values, vmapped in one jit.

A sweep over the values of one recipe (seeds, learning rates, dropout rates, regulariser
strengths) need not pay one process and one compile per trial. The trainer stacks the trials'
states on a leading axis and vmaps every step over it: each trial's differing values enter the
step as traced scalars, substituted into the first trial's config, and the task is built from
that config inside the trace, once for all trials.

So code that builds a task must not decide anything in Python from a key of `VALUE_KEYS`; where
a value only switches work off (a rate or strength of 0), `nonzero` says whether to build it.
"""

import functools
import json
from collections.abc import Callable, Mapping, Sequence
from typing import Any

import jax
import jax.numpy as jnp
import ml_collections
import numpy as np

from dljax import workdir
from dljax.errors import ConfigError

# Keys whose values may differ between trials trained together. Every other key decides a shape,
# a structure or the data, and must be the same (tests/test_trials.py traces each of these).
VALUE_KEYS = (
    "seed",
    "model.dropout",
    "model.conv_dropout",
    "optimizer.learning_rate",
    "optimizer.end_learning_rate",
    "optimizer.momentum",
    "optimizer.b1",
    "optimizer.b2",
    "optimizer.eps",
    "optimizer.rho",
    "optimizer.l1",
    "optimizer.l2",
    "optimizer.weight_decay",
)


def is_value_key(key: str) -> bool:
  """A key of VALUE_KEYS, or the same knob of one of several optimisers (`optimizers.NAME.KNOB`)."""
  section, _, knob = key.rpartition(".")
  return key in VALUE_KEYS or (section.startswith("optimizers.") and f"optimizer.{knob}" in
                               VALUE_KEYS)


def nonzero(value: Any) -> bool:
  """False only for a number equal to 0; a traced value may be anything, so it counts as nonzero."""
  return not isinstance(value, int | float) or value != 0


def differing(configs: Sequence[ml_collections.ConfigDict]) -> dict[str, list[Any]]:
  """The keys whose values differ between `configs`, with each config's value.

  Raises a one-line ConfigError if the configs cannot train together: a differing key outside
  VALUE_KEYS, a value that is not a number, or seeds that differ where the seed also draws the
  validation split.
  """
  flats = [workdir.flatten(config.to_dict()) for config in configs]
  keys = sorted(set().union(*flats))
  found = {key: [flat.get(key) for flat in flats] for key in keys
           if any(flat.get(key) != flats[0].get(key) for flat in flats)}
  for key, values in found.items():
    if not is_value_key(key):
      raise ConfigError(f"config.{key} differs between trials trained together ({values[0]!r}, "
                        f"{values[1]!r}, ...); only these may: {', '.join(VALUE_KEYS)}")
    if not all(isinstance(v, int | float) and not isinstance(v, bool) for v in values):
      raise ConfigError(f"config.{key}: trials trained together need numbers, got {values!r}")
  if "seed" in found and "data" in configs[0] and configs[0].data.validation == "random":
    raise ConfigError("config.seed differs between trials trained together, but "
                      "config.data.validation='random' draws the validation split from it")
  return found


def group_key(config: ml_collections.ConfigDict) -> str:
  """Equal for configs that can train together: the config without VALUE_KEYS, as JSON."""
  flat = {key: value for key, value in workdir.flatten(config.to_dict()).items()
          if not is_value_key(key)}
  return json.dumps(flat, sort_keys=True, default=repr)


def stacked_values(configs: Sequence[ml_collections.ConfigDict]) -> dict[str, np.ndarray]:
  """{key: the trials' values, shape [K]} for the differing keys the task reads (not the seed,
  which the trainer turns into random keys itself)."""
  return {key: np.asarray(values, np.float32) for key, values in differing(configs).items()
          if key != "seed"}


def with_values(config: ml_collections.ConfigDict,
                values: Mapping[str, Any]) -> ml_collections.ConfigDict:
  """A copy of `config` with `values` ({dotted key: value}, e.g. traced scalars) put in."""
  config = ml_collections.ConfigDict(config.to_dict())
  with config.ignore_type():
    for key, value in values.items():
      *groups, name = key.split(".")
      holder = config
      for group in groups:
        holder = holder[group]
      holder[name] = value
  return config


class Stack:
  """The trials' leading axis on states, random keys and per-trial batches.

  With one trial there is no such axis: its step is the plain step, not a vmap over an axis of
  size 1, which XLA compiled 20-25% slower for the MNIST MLP on CPU (measured: 6.1-6.5 against
  4.9 ms a step).
  """

  def __init__(self, size: int, sharding: jax.sharding.Sharding):
    self.size = size
    self.sharding = sharding  # of stacked states
    self._take = jax.jit(lambda tree, k: jax.tree.map(lambda x: x[k], tree), out_shardings=sharding)

  def vmap(self, fn: Callable, in_axes: tuple) -> Callable:
    """`fn` mapped over the trials' axis of the arguments whose in_axes are 0."""
    return fn if self.size == 1 else jax.vmap(fn, in_axes=in_axes)

  def stack(self, trees: Sequence[Any], sharding: jax.sharding.Sharding) -> Any:
    """One tree per trial -> one tree whose leaves have the trials' axis first."""
    return trees[0] if self.size == 1 else _stacker(sharding)(*trees)

  def take(self, tree: Any, k: int) -> Any:
    """Trial `k`'s part of a stacked tree."""
    return tree if self.size == 1 else self._take(tree, k)

  def one(self, abstract: Any) -> Any:
    """ShapeDtypeStructs of one trial's part of a stacked tree's ShapeDtypeStructs."""
    if self.size == 1:
      return abstract
    return jax.tree.map(lambda x: jax.ShapeDtypeStruct(x.shape[1:], x.dtype, sharding=x.sharding),
                        abstract)

  def per_trial(self, value: Any) -> np.ndarray:
    """A stacked metric on the host as one value per trial (shape [K], also for one trial)."""
    return np.reshape(np.asarray(value), (self.size,))


def stack_leading(arrays: Sequence[jax.Array]) -> jax.Array:
  """Global arrays of one sharding stacked on a new leading axis, which no device splits."""
  spec = arrays[0].sharding.spec
  return _stacker(jax.sharding.NamedSharding(arrays[0].sharding.mesh,
                                             jax.sharding.PartitionSpec(None, *spec)))(*arrays)


@functools.cache
def _stacker(sharding: jax.sharding.Sharding) -> Callable:
  return jax.jit(lambda *trees: jax.tree.map(lambda *xs: jnp.stack(xs), *trees),
                 out_shardings=sharding)

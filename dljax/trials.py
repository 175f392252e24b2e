"""Trials trained together: configs that differ only in values, vmapped in one jit.

A sweep over the values of one recipe (seeds, learning rates, dropout rates, regulariser
strengths, and a few named choices such as DQN's policy) need not pay one process and one
compile per trial. The trainer stacks the trials' states on a leading axis and vmaps every step
over it: each trial's differing values enter the step as traced scalars, substituted into the
first trial's config, and the task is built from that config inside the trace, once for all
trials.

So code that builds a task must not decide anything in Python from a key of `VALUE_KEYS`; where
a value only switches work off (a rate or strength of 0), `nonzero` says whether to build it.
A key of `CHOICE_KEYS` holds its string where all trials agree (the task builds that choice
alone, as before), and a traced index into its choices where they differ: the task asks
`options` which choices to build and `choose` for a trial's result of its own.
"""

import functools
import json
from collections.abc import Callable, Mapping, Sequence
from typing import Any, TypeVar

import jax
import jax.numpy as jnp
import ml_collections
import numpy as np

from dljax import sharding, workdir
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
# Keys with a finite set of choices (strings) that may differ between trials trained together;
# where they do, each trial's choice is its index in this tuple. Every choice is computed for
# every trial and each trial's selected (under vmap a switch runs all its branches anyway), so
# a choice belongs here when its branches are small beside the rest of the step.
CHOICE_KEYS = {
    "dqn.policy": ("epsilon_greedy", "softmax"),
    "dqn.target": ("q_learning", "sarsa"),
}
T = TypeVar("T")


def is_value_key(key: str) -> bool:
  """A key of VALUE_KEYS, or the same knob of one of several optimisers (`optimizers.NAME.KNOB`)."""
  section, _, knob = key.rpartition(".")
  return key in VALUE_KEYS or (section.startswith("optimizers.") and f"optimizer.{knob}" in
                               VALUE_KEYS)


def may_differ(key: str) -> bool:
  """A key whose values may differ between trials trained together: a value or a choice key."""
  return is_value_key(key) or key in CHOICE_KEYS


def options(value: str | jax.Array, choices: Sequence[str]) -> tuple[str, ...]:
  """The `choices` (a tuple of CHOICE_KEYS) that a config's `value` may be in this trace: the
  one it names where the trials agree, all of them where it is a traced index (they differ)."""
  return (value,) if isinstance(value, str) else tuple(choices)


def choose(value: str | jax.Array, choices: Sequence[str], compute: Callable[[str], T]) -> T:
  """compute(value) for a string; for a traced index into `choices`, compute(choice) for each
  choice, and of those results (trees of one structure) the indexed one, leaf by leaf."""
  results = [compute(choice) for choice in options(value, choices)]
  if isinstance(value, str):
    return results[0]
  return jax.tree.map(lambda *cases: jax.lax.select_n(value, *cases), *results)


def nonzero(value: Any) -> bool:
  """False only for a number equal to 0; a traced value may be anything, so it counts as nonzero."""
  return not isinstance(value, int | float) or value != 0


def differing(configs: Sequence[ml_collections.ConfigDict]) -> dict[str, list[Any]]:
  """The keys whose values differ between `configs`, with each config's value.

  Raises a one-line ConfigError if the configs cannot train together: a differing key outside
  VALUE_KEYS and CHOICE_KEYS, a value key's value that is not a number, a choice key's value that
  is not one of its choices, or seeds that differ where the seed also draws the validation split.
  """
  flats = [workdir.flatten(config.to_dict()) for config in configs]
  keys = sorted(set().union(*flats))
  found = {key: [flat.get(key) for flat in flats] for key in keys
           if any(flat.get(key) != flats[0].get(key) for flat in flats)}
  for key, values in found.items():
    if key in CHOICE_KEYS:
      if unknown := [v for v in values if v not in CHOICE_KEYS[key]]:
        raise ConfigError(f"config.{key}={unknown[0]!r}: allowed: {', '.join(CHOICE_KEYS[key])}")
      continue
    if not is_value_key(key):
      raise ConfigError(f"config.{key} differs between trials trained together ({values[0]!r}, "
                        f"{values[1]!r}, ...); only these may: "
                        f"{', '.join((*VALUE_KEYS, *CHOICE_KEYS))}")
    if not all(isinstance(v, int | float) and not isinstance(v, bool) for v in values):
      raise ConfigError(f"config.{key}: trials trained together need numbers, got {values!r}")
  if "seed" in found and "data" in configs[0] and configs[0].data.validation == "random":
    raise ConfigError("config.seed differs between trials trained together, but "
                      "config.data.validation='random' draws the validation split from it")
  return found


def group_key(config: ml_collections.ConfigDict) -> str:
  """Equal for configs that can train together: the config without the keys that may differ, as
  JSON."""
  flat = {key: value for key, value in workdir.flatten(config.to_dict()).items()
          if not may_differ(key)}
  return json.dumps(flat, sort_keys=True, default=repr)


def stacked_values(configs: Sequence[ml_collections.ConfigDict]) -> dict[str, np.ndarray]:
  """{key: the trials' values, shape [K]} for the differing keys the task reads (not the seed,
  which the trainer turns into random keys itself): numbers as float32, choices as the int32
  index of each trial's choice in CHOICE_KEYS."""
  return {key: np.asarray([CHOICE_KEYS[key].index(v) for v in values], np.int32)
          if key in CHOICE_KEYS else np.asarray(values, np.float32)
          for key, values in differing(configs).items() if key != "seed"}


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

  `split` splits the stacked states' trials' axis over the mesh's devices (each device steps its
  share of the trials) instead of replicating them; one trial's part is replicated either way.
  """

  def __init__(self, size: int, mesh: jax.sharding.Mesh, split: bool = False):
    self.size = size
    self.split = split
    self.trial_sharding = sharding.replicated(mesh)  # of one trial's part
    self.sharding = sharding.data_sharded(mesh) if split else self.trial_sharding  # of stacks
    take = lambda tree, k: jax.tree.map(lambda x: x[k], tree)
    self._take = jax.jit(take, out_shardings=self.trial_sharding)
    self._take_here = jax.jit(take)  # on the device its argument is on

  def vmap(self, fn: Callable, in_axes: tuple) -> Callable:
    """`fn` mapped over the trials' axis of the arguments whose in_axes are 0."""
    return fn if self.size == 1 else jax.vmap(fn, in_axes=in_axes)

  def stack(self, trees: Sequence[Any], sharding: jax.sharding.Sharding) -> Any:
    """One tree per trial -> one tree whose leaves have the trials' axis first."""
    if self.size == 1:
      return trees[0]
    if self.split:  # trials taken from a split stack are each on their own device
      trees = [jax.device_put(tree, self.trial_sharding) for tree in trees]
    return _stacker(sharding)(*trees)

  def take(self, tree: Any, k: int) -> Any:
    """Trial `k`'s part of a stacked tree: replicated, or, split, on the device that holds it."""
    if self.size == 1:
      return tree
    if not self.split:
      return self._take(tree, k)
    # Taken from the global stack, XLA gathered every trial's state onto every device first
    # (DQN's 128 trials: 0.1 s a trial, at each evaluation and checkpoint). Every leaf is split
    # alike, so the shard that holds trial k is the same one of each.
    shards = jax.tree.leaves(tree)[0].addressable_shards
    index = next(i for i, shard in enumerate(shards)
                 if (shard.index[0].start or 0) <= k < shard.index[0].stop)
    here = jax.tree.map(lambda x: x.addressable_data(index), tree)
    return self._take_here(here, k - (shards[index].index[0].start or 0))

  def one(self, abstract: Any) -> Any:
    """ShapeDtypeStructs of one trial's part of a stacked tree's ShapeDtypeStructs."""
    if self.size == 1:
      return abstract
    return jax.tree.map(lambda x: jax.ShapeDtypeStruct(x.shape[1:], x.dtype,
                                                       sharding=self.trial_sharding), abstract)

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

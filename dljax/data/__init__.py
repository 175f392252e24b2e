"""Data sets as whole splits in memory, and the train / validation / test split the reports use.

A config's `data.name` picks a loader from `DATASETS`; a loader returns the data set's own splits
('train', 'test') as dicts of numpy arrays with a leading example axis. `load` then carves out
the validation split as `data.validation` says.
"""

import dataclasses
import functools

import ml_collections
import numpy as np

from dljax.data import tfds_io
from dljax.errors import ConfigError
from dljax.registry import lookup

Arrays = dict[str, np.ndarray]


def _tfds_loader(name: str, config: ml_collections.ConfigDict) -> dict[str, Arrays]:
  return {split: tfds_io.read_split(name, split, config.dir or None) for split in ("train", "test")}


DATASETS = {
    "mnist": functools.partial(_tfds_loader, "mnist"),
    "fashion_mnist": functools.partial(_tfds_loader, "fashion_mnist"),
    "cifar10": functools.partial(_tfds_loader, "cifar10"),
}

VALIDATION_MODES = ("test", "first", "last", "random", "none")
NORMALIZATIONS = ("none", "per_channel")


def data_config(name: str, **overrides) -> ml_collections.ConfigDict:
  """Every data knob with its default, so any of them can be overridden from the command line."""
  config = ml_collections.ConfigDict(dict(
      name=name,
      dir="",  # '' = $DLJAX_DATA_DIR, else the TFDS default (~/tensorflow_datasets)
      # Where validation examples come from: 'test' validates on the test set (as several
      # reports did), 'first' / 'last' / 'random' hold out `validation_size` train examples
      # (a count, or a fraction when < 1), 'none' skips validation.
      validation="test",
      validation_size=0.0,
      train_limit=0,  # keep only the first N train examples (0 = all): smoke runs
      eval_limit=0,  # keep only the first N validation and test examples (0 = all)
      normalize="none",  # 'per_channel': standardise with the train split's channel mean/std
      augment=dict(zoom=0.0, rotation=0.0, translation=0.0, flip="", pad_crop=0),
  ))
  config.update(overrides)
  return config


@dataclasses.dataclass(frozen=True)
class Splits:
  train: Arrays
  validation: Arrays | None
  test: Arrays


def _take(arrays: Arrays, index: np.ndarray) -> Arrays:
  return {key: value[index] for key, value in arrays.items()}


def _num_examples(arrays: Arrays) -> int:
  return len(next(iter(arrays.values())))


def validate(config: ml_collections.ConfigDict) -> None:
  lookup(DATASETS, config.name, "config.data.name", "data set")
  if config.validation not in VALIDATION_MODES:
    raise ConfigError(f"config.data.validation={config.validation!r}: allowed: "
                      f"{', '.join(VALIDATION_MODES)}")
  if config.validation in ("first", "last", "random") and config.validation_size <= 0:
    raise ConfigError(f"config.data.validation_size={config.validation_size}: must be > 0 "
                      f"when validation={config.validation!r}")
  if config.normalize not in NORMALIZATIONS:
    raise ConfigError(f"config.data.normalize={config.normalize!r}: allowed: "
                      f"{', '.join(NORMALIZATIONS)}")
  for key in ("train_limit", "eval_limit"):
    if config[key] < 0:
      raise ConfigError(f"config.data.{key}={config[key]}: must be >= 0 (0 = all)")


def load(config: ml_collections.ConfigDict, seed: int) -> Splits:
  """Loads `config.name` and splits it; `seed` orders the 'random' validation hold-out."""
  raw = lookup(DATASETS, config.name, "config.data.name", "data set")(config)
  train, test = raw["train"], raw["test"]
  num_train = _num_examples(train)
  size = config.validation_size
  num_validation = round(size * num_train) if 0 < size < 1 else int(size)
  if config.validation in ("first", "last", "random") and not 0 < num_validation < num_train:
    raise ConfigError(f"config.data.validation_size={size}: holds out {num_validation} of "
                      f"{num_train} train examples; must leave both parts non-empty")
  order = np.arange(num_train)
  if config.validation == "random":
    order = np.random.default_rng(seed).permutation(num_train)
  if config.validation == "last":
    order = np.roll(order, num_validation)  # the held-out tail moves to the front
  validation = {"test": test, "none": None}.get(config.validation)
  if config.validation in ("first", "last", "random"):
    validation = _take(train, order[:num_validation])
    train = _take(train, np.sort(order[num_validation:]))

  def limit(arrays, n):
    if arrays is None or not n:
      return arrays
    return _take(arrays, np.arange(min(n, _num_examples(arrays))))

  return Splits(train=limit(train, config.train_limit),
                validation=limit(validation, config.eval_limit),
                test=limit(test, config.eval_limit))

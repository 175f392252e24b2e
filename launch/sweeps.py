"""Sweeps as data: lists of override dicts, built by small composable helpers.

A trial is a dict of overrides, `{'optimizer.name': 'adam', 'optimizer.learning_rate': 1e-3}`,
whose keys are dotted config paths as `dljax.config_lib.override` takes them. The key
`'config_arg'` instead selects a config argument (`'aug=light'`), for variants that are config
arguments rather than fields. A sweep is any iterable of trials; a config file offers sweeps as
functions `sweep_NAME()` returning (or yielding) one, and `python -m launch.sweep` runs it.

Keys are dotted, so pass them to the helpers with `**{...}`:

    grid(**{'optimizer.name': ['sgd', 'adam'], 'model.dropout': [0.0, 0.5]})  # 4 trials
"""

import hashlib
import itertools
import json
import math
import random
import re
from collections.abc import Callable, Iterable, Mapping, Sequence
from typing import Any

Trial = dict[str, Any]
Distribution = Callable[[random.Random], Any] | tuple[float, float, str]

CONFIG_ARG = "config_arg"  # the special key: appended to the config file's `:arg`
MAX_NAME_LENGTH = 120  # longer names are cut and suffixed with a hash of the overrides
_UNSAFE = re.compile(r"[^A-Za-z0-9_.,=+-]+")  # runs of these become '_' in trial names
SCALES = ("linear", "log")


def grid(**axes: Sequence[Any]) -> list[Trial]:
  """Every combination of the axes' values (the last axis varies fastest)."""
  keys = list(axes)
  return [dict(zip(keys, values, strict=True)) for values in itertools.product(*axes.values())]


def one_factor(reference: Mapping[str, Any], **alternatives: Sequence[Any]) -> list[Trial]:
  """The reference, then each factor changed alone to each of its other values.

  The classic one-factor-at-a-time study: every factor needs a value in `reference`, so the
  reference trial is run once, however many factors list its value among their alternatives.
  """
  if missing := [key for key in alternatives if key not in reference]:
    raise ValueError(f"one_factor: {missing[0]!r} has alternatives but no reference value")
  trials = [dict(reference)]
  for key, values in alternatives.items():
    trials.extend({**reference, key: value} for value in values if value != reference[key])
  return trials


def zip_(**axes: Sequence[Any]) -> list[Trial]:
  """The axes' values taken together, position by position; all axes need the same length."""
  lengths = {key: len(values) for key, values in axes.items()}
  if len(set(lengths.values())) > 1:
    raise ValueError(f"zip_: axes of different lengths {lengths}")
  keys = list(axes)
  return [dict(zip(keys, values, strict=True)) for values in zip(*axes.values(), strict=True)]


def random_search(seed: int, n: int, **distributions: Distribution) -> list[Trial]:
  """`n` trials drawn from `distributions`, the same ones for the same seed.

  A distribution is `(low, high, 'linear' | 'log')`, a float uniform in [low, high) (in log
  space for 'log'), rounded to 4 significant digits so trial names stay readable; or a callable
  taking a `random.Random`, e.g. `lambda rng: rng.choice(['sgd', 'adam'])`.
  """
  for key, distribution in distributions.items():
    if not callable(distribution) and (len(distribution) != 3 or distribution[2] not in SCALES):
      raise ValueError(f"random_search: {key}={distribution!r}: expected a callable or "
                       f"(low, high, {' | '.join(map(repr, SCALES))})")
  rng = random.Random(seed)
  return [{key: _draw(rng, distribution) for key, distribution in distributions.items()}
          for _ in range(n)]


def _draw(rng: random.Random, distribution: Distribution) -> Any:
  if callable(distribution):
    return distribution(rng)
  low, high, scale = distribution
  value = (math.exp(rng.uniform(math.log(low), math.log(high))) if scale == "log"
           else rng.uniform(low, high))
  return float(f"{value:.4g}")


def chain(*sweeps: Iterable[Trial]) -> list[Trial]:
  """The trials of each sweep in turn, e.g. two one-factor studies run as one sweep."""
  return [dict(trial) for trial in itertools.chain(*sweeps)]


def value_text(value: Any) -> str:
  """An override value as command-line text: strings as they are, anything else as its repr."""
  return value if isinstance(value, str) else repr(value)


def trial_name(overrides: Mapping[str, Any]) -> str:
  """A readable, filesystem-safe, deterministic name: 'optimizer.name=adam,model.dropout=0.5'.

  Spaces are dropped, and runs of other characters outside [A-Za-z0-9_.,=+-] become '_'. A name
  that lost characters that way, or is longer than MAX_NAME_LENGTH, gets a hash of the overrides
  appended, so distinct trials keep distinct names.
  """
  if not overrides:
    return "default"
  parts = [f"{key}={value_text(value)}" for key, value in overrides.items()]
  name = ",".join(f"{_safe(key)}={_safe(value_text(value))}" for key, value in overrides.items())
  if name == ",".join(parts) and len(name) <= MAX_NAME_LENGTH:
    return name
  digest = hashlib.sha1(json.dumps(parts).encode()).hexdigest()[:8]
  return f"{name[: MAX_NAME_LENGTH - 9]}-{digest}"


def _safe(text: str) -> str:
  return _UNSAFE.sub("_", text.replace(" ", "")).strip("_")


def named(trials: Iterable[Mapping[str, Any]]) -> dict[str, Trial]:
  """The trials by name, in order; raises ValueError if two trials get the same name."""
  by_name = {}
  for trial in trials:
    name = trial_name(trial)
    if name in by_name:
      raise ValueError(f"two trials are named {name!r}: {by_name[name]} and {dict(trial)}")
    by_name[name] = dict(trial)
  return by_name

"""What every config shares: the trainer's knobs with defaults, `:arg` parsing, validation.

A config file (configs/*.py) starts from `trainer_config()`, sets the experiment's recipe, and
returns the config locked, so a misspelt override is an error instead of a silently new key.
"""

import ast
import importlib.util
import math
import numbers
import os
import re
import traceback
import types
from collections.abc import Callable
from typing import Any

import jax
import ml_collections

from dljax import data, models, optim, tasks
from dljax.errors import ConfigError, require

EVAL_MODES = ("min", "max")
INIT_CHECKPOINTS = ("best", "last")


def trainer_config(task: str = "classification", **overrides) -> ml_collections.ConfigDict:
  """The trainer's knobs at their defaults, and the task's own section (`config.<task>`) at its
  defaults; a config file overrides what its recipe needs and adds `model`, `optimizer` and
  (unless the task makes its own experience) `data`."""
  config = ml_collections.ConfigDict(dict(
      seed=0,  # the root of every random stream: params, dropout, augmentation, data order
      task=task,
      batch_size=128,  # global: split over all devices of all processes
      eval_batch_size=0,  # 0 = batch_size
      num_epochs=10.0,
      num_steps=0,  # > 0 overrides num_epochs
      log_every_steps=100,  # train metrics are averaged over this many steps
      # Train steps per compiled call (a lax.scan): fewer dispatches for small, fast steps. The
      # steps and their results are the same; calls stop at log lines and evaluations.
      steps_per_call=1,
      eval_every_epochs=1.0,
      eval_every_steps=0,  # > 0 overrides eval_every_epochs
      early_stopping=dict(
          metric="loss",  # a validation metric of the task
          mode="min",  # 'min' or 'max': which direction is better
          patience=0,  # evaluations without improvement before stopping; 0 = never stop
          # Stop once the metric reaches this value (>= for 'max', <= for 'min'); None = never.
          target=ml_collections.config_dict.placeholder(float),
          restore_best=True,  # test (and leave final state) with the best validation params
      ),
      # Start from another run's weights instead of random ones (transfer learning). Loaded after
      # init, on a fresh start only: a resumed run continues from its own checkpoints.
      init_from=dict(
          path="",  # another run's workdir, a .npz of '/'-joined variable paths, a Keras .h5 file
          # (python -m dljax.weights fetch vgg16_notop); '' = none
          checkpoint="best",  # of a workdir: 'best' (its best validation state) or 'last'
          load=".*",  # regex on variable paths ('params/Dense_0/kernel', 'batch_stats/...')
          skip="",  # regex of variables not to load, e.g. the old head: 'Dense_2'
      ),
  ))
  task_config = tasks.task_config(task)
  if task_config is not None:
    config[task] = task_config
  config.update(overrides)
  return config


def parse_arg(arg: str | None, **defaults):
  """Parses a config argument like 'smoke' or 'smoke,classes=24' against typed defaults.

  A bare word sets a bool default to True; `key=value` is converted to the default's type.
  Unknown keys or unconvertible values raise a ConfigError naming them.
  """
  values = dict(defaults)
  for item in filter(None, (arg or "").split(",")):
    key, has_value, text = item.partition("=")
    if key not in defaults:
      raise ConfigError(f"config argument {key!r}: unknown; allowed: {', '.join(sorted(defaults))}")
    kind = type(defaults[key])
    if not has_value:
      if kind is not bool:
        raise ConfigError(f"config argument {key!r}: needs a value, e.g. {key}={defaults[key]}")
      values[key] = True
      continue
    try:
      values[key] = text.lower() in ("1", "true", "yes") if kind is bool else kind(text)
    except ValueError:
      raise ConfigError(f"config argument {key}={text!r}: not a {kind.__name__}") from None
  return ml_collections.ConfigDict(values)


def validate(config: ml_collections.ConfigDict, device_count: int | None = None) -> None:
  """Raises a one-line ConfigError for the first value that cannot work, before any training.

  `device_count` is the number of devices the run will shard over (default: this process's
  view, `jax.device_count()`); a launcher validating for other machines passes theirs.
  """
  check_finite(config)
  tasks.validate(config)
  if "model" in config:
    models.build(config.model)  # the model checks its own fields
  if "data" in config:
    data.validate(config.data)
  else:  # the task makes its own experience: no epochs to count in
    require(config.num_steps > 0, "num_steps", config.num_steps,
             "must be > 0: the task has no data set to count epochs in")
    require(config.eval_every_steps > 0, "eval_every_steps", config.eval_every_steps,
             "must be > 0: the task has no data set to count epochs in")
  for section, optimizer in optim.sections(config).items():
    optim.validate(optimizer, section)
  devices = device_count or jax.device_count()
  for key in ("batch_size", "eval_batch_size"):
    value = config[key]
    if key == "batch_size" or value:
      require(value > 0, key, value, "must be > 0")
      require(value % devices == 0, key, value,
               f"must be divisible by the device count ({devices}) to shard over 'data'")
  require(config.num_epochs > 0 or config.num_steps > 0, "num_epochs", config.num_epochs,
           "must be > 0 (or set num_steps > 0)")
  require(config.num_steps >= 0, "num_steps", config.num_steps, "must be >= 0")
  require(config.log_every_steps > 0, "log_every_steps", config.log_every_steps, "must be > 0")
  require(config.steps_per_call > 0, "steps_per_call", config.steps_per_call, "must be > 0")
  require(config.eval_every_epochs > 0 or config.eval_every_steps > 0, "eval_every_epochs",
           config.eval_every_epochs, "must be > 0 (or set eval_every_steps > 0)")
  stopping = config.early_stopping
  require(stopping.mode in EVAL_MODES, "early_stopping.mode", stopping.mode,
           f"allowed: {', '.join(EVAL_MODES)}")
  require(stopping.patience >= 0, "early_stopping.patience", stopping.patience,
           "must be >= 0 (0 = never stop early)")
  init_from = config.init_from
  require(not init_from.path or os.path.isdir(init_from.path) or (
      init_from.path.endswith((".npz", ".h5")) and os.path.isfile(init_from.path)),
          "init_from.path", init_from.path, "neither a dljax workdir, a .npz nor a Keras .h5 file")
  require(init_from.checkpoint in INIT_CHECKPOINTS, "init_from.checkpoint", init_from.checkpoint,
           f"allowed: {', '.join(INIT_CHECKPOINTS)}")
  for key in ("load", "skip"):
    try:
      re.compile(init_from[key])
    except re.error as error:
      require(False, f"init_from.{key}", init_from[key], f"must be a regular expression ({error})")


def check_finite(value: Any, key: str = "config") -> None:
  """Raises a one-line ConfigError for the first inf or nan in `value` (a config, nested groups
  and tuples included): every range check would let an inf through, and a nan through none.

  Values that are not numbers (e.g. traced values of trials trained together) are skipped.
  """
  if isinstance(value, ml_collections.ConfigDict):
    for name, field in value.items():
      check_finite(field, f"{key}.{name}")
  elif isinstance(value, tuple | list):
    for index, item in enumerate(value):
      check_finite(item, f"{key}[{index}]")
  elif isinstance(value, numbers.Real) and not math.isfinite(value):
    raise ConfigError(f"{key}={value!r}: must be a finite number")


def load_module(path: str) -> types.ModuleType:
  """Imports the Python file `path` (a config or sweep file) as a module of its own.

  Raises a one-line ConfigError for a missing file, a syntax error or an exception raised while
  the file runs (`call_in`): a user's file must not end a run in a traceback.
  """
  if not os.path.isfile(path):
    raise ConfigError(f"{path}: no such file")
  module_spec = importlib.util.spec_from_file_location(
      f"dljax_config_{os.path.splitext(os.path.basename(path))[0]}", path)
  module = importlib.util.module_from_spec(module_spec)
  call_in(path, module_spec.loader.exec_module, module)
  return module


def call_in(path: str, function: Callable[..., Any], *args: Any) -> Any:
  """`function(*args)`, running code of the user's file `path`.

  An exception other than ConfigError becomes a one-line ConfigError naming the file and the
  line of it that raised (a syntax error's own line), the exception's type and its message.
  """
  try:
    return function(*args)
  except ConfigError:
    raise
  except SyntaxError as error:
    raise ConfigError(f"{error.filename}:{error.lineno}: syntax error: {error.msg}") from None
  except Exception as error:
    lines = [frame.lineno for frame in traceback.extract_tb(error.__traceback__)
             if os.path.abspath(frame.filename) == os.path.abspath(path)]
    message = " ".join(str(error).split())
    raise ConfigError(f"{path}{f':{lines[-1]}' if lines else ''}: {type(error).__name__}"
                      + (f": {message}" if message else "")) from None


def load(spec: str) -> ml_collections.ConfigDict:
  """Loads 'path/to/config.py[:arg]' by calling the file's `get_config(arg)`.

  Raises a one-line ConfigError if the file does not load, has no get_config, or its get_config
  raises or returns something other than a ConfigDict.
  """
  path, _, arg = spec.partition(":")
  if not os.path.isfile(path):
    raise ConfigError(f"--config={spec}: no such file {path!r}")
  get_config = getattr(load_module(path), "get_config", None)
  if not callable(get_config):
    raise ConfigError(f"{path}: defines no get_config(arg) function")
  config = call_in(path, get_config, arg or None)
  if not isinstance(config, ml_collections.ConfigDict):
    raise ConfigError(f"{path}: get_config({arg or None!r}) returned a {type(config).__name__}, "
                      "not an ml_collections.ConfigDict")
  return config


def override(config: ml_collections.ConfigDict, key: str, value: Any) -> None:
  """Sets `config.<key>` (a dotted path) to `value`; command-line text becomes the field's type.

  Raises a one-line ConfigError for an unknown key (listing the keys allowed there) or a value
  of the wrong type.
  """
  names = key.split(".")
  holder = config
  for depth, name in enumerate(names):
    if name not in holder:
      raise ConfigError(f"config.{'.'.join(names[: depth + 1])}: unknown key; allowed here: "
                        f"{', '.join(sorted(holder.keys()))}")
    if depth < len(names) - 1:
      holder = holder[name]
      if not isinstance(holder, ml_collections.ConfigDict):
        raise ConfigError(f"config.{'.'.join(names[: depth + 1])}={holder!r}: has no fields")
  field = names[-1]
  current = holder[field]
  if isinstance(current, ml_collections.ConfigDict):
    raise ConfigError(f"config.{key}: is a group; override its fields, e.g. config.{key}."
                      f"{next(iter(current.keys()))}")
  if isinstance(value, str) and not isinstance(current, str):
    value = _parse_text(key, value, type(current))
  try:
    with holder.unlocked():
      holder[field] = value
  except TypeError:
    raise ConfigError(f"config.{key}={value!r}: must be a {type(current).__name__} "
                      f"(like the default {current!r})") from None


def _parse_text(key: str, text: str, kind: type) -> Any:
  """Command-line text -> a value of `kind` (bool, int, float, tuple, ...)."""
  if kind is bool:
    if text.lower() not in ("true", "false", "1", "0"):
      raise ConfigError(f"config.{key}={text!r}: must be true or false")
    return text.lower() in ("true", "1")
  try:
    value = ast.literal_eval(text)
  except (ValueError, SyntaxError):
    raise ConfigError(f"config.{key}={text!r}: must be a {kind.__name__}") from None
  if kind in (tuple, list) and not isinstance(value, tuple | list):
    value = (value,)
  return kind(value) if kind in (tuple, list) else value

"""A run's workdir: one live run at a time, its config compared on resume, started over on request.

A run holds an exclusive `flock` on `WORKDIR/.lock` while it lives; the OS releases it when the
process ends, however it ends (kill -9 included), so a stale lock never blocks anybody. A second
run in the same workdir refuses with one line naming the holder.

A re-run resumes from the workdir's checkpoints only with the config they were trained with:
values listed in `RESUMABLE_KEYS` (how long to train, how often to log, where the data lives)
may change; any other difference refuses with one line listing the differences, before anything
is written, unless the user asks to go on anyway (`allow_changes`, e.g. a lower learning rate
after a divergence: config.json then records each such change and the step it took effect) or
to start over (`restart`).
"""

import contextlib
import fcntl
import json
import os
import shutil
import socket
import sys
import time
from typing import Any, TextIO

import ml_collections

from dljax.errors import ConfigError, RunError

CONFIG_FILE = "config.json"
LOCK_FILE = ".lock"
# What a run writes (its task's own PNGs are rewritten by the run itself).
RUN_FILES = ("checkpoints", "metrics.jsonl", "tensorboard", "results.json", "curves.png",
             "samples", CONFIG_FILE)
# Config keys that may differ between a run and its resumption: they change how long and how
# visibly it trains, where it reads from, or what it is tested on, not what it computes at a
# given step.
RESUMABLE_KEYS = ("num_epochs", "num_steps", "log_every_steps", "steps_per_call",
                  "eval_batch_size", "data.dir", "data.pipeline", "data.workers",
                  "data.extra_tests", "early_stopping.patience")


def lock(workdir: str, stack: contextlib.ExitStack) -> None:
  """Makes `workdir` if needed and holds its lock until `stack` closes.

  Raises:
    ConfigError: `workdir` is a file or cannot be written.
    RunError: another live process holds the lock (the message names it).
  """
  if os.path.exists(workdir) and not os.path.isdir(workdir):
    raise ConfigError(f"--workdir={workdir}: is a file, not a directory")
  try:
    os.makedirs(workdir, exist_ok=True)
    handle: TextIO = stack.enter_context(open(os.path.join(workdir, LOCK_FILE), "a+"))  # noqa: SIM115
  except OSError as error:
    raise ConfigError(f"--workdir={workdir}: cannot be written ({error.strerror})") from None
  try:
    fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
  except BlockingIOError:
    handle.seek(0)
    holder = handle.read().strip() or "another process"
    raise RunError(f"{workdir} is in use by {holder}; wait for it, stop it, or use another "
                   "--workdir") from None
  handle.seek(0)
  handle.truncate()
  handle.write(f"pid {os.getpid()} on {socket.gethostname()} since "
               f"{time.strftime('%Y-%m-%d %H:%M:%S')} ({' '.join(sys.argv)})\n")
  handle.flush()


def start_over(workdir: str) -> None:
  """Deletes what an earlier run wrote into `workdir` (not the lock, not unrelated files)."""
  for name in RUN_FILES:
    path = os.path.join(workdir, name)
    if os.path.isdir(path):
      shutil.rmtree(path)
    elif os.path.exists(path):
      os.remove(path)


def read_info(workdir: str) -> dict[str, Any] | None:
  """config.json of `workdir` (None where there is none, or it is unreadable)."""
  try:
    with open(os.path.join(workdir, CONFIG_FILE)) as f:
      return json.load(f)
  except (OSError, ValueError):
    return None


def changes(workdir: str, config: ml_collections.ConfigDict,
            allow_changes: bool) -> dict[str, list[Any]]:
  """{dotted key: [old, new]} between the config that trained `workdir`'s checkpoints and `config`.

  Raises:
    ConfigError: a key outside RESUMABLE_KEYS differs and `allow_changes` is off; the message
      lists every difference and the two ways on.
  """
  info = read_info(workdir)
  if info is None or not saved_steps(workdir):
    return {}  # nothing to resume: the run starts over
  old, new = flatten(info["config"]), flatten(_as_json(config.to_dict()))
  found = {key: [old.get(key), new.get(key)] for key in sorted(old.keys() | new.keys())
           if old.get(key) != new.get(key)}
  refused = [key for key in found if key not in RESUMABLE_KEYS]
  if refused and not allow_changes:
    listed = "; ".join(f"{key}: {found[key][0]!r} -> {found[key][1]!r}" for key in refused)
    raise ConfigError(f"{workdir} was trained with another config ({listed}); rerun with the "
                      "same values, or --allow_changes to resume with these, or --restart to "
                      "start over")
  return found


def saved_steps(workdir: str) -> list[int]:
  """The steps of the finished checkpoints in `workdir`, read from the file system (Orbax names
  a checkpoint by its step once it is complete; set-aside and unfinished ones carry a suffix)."""
  directory = os.path.join(workdir, "checkpoints")
  if not os.path.isdir(directory):
    return []
  return sorted(int(name) for name in os.listdir(directory) if name.isdigit())


def flatten(tree: dict, prefix: str = "") -> dict[str, Any]:
  """{'a.b.c': value} of a nested dict."""
  flat = {}
  for name, value in tree.items():
    if isinstance(value, dict):
      flat.update(flatten(value, f"{prefix}{name}."))
    else:
      flat[f"{prefix}{name}"] = value
  return flat


def _as_json(value: Any) -> Any:
  """`value` as config.json holds it (tuples become lists)."""
  return json.loads(json.dumps(value))

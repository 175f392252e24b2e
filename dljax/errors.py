"""Errors a user can fix. `main` prints them as one line and exits non-zero, without a traceback."""

import sys
from collections.abc import Callable


class ConfigError(ValueError):
  """A config value cannot work; the message names the key, the value and what is allowed."""


def require(condition: bool, key: str, value, rule: str) -> None:
  """Raises `config.KEY=VALUE: RULE` as a ConfigError unless `condition` holds."""
  if not condition:
    raise ConfigError(f"config.{key}={value!r}: {rule}")


class DataError(RuntimeError):
  """A data set is missing, corrupt or cannot be read; the message names the path and the fix."""


class RunError(RuntimeError):
  """A run cannot go on as asked (its workdir is in use, its training diverged); the message says
  why and what to do."""


def exit_status(program: str, work: Callable[[], object]) -> int:
  """Runs a command line's `work`: 0, or for a ConfigError or DataError (the user's to fix, not a
  crash) one line `PROGRAM: error: ...` on stderr and 2."""
  try:
    work()
  except (ConfigError, DataError) as error:
    print(f"{program}: error: {error}", file=sys.stderr)
    return 2
  return 0

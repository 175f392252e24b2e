"""Registries are plain dicts (name -> builder); `lookup` turns a miss into a clear error."""

from collections.abc import Mapping
from typing import TypeVar

from dljax.errors import ConfigError

T = TypeVar("T")


def lookup(registry: Mapping[str, T], name: str, key: str, what: str) -> T:
  """Returns `registry[name]`, or raises one line naming `key`, the value and the allowed names."""
  if name not in registry:
    raise ConfigError(
        f"{key}={name!r}: unknown {what}; allowed: {', '.join(sorted(registry))}")
  return registry[name]

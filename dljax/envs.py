"""Environments written in JAX (gymnax), by the names gym gave them.

gymnax 1.0.1 ships CartPole-v1 (a 500-step cap); CartPole-v0 is the same physics with gym's old
200-step cap, so it is gymnax's CartPole with `max_steps_in_episode=200`. gymnax's `env.step`
returns six values (obs, state, reward, terminated, truncated, info) and resets a finished
episode itself; a task that runs whole episodes steps with `env.step_env` (five values: obs,
state, reward, terminated, info) and asks `env.is_truncated` for the cap, so nothing is reset
behind its back and no reset is drawn at every step.

gymnax is imported when an environment is made: it takes 1-3 s, which every other run of dljax
would pay at import.
"""

from typing import Any

from dljax.errors import ConfigError

# gym's name -> (gymnax's name, the episode cap).
ENVIRONMENTS = {
    "CartPole-v0": ("CartPole-v1", 200),
    "CartPole-v1": ("CartPole-v1", 500),
}


def make(name: str, key: str = "env") -> tuple[Any, Any]:
  """The gymnax environment `name` and its parameters (its episode cap included); a name not in
  ENVIRONMENTS is a one-line ConfigError naming `config.<key>`."""
  if name not in ENVIRONMENTS:
    raise ConfigError(f"config.{key}={name!r}: unknown environment; allowed: "
                      f"{', '.join(ENVIRONMENTS)}")
  import gymnax  # deferred: see the module docstring

  gymnax_name, max_steps = ENVIRONMENTS[name]
  env, params = gymnax.make(gymnax_name)
  return env, params.replace(max_steps_in_episode=max_steps)

"""Environments for agents trained inside jit: gymnax's (written in JAX) or any gymnasium one.

`environment(name, backend)` gives an `Environment`: the same four functions for both backends,
callable inside jit and vmap, so a task's episode loop is one piece of code.

- `gymnax` (the default): the environment is JAX code in the compiled step. gymnax 1.0.1 ships
  CartPole-v1 (a 500-step cap); CartPole-v0 is the same physics with gym's old 200-step cap, so
  it is gymnax's CartPole with `max_steps_in_episode=200`. gymnax's `env.step` returns six values
  (obs, state, reward, terminated, truncated, info) and resets a finished episode itself; the
  episode loop steps with `env.step_env` (five values) and asks `env.is_truncated` for the cap,
  so nothing is reset behind its back and no reset is drawn at every step.
- `gymnasium`: any registered gymnasium environment with a Box observation and a Discrete action
  space runs on the host, stepped from inside the compiled step by `jax.experimental.io_callback`
  (one host call a step; past the episode's end, the call returns at once). The host
  environments live in this process (`_HOST_ENVS`), one per trial (an id in the trial's state),
  so trials vmapped together each step their own. Their state cannot be
  checkpointed, but an episode's does not outlive it: every episode starts with a reset seeded
  from the step's key, so a run resumed from a checkpoint (taken between episodes) replays the
  same episodes, for any environment whose dynamics depend only on its seed and the actions.

gymnax and gymnasium are imported when an environment is made: they take 1-3 s, which every
other run of dljax would pay at import.
"""

import dataclasses
import functools
import itertools
import warnings
from collections.abc import Callable
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np
from jax.experimental import io_callback

from dljax.errors import ConfigError

BACKENDS = ("gymnax", "gymnasium")
# gym's name -> (gymnax's name, the episode cap).
ENVIRONMENTS = {
    "CartPole-v0": ("CartPole-v1", 200),
    "CartPole-v1": ("CartPole-v1", 500),
}


@dataclasses.dataclass(frozen=True)
class Environment:
  """An environment as the episode loop sees it (obs_O: float32 [obs_size]).

    new_id(rng) -> env_id                  at a trial's init: which host environment is its own
    reset(rng, env_id) -> (obs_O, env_state)
    step(rng, env_state, action, running) -> (next_obs_O, env_state, reward, done)
        done: terminated or at the cap (gym's old `done`); `running` False: the episode has
        ended, the result is ignored (a host environment is not called)
  """
  obs_size: int
  num_actions: int
  max_steps: int  # the episode cap
  new_id: Callable[[jax.Array], jax.Array]
  reset: Callable[[jax.Array, jax.Array], tuple[jax.Array, Any]]
  step: Callable[[jax.Array, Any, jax.Array, jax.Array], tuple[jax.Array, Any, jax.Array,
                                                                jax.Array]]


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


def environment(name: str, backend: str, section: str) -> Environment:
  """The environment `name` of `backend`; a name or backend that cannot serve is a one-line
  ConfigError naming `config.<section>.env` or `config.<section>.backend`."""
  if backend not in BACKENDS:
    raise ConfigError(f"config.{section}.backend={backend!r}: allowed: {', '.join(BACKENDS)}")
  key = f"{section}.env"
  return _gymnax(name, key) if backend == "gymnax" else _gymnasium(name, key)


@functools.cache  # validating each of the DQN study's 128 configs made it anew: 30 ms each
def _gymnax(name: str, key: str) -> Environment:
  env, params = make(name, key)

  def reset(rng, env_id):
    del env_id  # the environment is in the state
    return env.reset(rng, params)

  def step(rng, env_state, action, running):
    del running  # the loop masks what an ended episode computes
    next_obs, env_state, reward, terminated, _ = env.step_env(rng, env_state, action, params)
    return next_obs, env_state, reward, terminated | env.is_truncated(env_state, params)

  return Environment(obs_size=env.observation_space(params).shape[0],
                     num_actions=env.num_actions, max_steps=int(params.max_steps_in_episode),
                     new_id=lambda rng: jnp.int32(0), reset=reset, step=step)


_HOST_ENVS: dict[tuple[str, int], Any] = {}  # (name, id) -> this process's gymnasium environment
_NEXT_ID = itertools.count()


def _host_env(name: str, env_id) -> Any:
  import gymnasium

  env_key = (name, int(env_id))
  if env_key not in _HOST_ENVS:
    with warnings.catch_warnings():
      warnings.simplefilter("ignore")  # e.g. "CartPole-v0 is out of date"
      _HOST_ENVS[env_key] = gymnasium.make(name)
  return _HOST_ENVS[env_key]


def _gymnasium(name: str, key: str) -> Environment:
  import gymnasium

  try:
    with warnings.catch_warnings():
      warnings.simplefilter("ignore")
      probe = gymnasium.make(name)
  except gymnasium.error.Error as error:
    raise ConfigError(f"config.{key}={name!r}: not a gymnasium environment ({error})") from None
  obs_space, action_space = probe.observation_space, probe.action_space
  max_steps = probe.spec.max_episode_steps
  probe.close()
  if not isinstance(action_space, gymnasium.spaces.Discrete):
    raise ConfigError(f"config.{key}={name!r}: its action space {action_space} is not "
                      "Discrete; the agent picks one of n actions")
  if not isinstance(obs_space, gymnasium.spaces.Box) or len(obs_space.shape) != 1:
    raise ConfigError(f"config.{key}={name!r}: its observation space {obs_space} is not a Box "
                      "of one axis")
  if not max_steps:
    raise ConfigError(f"config.{key}={name!r}: has no episode cap (max_episode_steps)")
  obs_size, num_actions = obs_space.shape[0], int(action_space.n)
  obs_type = jax.ShapeDtypeStruct((obs_size,), jnp.float32)
  step_types = (obs_type, jax.ShapeDtypeStruct((), jnp.float32), jax.ShapeDtypeStruct((), bool))

  def host_reset(env_id, seed):
    obs, _ = _host_env(name, env_id).reset(seed=int(seed))
    return np.asarray(obs, np.float32)

  def host_step(env_id, action, running):
    if not running:  # the episode has ended: the loop runs on to the cap (see dqn.py)
      return np.zeros(obs_size, np.float32), np.float32(0), np.bool_(True)
    obs, reward, terminated, truncated, _ = _host_env(name, env_id).step(int(action))
    return np.asarray(obs, np.float32), np.float32(reward), np.bool_(terminated or truncated)

  def reset(rng, env_id):
    seed = jax.random.randint(rng, (), 0, np.iinfo(np.int32).max)
    return io_callback(host_reset, obs_type, env_id, seed), env_id

  def step(rng, env_id, action, running):
    del rng  # the host environment draws from its own generator, seeded at reset
    # The host decides whether to step: a lax.cond around the call would not vmap (JAX 0.10).
    next_obs, reward, done = io_callback(host_step, step_types, env_id, action, running)
    return next_obs, env_id, reward, done

  def new_id(rng):
    # The trial's key is an argument so that vmapped trials call once each (an unbatched call
    # would be made once and shared).
    return io_callback(lambda rng_data: np.int32(next(_NEXT_ID)),
                       jax.ShapeDtypeStruct((), jnp.int32), jax.random.key_data(rng))

  return Environment(obs_size=obs_size, num_actions=num_actions, max_steps=int(max_steps),
                     new_id=new_id, reset=reset, step=step)

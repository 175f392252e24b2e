"""Optax optimisers built from `config.optimizer`, with Keras semantics and defaults.

Course reports were written with Keras, so `optimizer_config(name)` holds the Keras defaults and
`make_optimizer` reproduces Keras update rules. Differences from plain optax, checked against the
optax 0.2.8 and Keras sources:

- sgd: Keras keeps a velocity `v = momentum * v - lr * g; w += v` (Nesterov:
  `w += momentum * v - lr * g`). `optax.sgd` keeps `m = g + momentum * m` and scales the result by
  the current lr, which agrees only while lr is constant. We scale by lr before `optax.trace`, so
  the trace is the Keras velocity exactly, schedules included.
- adam/adamw: Keras adds eps to sqrt(v) *before* bias correction (the "epsilon hat" of Kingma & Ba),
  `w -= lr * sqrt(1 - b2^t) / (1 - b1^t) * m / (sqrt(v) + eps)`; `optax.scale_by_adam` adds it to
  sqrt(v_hat). The two agree when optax's eps at step t is `eps / sqrt(1 - b2^t)`, which we inject
  per step, so Adam matches Keras exactly (plain optax would use a 30x smaller eps at step 1).
- rmsprop: where eps goes depends on the Keras version. Keras 1/2 and tf.keras up to TF 2.10 (now
  `tf.keras.optimizers.legacy`) divide by `sqrt(v) + eps` when momentum == 0 and by
  `sqrt(v + eps)` when momentum > 0; Keras 3 and tf.keras from TF 2.11 always divide by
  `sqrt(v + eps)`. `eps_in_sqrt` selects this (`optax.rmsprop(eps_in_sqrt=...)`); the default
  False is the Keras 2 rule without momentum; set it True for Keras 3, or for Keras 2 with
  momentum. Both Keras and optax apply momentum after the lr, so the momentum form matches.
- nadam: Keras warms the momentum up, mu_t = b1 * (1 - 0.5 * 0.96^(schedule_decay * t)), and
  bias-corrects with the product of the mu_t; `optax.nadam` uses the constant mu = b1 with
  corrections 1 - b1^t and 1 - b1^(t+1). We implement Keras' rule (`_keras_nadam`). Keras 1/2 and
  tf.keras up to TF 2.10 used schedule_decay 0.004 (the default here): mu is 0.45 at step 1 and
  still 0.87 after 17k steps (Géron's CNN, 10 epochs), far from optax's 0.9 throughout. Keras 3
  and tf.keras from TF 2.11 use 0.96^t (schedule_decay=1): mu reaches 0.9 within ~100 steps.
- adagrad, adadelta: `optax.adagrad`/`optax.adadelta` are the Keras 3 rules (eps inside the sqrt;
  Adadelta's delta accumulator holds the update before lr). Keras 2 Adagrad used sqrt(acc) + eps,
  a relative difference below 1e-6 with the 0.1 initial accumulator.
- weight_decay: as Keras 3's `weight_decay` argument, for every optimiser: `w -= lr * wd * w` on
  every trainable param, outside the optimiser's moments; for adamw this is `optax.adamw`.
- clip_norm clips the global norm (Keras 2 `clipnorm`, Keras 3 `global_clipnorm`; Keras 3
  `clipnorm` clips each variable separately).

The optimiser's `update` needs `params` whenever weight decay or l1/l2 is on.
"""

import re
from collections.abc import Callable
from typing import NamedTuple, NoReturn

import jax
import jax.numpy as jnp
import ml_collections
import optax

from dljax import trials
from dljax.errors import ConfigError


def _keras_sgd(learning_rate: optax.ScalarOrSchedule, momentum: float,
               nesterov: bool) -> optax.GradientTransformation:
  """SGD whose momentum trace is the Keras velocity: lr is applied before the trace."""
  if not trials.nonzero(momentum):
    return optax.sgd(learning_rate)  # Keras ignores nesterov without momentum too.
  return optax.chain(optax.scale_by_learning_rate(learning_rate),
                     optax.trace(decay=momentum, nesterov=nesterov))


def _keras_adam(learning_rate: optax.ScalarOrSchedule, b1: float, b2: float,
                eps: float) -> optax.GradientTransformation:
  """Adam with Keras' "epsilon hat": eps added to sqrt(v) before bias correction."""
  # optax's update m_hat / (sqrt(v_hat) + eps') equals Keras' with eps' = eps / sqrt(1 - b2^t);
  # `count` is 0 on the first update, which Keras calls step 1.
  epsilon_hat = lambda count: eps / jnp.sqrt(1 - b2 ** (count + 1))
  return optax.chain(optax.inject_hyperparams(optax.scale_by_adam)(b1=b1, b2=b2, eps=epsilon_hat),
                     optax.scale_by_learning_rate(learning_rate))


class _KerasNadamState(NamedTuple):
  count: jax.Array  # updates so far; Keras' step t is count + 1
  mu_product: jax.Array  # mu_1 * ... * mu_count
  m: optax.Updates
  v: optax.Updates


def _scale_by_keras_nadam(b1: float, b2: float, eps: float,
                          schedule_decay: float) -> optax.GradientTransformation:
  """Keras' Nadam direction (keras/src/optimizers/nadam.py; tf.keras 2's OptimizerV2 Nadam):

      mu_t = b1 * (1 - 0.5 * 0.96^(schedule_decay * t))
      m = b1 m + (1 - b1) g;  v = b2 v + (1 - b2) g^2
      m_hat = mu_(t+1) m / (1 - mu_1...mu_(t+1)) + (1 - mu_t) g / (1 - mu_1...mu_t)
      update = m_hat / (sqrt(v / (1 - b2^t)) + eps)
  """

  def init(params):
    zeros = lambda: jax.tree.map(jnp.zeros_like, params)
    return _KerasNadamState(jnp.zeros([], jnp.int32), jnp.ones([], jnp.float32), zeros(), zeros())

  def update(grads, state, params=None):
    del params
    t = (state.count + 1).astype(jnp.float32)
    mu_t = b1 * (1.0 - 0.5 * 0.96 ** (schedule_decay * t))
    mu_next = b1 * (1.0 - 0.5 * 0.96 ** (schedule_decay * (t + 1.0)))
    mu_product = state.mu_product * mu_t
    m = jax.tree.map(lambda m, g: b1 * m + (1.0 - b1) * g, state.m, grads)
    v = jax.tree.map(lambda v, g: b2 * v + (1.0 - b2) * jnp.square(g), state.v, grads)
    v_correction = 1.0 - b2 ** t
    updates = jax.tree.map(
        lambda g, m, v: (mu_next * m / (1.0 - mu_product * mu_next)
                         + (1.0 - mu_t) * g / (1.0 - mu_product))
        / (jnp.sqrt(v / v_correction) + eps), grads, m, v)
    return updates, _KerasNadamState(state.count + 1, mu_product, m, v)

  return optax.GradientTransformation(init, update)


def _keras_nadam(learning_rate: optax.ScalarOrSchedule, b1: float, b2: float, eps: float,
                 schedule_decay: float) -> optax.GradientTransformation:
  return optax.chain(_scale_by_keras_nadam(b1, b2, eps, schedule_decay),
                     optax.scale_by_learning_rate(learning_rate))


# name -> builder(config, learning_rate); weight decay, l1/l2, clipping and freezing are added
# around every builder by `make_optimizer`. A new optimiser needs one line here, and a line in
# _KERAS_DEFAULTS if its Keras defaults differ from _DEFAULTS.
OPTIMIZERS: dict[str, Callable[..., optax.GradientTransformation]] = {
  'sgd': lambda c, lr: _keras_sgd(lr, c.momentum, c.nesterov),
  'adam': lambda c, lr: _keras_adam(lr, c.b1, c.b2, c.eps),
  'adamw': lambda c, lr: _keras_adam(lr, c.b1, c.b2, c.eps),  # + its default weight_decay
  'rmsprop': lambda c, lr: optax.rmsprop(
    lr, decay=c.rho, eps=c.eps, eps_in_sqrt=c.eps_in_sqrt, centered=c.centered,
    momentum=c.momentum if trials.nonzero(c.momentum) else None),
  'nadam': lambda c, lr: _keras_nadam(lr, c.b1, c.b2, c.eps, c.schedule_decay),
  'adadelta': lambda c, lr: optax.adadelta(lr, rho=c.rho, eps=c.eps),
  'adagrad': lambda c, lr: optax.adagrad(lr, c.initial_accumulator_value, eps=c.eps),
}

# Every knob, for every optimiser, so any of them can be overridden on a locked config.
_DEFAULTS = {
  'name': '',
  'learning_rate': 1e-3,
  'momentum': 0.0,  # sgd, rmsprop
  'nesterov': False,  # sgd
  'b1': 0.9,  # adam, adamw, nadam
  'b2': 0.999,
  'eps': 1e-7,
  'rho': 0.9,  # rmsprop, adadelta
  'centered': False,  # rmsprop
  'eps_in_sqrt': False,  # rmsprop: False = Keras 2 (sqrt(v) + eps), True = Keras 3 (sqrt(v + eps))
  'schedule_decay': 0.004,  # nadam's momentum warm-up: 0.004 = Keras 2, 1.0 = Keras 3
  'initial_accumulator_value': 0.1,  # adagrad
  'weight_decay': 0.0,  # decoupled: w -= lr * weight_decay * w
  'l1': 0.0,  # Keras regularizers on the params matching `regularize`: grad += l1 * sign(w)
  'l2': 0.0,  # ... + 2 * l2 * w (Keras' l2(λ) penalises λ·Σw²)
  'regularize': r'(^|/)kernel$',
  'clip_norm': 0.0,  # global-norm clipping; 0 = off
  'clip_value': 0.0,  # elementwise clipping; 0 = off
  'freeze': '',  # regex on the '/'-joined param path; matches get no update and no state
  'schedule': 'constant',
  'warmup_steps': 0,  # linear warm-up from 0; decay schedules then count from its end
  'end_learning_rate': 0.0,  # cosine, linear: absolute value reached at total_steps
  'decay_rate': 0.96,  # exponential: lr * decay_rate ** (step / decay_steps) (Keras docs' values)
  'decay_steps': 100_000,
  'step_boundaries': (),  # step: lr * step_scales[i] once step > step_boundaries[i] (Keras'
  'step_scales': (),  # PiecewiseConstantDecay); scales are relative to lr, not cumulative
}

# Keras defaults that differ from _DEFAULTS. Adadelta's 1e-3 is tf.keras/Keras 3; the original
# Keras 1/2 Adadelta used learning_rate=1.0 (the paper's form), as Keras 3's docstring suggests.
_KERAS_DEFAULTS = {
  'sgd': {'learning_rate': 0.01},
  'adamw': {'weight_decay': 0.004},
  'adadelta': {'rho': 0.95},
}

# name -> schedule(config, decay_steps), decay_steps being the steps after warm-up.
_SCHEDULES: dict[str, Callable[[ml_collections.ConfigDict, int], optax.Schedule]] = {
  'constant': lambda c, n: optax.constant_schedule(c.learning_rate),
  'cosine': lambda c, n: optax.cosine_decay_schedule(
    c.learning_rate, n, alpha=c.end_learning_rate / c.learning_rate),
  'linear': lambda c, n: optax.linear_schedule(c.learning_rate, c.end_learning_rate, n),
  'exponential': lambda c, n: optax.exponential_decay(c.learning_rate, c.decay_steps,
                                                      c.decay_rate),
  'step': lambda c, n: _step_schedule(c),
}

_RANGES = (
  (('learning_rate', 'eps', 'decay_rate', 'decay_steps'), lambda v: v > 0, 'must be > 0'),
  (('momentum', 'b1', 'b2'), lambda v: 0 <= v < 1, 'must be in [0, 1)'),
  (('rho',), lambda v: 0 < v < 1, 'must be in (0, 1)'),
  (('initial_accumulator_value', 'weight_decay', 'l1', 'l2', 'clip_norm', 'clip_value',
    'warmup_steps', 'end_learning_rate'), lambda v: v >= 0, 'must be >= 0'),
)


def optimizer_config(name: str, **overrides) -> ml_collections.ConfigDict:
  """Returns a locked `config.optimizer` with every knob, holding Keras' defaults for `name`.

  Every knob is present whichever optimiser is chosen, so the command line can set any of them
  (`--config.optimizer.momentum=0.9`). Pick the optimiser here rather than with
  `--config.optimizer.name`, which would keep the other optimiser's defaults (e.g. sgd's lr).
  """
  if name not in OPTIMIZERS:
    _fail('name', name, f'unknown optimizer; allowed: {", ".join(sorted(OPTIMIZERS))}')
  config = ml_collections.ConfigDict({**_DEFAULTS, **_KERAS_DEFAULTS.get(name, {}), 'name': name})
  for key, value in overrides.items():
    if key not in config:
      _fail(key, value, f'unknown key; allowed: {", ".join(sorted(_DEFAULTS))}')
    try:
      config[key] = value
    except TypeError:
      _fail(key, value, f'must be a {type(config[key]).__name__}')
  config.lock()
  return config


def validate(config: ml_collections.ConfigDict, section: str = 'optimizer') -> None:
  """Raises ConfigError, naming the key, its value and what is allowed, for the first bad knob.

  `section` is where the config sits (`optimizer`, or `optimizers.NAME` for a task with several).
  """
  fail = lambda key, value, requirement: _fail(key, value, requirement, section)
  if unknown := sorted(set(config.keys()) - set(_DEFAULTS)):
    fail(unknown[0], config[unknown[0]], f'unknown key; allowed: {", ".join(sorted(_DEFAULTS))}')
  if missing := sorted(set(_DEFAULTS) - set(config.keys())):
    raise ConfigError(f'config.{section} lacks {", ".join(missing)}: build it with '
                      'dljax.optim.optimizer_config')
  if config.name not in OPTIMIZERS:
    fail('name', config.name, f'unknown optimizer; allowed: {", ".join(sorted(OPTIMIZERS))}')
  for keys, allowed, requirement in _RANGES:
    for key in keys:
      value = config[key]
      if isinstance(value, jax.core.Tracer):
        continue  # a value of trials trained together: each was checked as a number before
      if isinstance(value, bool) or not isinstance(value, int | float) or not allowed(value):
        fail(key, value, requirement)
  if config.schedule not in _SCHEDULES:
    fail('schedule', config.schedule, f'unknown schedule; allowed: {", ".join(_SCHEDULES)}')
  boundaries, scales = tuple(config.step_boundaries), tuple(config.step_scales)
  if not all(isinstance(b, int) and b >= 0 for b in boundaries) or sorted(set(boundaries)) != list(
      boundaries):
    fail('step_boundaries', boundaries, 'must be increasing integers >= 0')
  if len(scales) != len(boundaries) or not all(s >= 0 for s in scales):
    fail('step_scales', scales, f'must be {len(boundaries)} numbers >= 0, one per step_boundary')
  for key in ('freeze', 'regularize'):
    try:
      re.compile(config[key])
    except (re.error, TypeError) as e:
      fail(key, config[key], f'must be a regular expression ({e})')


def learning_rate_schedule(config: ml_collections.ConfigDict, total_steps: int,
                           section: str = 'optimizer') -> optax.Schedule:
  """Returns lr(step): linear warm-up from 0 over `warmup_steps`, then `schedule`.

  Steps count updates already applied (0 for the first update, as Keras' `optimizer.iterations`);
  after a warm-up the decay schedule counts from the warm-up's end. Cosine and linear decay reach
  `end_learning_rate` at `total_steps`.
  """
  decay_steps = total_steps - config.warmup_steps
  if config.schedule in ('cosine', 'linear') and decay_steps < 1:
    _fail('warmup_steps', config.warmup_steps,
          f'must be < total_steps={total_steps} for schedule {config.schedule!r}', section)
  schedule = _SCHEDULES[config.schedule](config, decay_steps)
  if not config.warmup_steps:
    return schedule
  warmup = optax.linear_schedule(0.0, config.learning_rate, config.warmup_steps)
  return optax.join_schedules([warmup, schedule], [config.warmup_steps])


def make_optimizer(config: ml_collections.ConfigDict, total_steps: int,
                   section: str = 'optimizer') -> optax.GradientTransformation:
  """Returns the optimiser `config` describes, in Keras' order of operations.

  l1/l2 terms join the gradient first (in Keras they are part of the loss), then clipping, then the
  optimiser proper, then decoupled weight decay; frozen params bypass all of it.
  """
  validate(config, section)
  learning_rate = learning_rate_schedule(config, total_steps, section)
  steps = []
  if trials.nonzero(config.l1) or trials.nonzero(config.l2):
    steps.append(_keras_regularizers(config.l1, config.l2, config.regularize))
  if config.clip_norm:
    steps.append(optax.clip_by_global_norm(config.clip_norm))
  if config.clip_value:
    steps.append(optax.clip(config.clip_value))
  steps.append(OPTIMIZERS[config.name](config, learning_rate))
  if trials.nonzero(config.weight_decay):
    # Updates already carry the minus sign, so adding -lr * wd * w gives Keras' w -= lr * wd * w.
    decay = config.weight_decay
    steps.append(optax.add_decayed_weights(lambda count: -decay * learning_rate(count)))
  optimizer = optax.chain(*steps)
  if not config.freeze:
    return optimizer
  frozen = re.compile(config.freeze)
  labels = lambda tree: jax.tree_util.tree_map_with_path(
    lambda path, _: 'frozen' if frozen.search(_path(path)) else 'trained', tree)
  # partition masks frozen leaves out of the inner optimiser, so they get no moments either.
  return optax.partition({'trained': optimizer, 'frozen': optax.set_to_zero()}, labels)


def _keras_regularizers(l1: float, l2: float, pattern: str) -> optax.GradientTransformation:
  """Adds the gradient of Keras' l1(l1) + l2(l2) regularisers to the params matching `pattern`."""
  regex = re.compile(pattern)

  def add_penalty(path, grad, param):
    if not regex.search(_path(path)):
      return grad
    return grad + l1 * jnp.sign(param) + 2 * l2 * param

  return optax.stateless(
    lambda grads, params: jax.tree_util.tree_map_with_path(add_penalty, grads, params))


def _step_schedule(config: ml_collections.ConfigDict) -> optax.Schedule:
  """Keras' PiecewiseConstantDecay: lr * step_scales[i] once step > step_boundaries[i]."""
  boundaries = jnp.asarray(config.step_boundaries, dtype=jnp.int32)
  values = config.learning_rate * jnp.asarray((1.0, *config.step_scales))
  return lambda step: values[jnp.sum(step > boundaries)]


def _path(key_path: jax.tree_util.KeyPath) -> str:
  return jax.tree_util.keystr(key_path, simple=True, separator='/')


def sections(config: ml_collections.ConfigDict) -> dict[str, ml_collections.ConfigDict]:
  """Every optimiser of a config by where it sits: `optimizer`, and each `optimizers.NAME` of a
  task that trains several parts with their own (a GAN's generator and discriminator)."""
  found = {'optimizer': config.optimizer} if 'optimizer' in config else {}
  found.update({f'optimizers.{name}': c for name, c in config.get('optimizers', {}).items()})
  return found


def _fail(key: str, value: object, requirement: str, section: str = 'optimizer') -> NoReturn:
  raise ConfigError(f'config.{section}.{key}={value!r}: {requirement}')

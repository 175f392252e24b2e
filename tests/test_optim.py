"""Tests for dljax.optim: Keras rules recomputed in numpy, masks, clipping, schedules, errors."""

import itertools
import re

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest

from dljax import optim
from dljax.errors import ConfigError

# Three steps of gradients, some small enough that where eps goes matters.
GRADS = np.array([[0.5, -1.0, 2.0], [0.2, 0.03, -0.4], [-0.1, 0.02, 1.5]])
W0 = np.array([1.0, -2.0, 0.5])


def dense_params():
  return {'Dense_0': {'kernel': jnp.array([[1.0, -2.0, 0.0], [3.0, 0.5, -1.0]]),
                      'bias': jnp.ones(3)}}


def run(config, grads, params, total_steps=100):
  """Applies `grads` (one pytree per step) with the optimiser from `config`; returns the params."""
  optimizer = optim.make_optimizer(config, total_steps)
  state = optimizer.init(params)
  for grad in grads:
    updates, state = optimizer.update(grad, state, params)
    params = optax.apply_updates(params, updates)
  return params


def run_flat(config, total_steps=100):
  return np.asarray(run(config, [{'w': jnp.asarray(g)} for g in GRADS], {'w': jnp.asarray(W0)},
                        total_steps)['w'])


def run_plain(transform: optax.GradientTransformation) -> np.ndarray:
  """W0 after GRADS with a plain optax optimiser (what Keras' rules are contrasted with)."""
  w, state = jnp.asarray(W0), transform.init(jnp.asarray(W0))
  for g in GRADS:
    updates, state = transform.update(jnp.asarray(g), state)
    w = w + updates
  return np.asarray(w)


@pytest.mark.parametrize('name', sorted(optim.OPTIMIZERS))
def test_each_optimizer_decreases_a_quadratic(name):
  loss = lambda params: sum(jnp.sum(leaf**2) for leaf in jax.tree.leaves(params))
  params = dense_params()
  optimizer = optim.make_optimizer(optim.optimizer_config(name, learning_rate=0.1), 10)
  state = optimizer.init(params)
  losses = [loss(params)]
  for _ in range(3):
    updates, state = optimizer.update(jax.grad(loss)(params), state, params)
    params = optax.apply_updates(params, updates)
    losses.append(loss(params))
  assert all(later < earlier for earlier, later in itertools.pairwise(losses))


# Keras update rules, transcribed from keras/src/optimizers/*.py (Keras 3) and, for RMSprop
# without momentum, keras/optimizers.py (Keras 2). `lrs[t]` is the lr of step t.


def keras_sgd(w, lrs, momentum, nesterov):
  velocity = np.zeros_like(w)
  for g, lr in zip(GRADS, lrs, strict=False):
    velocity = momentum * velocity - lr * g
    w = w + (momentum * velocity - lr * g if nesterov else velocity)
  return w


def keras_rmsprop(w, lr, rho, eps, momentum, centered, eps_in_sqrt):
  velocity, average_grad, mom = np.zeros_like(w), np.zeros_like(w), np.zeros_like(w)
  for g in GRADS:
    velocity = rho * velocity + (1 - rho) * g**2
    variance = velocity
    if centered:
      average_grad = rho * average_grad + (1 - rho) * g
      variance = velocity - average_grad**2
    if eps_in_sqrt:  # Keras 3
      increment = lr * g / np.sqrt(variance + eps)
    else:  # Keras 2, momentum == 0
      increment = lr * g / (np.sqrt(variance) + eps)
    mom = momentum * mom + increment
    w = w - mom
  return w


def keras_adam(w, lr, b1, b2, eps, weight_decay=0.0):
  m, v = np.zeros_like(w), np.zeros_like(w)
  for step, g in enumerate(GRADS, start=1):
    w = w - w * weight_decay * lr
    alpha = lr * np.sqrt(1 - b2**step) / (1 - b1**step)
    m = m + (g - m) * (1 - b1)
    v = v + (g**2 - v) * (1 - b2)
    w = w - alpha * m / (np.sqrt(v) + eps)
  return w


def keras_adagrad(w, lr, initial_accumulator_value, eps):
  accumulator = np.full_like(w, initial_accumulator_value)
  for g in GRADS:
    accumulator = accumulator + g**2
    w = w - lr * g / np.sqrt(accumulator + eps)
  return w


def keras_adadelta(w, lr, rho, eps):
  accumulated_grad, accumulated_delta = np.zeros_like(w), np.zeros_like(w)
  for g in GRADS:
    accumulated_grad = rho * accumulated_grad + (1 - rho) * g**2
    delta = -np.sqrt(accumulated_delta + eps) * g / np.sqrt(accumulated_grad + eps)
    accumulated_delta = rho * accumulated_delta + (1 - rho) * delta**2
    w = w + lr * delta
  return w


def keras_nadam(w, lr, b1, b2, eps, schedule_decay):
  """tf.keras 2's OptimizerV2 Nadam (`_resource_apply_dense`), as written there."""
  m, v, m_schedule = np.zeros_like(w), np.zeros_like(w), 1.0
  for t, g in enumerate(GRADS, start=1):
    momentum_cache_t = b1 * (1 - 0.5 * 0.96 ** (schedule_decay * t))
    momentum_cache_t_1 = b1 * (1 - 0.5 * 0.96 ** (schedule_decay * (t + 1)))
    m_schedule_new = m_schedule * momentum_cache_t
    m_schedule_next = m_schedule_new * momentum_cache_t_1
    m_schedule = m_schedule_new
    g_prime = g / (1 - m_schedule_new)
    m = b1 * m + (1 - b1) * g
    m_t_prime = m / (1 - m_schedule_next)
    v = b2 * v + (1 - b2) * g**2
    v_t_prime = v / (1 - b2**t)
    m_t_bar = (1 - momentum_cache_t) * g_prime + momentum_cache_t_1 * m_t_prime
    w = w - lr * m_t_bar / (np.sqrt(v_t_prime) + eps)
  return w


@pytest.mark.parametrize('schedule_decay', [0.004, 1.0])  # Keras 2, Keras 3
def test_nadam_matches_keras_momentum_warm_up(schedule_decay):
  config = optim.optimizer_config('nadam', learning_rate=0.01, eps=0.1,
                                  schedule_decay=schedule_decay)
  expected = keras_nadam(W0, 0.01, 0.9, 0.999, 0.1, schedule_decay)
  np.testing.assert_allclose(run_flat(config), expected, rtol=1e-6)
  # optax.nadam's constant momentum is visibly different over the first steps.
  assert not np.allclose(run_plain(optax.nadam(0.01, eps=0.1)), expected, rtol=1e-3)


@pytest.mark.parametrize('nesterov', [False, True])
def test_sgd_momentum_matches_keras_even_with_a_decaying_lr(nesterov):
  config = optim.optimizer_config('sgd', learning_rate=0.1, momentum=0.9, nesterov=nesterov,
                                  schedule='exponential', decay_rate=0.5, decay_steps=1)
  lrs = 0.1 * 0.5 ** np.arange(3)
  np.testing.assert_allclose(run_flat(config), keras_sgd(W0, lrs, 0.9, nesterov), rtol=1e-6)


def test_rmsprop_eps_outside_sqrt_matches_keras_2():
  # A large eps makes its placement visible.
  config = optim.optimizer_config('rmsprop', learning_rate=0.01, eps=0.1)
  expected = keras_rmsprop(W0, 0.01, 0.9, 0.1, 0.0, centered=False, eps_in_sqrt=False)
  np.testing.assert_allclose(run_flat(config), expected, rtol=1e-6)
  keras_3 = keras_rmsprop(W0, 0.01, 0.9, 0.1, 0.0, centered=False, eps_in_sqrt=True)
  assert not np.allclose(expected, keras_3, rtol=1e-4)


def test_rmsprop_eps_in_sqrt_with_momentum_and_centering_matches_keras_3():
  config = optim.optimizer_config('rmsprop', learning_rate=0.01, eps=0.1, eps_in_sqrt=True,
                                  momentum=0.5, centered=True)
  expected = keras_rmsprop(W0, 0.01, 0.9, 0.1, 0.5, centered=True, eps_in_sqrt=True)
  np.testing.assert_allclose(run_flat(config), expected, rtol=1e-6)


def test_adam_matches_keras_epsilon_hat():
  config = optim.optimizer_config('adam', learning_rate=0.01, eps=0.1)
  expected = keras_adam(W0, 0.01, 0.9, 0.999, 0.1)
  np.testing.assert_allclose(run_flat(config), expected, rtol=1e-6)
  # Plain optax.adam adds eps to the bias-corrected sqrt(v): visibly different with this eps.
  assert not np.allclose(run_plain(optax.adam(0.01, eps=0.1)), expected, rtol=1e-4)


def test_adamw_matches_keras():
  config = optim.optimizer_config('adamw', learning_rate=0.01, weight_decay=0.1)
  expected = keras_adam(W0, 0.01, 0.9, 0.999, 1e-7, weight_decay=0.1)
  np.testing.assert_allclose(run_flat(config), expected, rtol=1e-6)


def test_adagrad_and_adadelta_match_keras_3():
  config = optim.optimizer_config('adagrad', learning_rate=0.1, eps=0.01)
  np.testing.assert_allclose(run_flat(config), keras_adagrad(W0, 0.1, 0.1, 0.01), rtol=1e-6)
  config = optim.optimizer_config('adadelta', learning_rate=1.0, eps=0.01)
  np.testing.assert_allclose(run_flat(config), keras_adadelta(W0, 1.0, 0.95, 0.01), rtol=1e-6)


def test_l1_l2_add_keras_penalty_gradient_to_kernels_only():
  params = dense_params()
  zeros = jax.tree.map(jnp.zeros_like, params)
  config = optim.optimizer_config('sgd', learning_rate=1.0, l1=0.25, l2=0.5)
  after = run(config, [zeros], params)
  kernel = params['Dense_0']['kernel']
  np.testing.assert_allclose(after['Dense_0']['kernel'],
                             kernel - (0.25 * np.sign(kernel) + 2 * 0.5 * kernel))
  np.testing.assert_array_equal(after['Dense_0']['bias'], params['Dense_0']['bias'])


def test_regularize_selects_params_by_path():
  params = dense_params()
  zeros = jax.tree.map(jnp.zeros_like, params)
  config = optim.optimizer_config('sgd', learning_rate=1.0, l2=0.5, regularize='/bias$')
  after = run(config, [zeros], params)
  np.testing.assert_array_equal(after['Dense_0']['kernel'], params['Dense_0']['kernel'])
  np.testing.assert_allclose(after['Dense_0']['bias'], np.zeros(3))


def test_weight_decay_is_decoupled_and_scaled_by_lr_for_any_optimizer():
  params = dense_params()
  zeros = jax.tree.map(jnp.zeros_like, params)
  config = optim.optimizer_config('sgd', learning_rate=0.1, momentum=0.9, weight_decay=0.5)
  after = run(config, [zeros], params)
  jax.tree.map(lambda a, p: np.testing.assert_allclose(a, p * (1 - 0.1 * 0.5), rtol=1e-6),
               after, params)


def test_freeze_leaves_matching_params_unchanged_and_stateless():
  params = dense_params()
  grads = [jax.tree.map(jnp.ones_like, params)] * 3
  config = optim.optimizer_config('adamw', learning_rate=0.1, freeze='^Dense_0/kernel$')
  after = run(config, grads, params)
  np.testing.assert_array_equal(after['Dense_0']['kernel'], params['Dense_0']['kernel'])
  assert np.all(np.asarray(after['Dense_0']['bias']) < 1.0)
  state = optim.make_optimizer(config, 10).init(params)
  assert (2, 3) not in [np.shape(leaf) for leaf in jax.tree.leaves(state)]


def test_clip_norm_clips_the_global_norm():
  params = dense_params()
  grads = jax.tree.map(lambda p: jnp.full_like(p, 3.0), params)
  config = optim.optimizer_config('sgd', learning_rate=1.0, clip_norm=1.0)
  updates = jax.tree.map(jnp.subtract, run(config, [grads], params), params)
  np.testing.assert_allclose(optax.tree.norm(updates), 1.0, rtol=1e-5)
  np.testing.assert_allclose(updates['Dense_0']['bias'], -np.full(3, 1 / 3), rtol=1e-5)


def test_clip_value_clips_each_element():
  params = dense_params()
  grads = jax.tree.map(lambda p: jnp.linspace(-2.0, 2.0, p.size).reshape(p.shape), params)
  config = optim.optimizer_config('sgd', learning_rate=1.0, clip_value=0.5)
  updates = jax.tree.map(jnp.subtract, run(config, [grads], params), params)
  jax.tree.map(lambda u, g: np.testing.assert_allclose(u, -np.clip(g, -0.5, 0.5), atol=1e-6),
               updates, grads)


@pytest.mark.parametrize('overrides, expected', [
  ({}, {0: 1.0, 50: 1.0, 1000: 1.0}),
  ({'warmup_steps': 10}, {0: 0.0, 4: 0.4, 10: 1.0, 99: 1.0}),
  ({'schedule': 'cosine', 'warmup_steps': 10, 'end_learning_rate': 0.1},
   {0: 0.0, 5: 0.5, 10: 1.0, 55: 0.55, 100: 0.1, 200: 0.1}),
  ({'schedule': 'linear'}, {0: 1.0, 25: 0.75, 100: 0.0, 150: 0.0}),
  ({'schedule': 'exponential', 'decay_rate': 0.5, 'decay_steps': 10},
   {0: 1.0, 5: 0.5**0.5, 20: 0.25}),
  ({'schedule': 'step', 'step_boundaries': (10, 20), 'step_scales': (0.1, 0.01)},
   {0: 1.0, 10: 1.0, 11: 0.1, 20: 0.1, 21: 0.01}),
])
def test_learning_rate_schedule(overrides, expected):
  config = optim.optimizer_config('sgd', learning_rate=1.0, **overrides)
  schedule = optim.learning_rate_schedule(config, total_steps=100)
  for step, value in expected.items():
    assert float(schedule(step)) == pytest.approx(value, abs=1e-6), step


def test_decay_needs_steps_after_warmup():
  config = optim.optimizer_config('adam', schedule='cosine', warmup_steps=100)
  with pytest.raises(ConfigError, match=re.escape(
      "config.optimizer.warmup_steps=100: must be < total_steps=100 for schedule 'cosine'")):
    optim.make_optimizer(config, total_steps=100)


@pytest.mark.parametrize('key, value, requirement', [
  ('name', 'adamm', 'unknown optimizer; allowed: adadelta, adagrad, adam, adamw, nadam, rmsprop, '
   'sgd'),
  ('learning_rate', -0.1, 'must be > 0'),
  ('learning_rate', 0.0, 'must be > 0'),
  ('eps', 0.0, 'must be > 0'),
  ('decay_rate', -1.0, 'must be > 0'),
  ('decay_steps', 0, 'must be > 0'),
  ('momentum', 1.0, 'must be in [0, 1)'),
  ('momentum', -0.5, 'must be in [0, 1)'),
  ('b1', 1.0, 'must be in [0, 1)'),
  ('b2', -0.1, 'must be in [0, 1)'),
  ('rho', 0.0, 'must be in (0, 1)'),
  ('rho', 1.0, 'must be in (0, 1)'),
  ('initial_accumulator_value', -0.1, 'must be >= 0'),
  ('weight_decay', -1e-4, 'must be >= 0'),
  ('l1', -1.0, 'must be >= 0'),
  ('l2', -1.0, 'must be >= 0'),
  ('clip_norm', -1.0, 'must be >= 0'),
  ('clip_value', -1.0, 'must be >= 0'),
  ('warmup_steps', -1, 'must be >= 0'),
  ('end_learning_rate', -0.1, 'must be >= 0'),
  ('schedule', 'cosin', 'unknown schedule; allowed: constant, cosine, linear, exponential, step'),
  ('step_boundaries', (20, 10), 'must be increasing integers >= 0'),
  ('step_scales', (0.1,), 'must be 0 numbers >= 0, one per step_boundary'),
  ('freeze', '(', 'must be a regular expression'),
  ('regularize', 'kernel[', 'must be a regular expression'),
])
def test_validate_names_key_value_and_what_is_allowed(key, value, requirement):
  config = optim.optimizer_config('sgd')
  config[key] = value
  message = f'config.optimizer.{key}={value!r}: {requirement}'
  with pytest.raises(ConfigError, match=re.escape(message)) as error:
    optim.validate(config)
  assert '\n' not in str(error.value)
  with pytest.raises(ConfigError):
    optim.make_optimizer(config, total_steps=100)


def test_validate_accepts_every_default():
  for name in optim.OPTIMIZERS:
    optim.validate(optim.optimizer_config(name))


def test_optimizer_config_holds_keras_defaults_and_every_knob():
  assert optim.optimizer_config('rmsprop').rho == 0.9
  assert optim.optimizer_config('adadelta').rho == 0.95
  assert optim.optimizer_config('sgd').learning_rate == 0.01
  assert optim.optimizer_config('adam').learning_rate == 1e-3
  assert optim.optimizer_config('adamw').weight_decay == 0.004
  assert optim.optimizer_config('adam').weight_decay == 0.0
  assert optim.optimizer_config('adagrad').initial_accumulator_value == 0.1
  assert {optim.optimizer_config(name).eps for name in optim.OPTIMIZERS} == {1e-7}
  keys = {frozenset(optim.optimizer_config(name).keys()) for name in optim.OPTIMIZERS}
  assert len(keys) == 1
  assert optim.optimizer_config('sgd', momentum=0.9).momentum == 0.9


def test_optimizer_config_rejects_unknown_names_keys_and_types():
  with pytest.raises(ConfigError, match=re.escape("config.optimizer.name='adamm': unknown")):
    optim.optimizer_config('adamm')
  with pytest.raises(ConfigError, match=re.escape(
      'config.optimizer.momemtum=0.9: unknown key; allowed: b1, b2, centered')):
    optim.optimizer_config('sgd', momemtum=0.9)
  message = "config.optimizer.momentum='x': must be a float"
  with pytest.raises(ConfigError, match=re.escape(message)):
    optim.optimizer_config('sgd', momentum='x')

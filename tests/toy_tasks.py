"""Toy tasks that prove the task contract on families the image tasks do not exercise.

* `gan2d`: a GAN on a 2-D mixture of 8 Gaussians on a circle (the classic mode-collapse toy):
  two networks with two optimisers in one state (`config.optimizers.generator` and
  `.discriminator`), noise drawn from the eval step's RNG, a ratio-of-sums metric (the
  discriminator's precision on real points, which is no mean of per-example values), and an
  evaluator that draws a fixed-noise scatter plot at every evaluation and counts covered modes.
* `bandit`: a 10-armed Gaussian bandit learnt by epsilon-greedy action values, with no data set:
  every step pulls arms in a batch of parallel episodes drawn from the step's RNG, and its
  evaluator (the greedy policy's regret) is its validation.

`register()` adds them (and the mixture data set) to dljax's registries; the config files in
tests/configs call it, so `python -m dljax.main --config=tests/configs/gan2d.py` finds them.
"""

import io
import types

import jax
import jax.numpy as jnp
import ml_collections
import numpy as np
import optax
from flax import linen as nn
from flax import struct
from matplotlib.figure import Figure
from PIL import Image

from dljax import data, optim, tasks
from dljax.tasks.task import Task

MODES = 8
RADIUS, MODE_STD = 2.0, 0.05


def mode_centres() -> np.ndarray:
  angles = 2 * np.pi * np.arange(MODES) / MODES
  return RADIUS * np.stack([np.cos(angles), np.sin(angles)], axis=-1).astype(np.float32)


def mixture(config: ml_collections.ConfigDict) -> dict[str, dict[str, np.ndarray]]:
  """`DATASETS` loader: points of the mixture, 2048 to train on and 512 to test."""
  del config
  rng = np.random.default_rng(0)

  def points(count):
    modes = rng.integers(0, MODES, count)
    return {"point": (mode_centres()[modes] + MODE_STD * rng.standard_normal((count, 2))).astype(
        np.float32)}

  return {"train": points(2048), "test": points(512)}


class _MLP(nn.Module):
  widths: tuple[int, ...]

  @nn.compact
  def __call__(self, x):
    for width in self.widths[:-1]:
      x = nn.relu(nn.Dense(width)(x))
    return nn.Dense(self.widths[-1])(x)


@struct.dataclass
class GanState:
  params: dict  # {"generator": ..., "discriminator": ...}
  opt_state: dict


def _nearest_mode_distance(points_B2):
  return jnp.min(jnp.linalg.norm(points_B2[:, None] - mode_centres()[None], axis=-1), axis=-1)


def gan2d_config(**overrides) -> ml_collections.ConfigDict:
  config = ml_collections.ConfigDict(dict(latent=2, width=64))
  config.update(overrides)
  return config


def build_gan2d(config: ml_collections.ConfigDict, splits, total_steps: int) -> Task:
  del splits
  latent = config.gan2d.latent
  generator = _MLP((config.gan2d.width, config.gan2d.width, 2))
  discriminator = _MLP((config.gan2d.width, config.gan2d.width, 1))
  optimizers = {name: optim.make_optimizer(c, total_steps, f"optimizers.{name}")
                for name, c in config.optimizers.items()}

  def noise(rng, count):
    return jax.random.normal(rng, (count, latent))

  def init(rng, batch):
    g_rng, d_rng = jax.random.split(rng)
    params = {"generator": generator.init(g_rng, noise(g_rng, 1))["params"],
              "discriminator": discriminator.init(d_rng, batch["point"][:1])["params"]}
    return GanState(params=params,
                    opt_state={name: optimizers[name].init(params[name]) for name in params})

  def logits(params, points):
    return discriminator.apply({"params": params}, points)[:, 0]

  def train_step(state, batch, rng):
    real = batch["point"]
    fake = generator.apply({"params": state.params["generator"]}, noise(rng, len(real)))

    def d_loss(params):  # real -> 1, fake -> 0
      return (optax.sigmoid_binary_cross_entropy(logits(params, real), 1.0).mean()
              + optax.sigmoid_binary_cross_entropy(logits(params, fake), 0.0).mean())

    def g_loss(params):  # the non-saturating loss: fake -> 1
      points = generator.apply({"params": params}, noise(rng, len(real)))
      return optax.sigmoid_binary_cross_entropy(
          logits(state.params["discriminator"], points), 1.0).mean()

    params, opt_state, losses = dict(state.params), dict(state.opt_state), {}
    for name, loss in (("discriminator", d_loss), ("generator", g_loss)):
      losses[f"{name}_loss"], grads = jax.value_and_grad(loss)(params[name])
      updates, opt_state[name] = optimizers[name].update(grads, opt_state[name], params[name])
      params[name] = optax.apply_updates(params[name], updates)
      state = GanState(params=params, opt_state=opt_state)
    return state, losses

  def eval_step(state, batch, rng):
    real = batch["point"]
    fake = generator.apply({"params": state.params["generator"]}, noise(rng, len(real)))
    judged_real = logits(state.params["discriminator"], real) > 0
    fake_judged_real = logits(state.params["discriminator"], fake) > 0
    return {"true_real": judged_real.astype(jnp.float32),
            "false_real": fake_judged_real.astype(jnp.float32),
            "nearest_mode_distance": _nearest_mode_distance(fake)}

  def finalize(totals, count):
    judged_real = totals["true_real"] + totals["false_real"]
    return {"real_precision": totals["true_real"] / judged_real if judged_real else 0.0,
            "nearest_mode_distance": totals["nearest_mode_distance"] / count}

  def samples(state, rng, artefacts):
    fake = np.asarray(jax.jit(generator.apply)({"params": state.params["generator"]},
                                               noise(rng, 512)))
    artefacts.image("samples", _scatter(fake))
    near = _nearest_mode_distance(fake) < 3 * MODE_STD
    nearest = np.argmin(np.linalg.norm(fake[:, None] - mode_centres()[None], axis=-1), axis=-1)
    return {"modes_covered": float(len(set(nearest[np.asarray(near)].tolist())))}

  return Task(init=init, train_step=train_step, eval_step=eval_step, finalize=finalize,
              evaluators=(samples,))


def _scatter(points_N2: np.ndarray) -> np.ndarray:
  figure = Figure(figsize=(3, 3))
  axis = figure.subplots()
  axis.scatter(*mode_centres().T, c="red", s=30)
  axis.scatter(*points_N2.T, s=2, alpha=0.5)
  axis.set(xlim=(-3, 3), ylim=(-3, 3), aspect="equal")
  buffer = io.BytesIO()
  figure.savefig(buffer, format="png", dpi=60)
  return np.asarray(Image.open(buffer).convert("RGB"))


# The bandit. --------------------------------------------------------------------------------

ARMS = 10


@struct.dataclass
class BanditState:
  params: jax.Array  # the action-value estimates Q[a]
  opt_state: optax.OptState


def bandit_config(**overrides) -> ml_collections.ConfigDict:
  config = ml_collections.ConfigDict(dict(problem_seed=0, epsilon=0.1, pulls=64))
  config.update(overrides)
  return config


def build_bandit(config: ml_collections.ConfigDict, splits, total_steps: int) -> Task:
  assert splits is None  # it makes its own experience
  knobs = config.bandit
  true_means = jax.random.normal(jax.random.key(knobs.problem_seed), (ARMS,))
  tx = optim.make_optimizer(config.optimizer, total_steps)

  def init(rng, batch):
    del rng, batch
    params = jnp.zeros(ARMS)
    return BanditState(params=params, opt_state=tx.init(params))

  def train_step(state, batch, rng):
    del batch  # no data set: the step's RNG is the environment
    explore_rng, arm_rng, reward_rng = jax.random.split(rng, 3)
    greedy = jnp.argmax(state.params)
    explore = jax.random.uniform(explore_rng, (knobs.pulls,)) < knobs.epsilon
    arms = jnp.where(explore, jax.random.randint(arm_rng, (knobs.pulls,), 0, ARMS), greedy)
    rewards = true_means[arms] + jax.random.normal(reward_rng, (knobs.pulls,))
    pulls_per_arm = jnp.bincount(arms, length=ARMS)[arms]  # each arm moves toward its mean reward
    loss, grads = jax.value_and_grad(
        lambda q: 0.5 * jnp.sum(jnp.square(q[arms] - rewards) / pulls_per_arm))(state.params)
    updates, opt_state = tx.update(grads, state.opt_state, state.params)
    return (BanditState(params=optax.apply_updates(state.params, updates), opt_state=opt_state),
            {"loss": loss, "reward": rewards.mean()})

  def regret(state, rng, artefacts):
    del rng
    chosen = int(np.argmax(np.asarray(state.params)))
    artefacts.text("greedy_arm", f"arm {chosen}, estimated {float(state.params[chosen]):.3f}")
    return {"regret": float(true_means.max() - true_means[chosen])}

  return Task(init=init, train_step=train_step, evaluators=(regret,))


def register() -> None:
  """Adds the toy tasks and the mixture data set to dljax's registries (idempotent; `unregister`
  takes them out again, so other tests see the registries as shipped)."""
  no_checks = lambda config: None
  tasks.TASKS.setdefault("gan2d", types.SimpleNamespace(
      build=build_gan2d, validate=no_checks, task_config=gan2d_config))
  tasks.TASKS.setdefault("bandit", types.SimpleNamespace(
      build=build_bandit, validate=no_checks, task_config=bandit_config))
  data.DATASETS.setdefault("mixture2d", mixture)


def unregister() -> None:
  for name in ("gan2d", "bandit"):
    tasks.TASKS.pop(name, None)
  data.DATASETS.pop("mixture2d", None)

"""DQN on a gymnax environment (CartPole-v0 by default), as Imperial's coursework built it.

The task makes its own experience (its config has no `data` section): one train step is one
episode, a `lax.scan` over the environment's at most `max_steps_in_episode` steps. Each step
acts by the policy, stores the transition in a replay memory and, once the memory holds more
than a batch, makes one update on a batch drawn from it; after the episode ends the remaining
steps of the scan change nothing (masked), so all trials of a vmapped sweep scan in lock-step.
(A while loop that ends with the episode was 3x faster for one trial alone, but vmapped it copied
every trial's replay memory at every step, which made 32 seeds 2-4x slower, and a vmapped while
loop cannot call the host, as the gymnasium backend does.)
The replay memory, the environment's progress, epsilon and the last returns all live in the
state, so checkpoints hold them and kill -9 and resume replay the same episodes exactly.

With `dqn.backend='gymnasium'` the environment is any gymnasium one with a Box observation and
Discrete actions, stepped on the host from inside the jitted episode (dljax/envs.py: one host
call a step, which returns at once past the episode's end; no checkpointed environment state:
each episode resets it, seeded from the step's key, so resume replays the same episodes too).

The agent (`config.dqn`): a Q-network Dense24 relu -> Dense48 relu -> Dense(actions) with Keras'
initialisers, MSE (or Huber) on Q(s, a) against
  q_learning: r + gamma * max_a' Q(s', a')
  sarsa:      r + gamma * Q(s', a'), a' drawn from the policy at s'
and r alone where the episode ended (gym's old `done`, the 200-step cap included, as the course
had it). Policies: epsilon_greedy (a random action with probability epsilon; epsilon x decay at
every update while above its minimum) and softmax, p(a) ~ exp((Q(s, a) - max Q(s)) / T). With
`target_update_every` N > 1, Q(s', .) comes from a target network copied every N updates; N = 1
is the course's single network. Replay draws the batch with replacement.

Each train step's metrics are the episode's: `return`, `mean_return_50` (over the last 50
episodes), `epsilon` and `loss` (mean over the episode's updates). The evaluator
gives `mean_return_50`, `solved` (1 once that mean reached `solve_return`) and
`episodes_to_solve` (the first episode it did; absent while unsolved).
"""

import functools

import jax
import jax.numpy as jnp
import ml_collections
import optax
from flax import linen as nn
from flax import struct

from dljax import envs, optim, trials
from dljax.errors import ConfigError, require
from dljax.tasks.task import Task

# Choices that trials trained together may differ in (`dljax.trials.CHOICE_KEYS`): all four
# agents of the study train in one jit, each trial's own selected where the code below branches.
POLICIES = trials.CHOICE_KEYS["dqn.policy"]
TARGETS = trials.CHOICE_KEYS["dqn.target"]
LOSSES = ("mse", "huber")
SOLVE_WINDOW = 50  # episodes in the running mean of returns (`mean_return_50`)


def task_config() -> ml_collections.ConfigDict:
  """`config.dqn` at the course's values."""
  return ml_collections.ConfigDict(dict(
      env="CartPole-v0",  # gymnax: a name of dljax.envs.ENVIRONMENTS; gymnasium: any id
      backend="gymnax",  # or 'gymnasium': the environment on the host (dljax/envs.py)
      policy="epsilon_greedy",  # or 'softmax'
      target="q_learning",  # or 'sarsa'
      hidden=(24, 48),
      memory=20_000,  # replay memory size (transitions); the batch is config.batch_size
      gamma=0.95,
      epsilon=1.0,  # epsilon_greedy's exploration rate at the start
      epsilon_decay=0.995,  # x this at every update while above epsilon_min
      epsilon_min=0.01,
      temperature=0.025,  # softmax's T
      loss="mse",  # or 'huber'
      target_update_every=1,  # updates between target-network copies; 1 = no target network
      solve_return=195.0,  # that mean at which CartPole-v0 counts as solved
  ))


def validate(config: ml_collections.ConfigDict) -> None:
  """One-line errors for a config the agent cannot train, before anything is built."""
  if "data" in config:
    raise ConfigError("config.data: the dqn task makes its own experience; remove the data section")
  dqn = config.dqn
  envs.environment(dqn.env, dqn.backend, "dqn")
  require(dqn.policy in POLICIES, "dqn.policy", dqn.policy, f"allowed: {', '.join(POLICIES)}")
  require(dqn.target in TARGETS, "dqn.target", dqn.target, f"allowed: {', '.join(TARGETS)}")
  require(dqn.loss in LOSSES, "dqn.loss", dqn.loss, f"allowed: {', '.join(LOSSES)}")
  require(dqn.memory >= config.batch_size, "dqn.memory", dqn.memory,
           f"must hold at least one batch (config.batch_size={config.batch_size})")
  require(dqn.temperature > 0, "dqn.temperature", dqn.temperature, "must be > 0")
  require(0 <= dqn.gamma <= 1, "dqn.gamma", dqn.gamma, "must be in [0, 1]")
  require(0 <= dqn.epsilon_min <= dqn.epsilon <= 1, "dqn.epsilon", dqn.epsilon,
           f"must be in [epsilon_min={dqn.epsilon_min}, 1]")
  require(0 < dqn.epsilon_decay <= 1, "dqn.epsilon_decay", dqn.epsilon_decay, "must be in (0, 1]")
  require(dqn.target_update_every >= 1, "dqn.target_update_every", dqn.target_update_every,
           "must be >= 1 (1 = no target network)")
  require(len(dqn.hidden) >= 1 and min(dqn.hidden) >= 1, "dqn.hidden", dqn.hidden,
           "must be one or more widths >= 1")


# Every sum over a batch below is a matmul, so that a trial's episodes are the same bit for bit
# whether it trains alone, vmapped beside 127 others, or split over devices. XLA's CPU backend
# sums a reduction in an order that depends on how many trials are mapped together, its matmuls
# do not (measured: the loss and the bias gradients of 32 trials vmapped differed in the last
# bit from the same trials among 128, the kernels' gradients did not), and DQN turns a last-bit
# difference into other episodes within ~100 episodes.


@jax.custom_vjp
def add_bias(x_BF, bias_F):
  """x_BF + bias_F, whose gradient for the bias (a sum over the batch) is a matmul."""
  return x_BF + bias_F


def _add_bias_forward(x_BF, bias_F):
  return x_BF + bias_F, None


def _add_bias_backward(_, grad_BF):
  rows_NF = grad_BF.reshape(-1, grad_BF.shape[-1])
  return grad_BF, jnp.dot(jnp.ones(rows_NF.shape[0], rows_NF.dtype), rows_NF)


add_bias.defvjp(_add_bias_forward, _add_bias_backward)


class Dense(nn.Module):
  """x @ kernel + bias with Keras' initialisers (Glorot uniform, zeros) and flax's names; the
  bias's gradient is a matmul (`add_bias`)."""
  features: int

  @nn.compact
  def __call__(self, x_BI):
    kernel_IF = self.param("kernel", nn.initializers.glorot_uniform(),
                           (x_BI.shape[-1], self.features))
    bias_F = self.param("bias", nn.initializers.zeros, (self.features,))
    return add_bias(x_BI @ kernel_IF, bias_F)


def batch_mean(values_B):
  """The mean of a batch's values, summed by a matmul."""
  return jnp.dot(values_B, jnp.ones_like(values_B)) / values_B.shape[0]


class QNetwork(nn.Module):
  """Dense relu layers, then one linear output per action."""
  hidden: tuple[int, ...]
  num_actions: int

  @nn.compact
  def __call__(self, obs_BO):
    x = obs_BO
    for width in self.hidden:
      x = nn.relu(Dense(width)(x))
    return Dense(self.num_actions)(x)


@struct.dataclass
class Memory:
  """The replay memory as fixed arrays: a ring of `capacity` transitions."""
  obs_NO: jax.Array
  action_N: jax.Array
  reward_N: jax.Array
  next_obs_NO: jax.Array
  done_N: jax.Array  # 1.0 where the episode ended: the target is r alone
  next_index: jax.Array  # where the next transition goes
  size: jax.Array  # transitions held (at most capacity)

  @classmethod
  def empty(cls, capacity: int, obs_size: int) -> "Memory":
    zeros = lambda *shape: jnp.zeros(shape, jnp.float32)
    return cls(obs_NO=zeros(capacity, obs_size), action_N=jnp.zeros(capacity, jnp.int32),
               reward_N=zeros(capacity), next_obs_NO=zeros(capacity, obs_size),
               done_N=zeros(capacity), next_index=jnp.int32(0), size=jnp.int32(0))

  def add(self, obs_O, action, reward, next_obs_O, done, keep) -> "Memory":
    """The memory with one transition added, or unchanged where `keep` is False."""
    i = self.next_index
    write = lambda rows, value: rows.at[i].set(jnp.where(keep, value, rows[i]))
    capacity = self.action_N.shape[0]
    return Memory(obs_NO=write(self.obs_NO, obs_O), action_N=write(self.action_N, action),
                  reward_N=write(self.reward_N, reward),
                  next_obs_NO=write(self.next_obs_NO, next_obs_O),
                  done_N=write(self.done_N, done.astype(jnp.float32)),
                  next_index=jnp.where(keep, (i + 1) % capacity, i),
                  size=jnp.where(keep, jnp.minimum(self.size + 1, capacity), self.size))

  def sample(self, uniform_B) -> tuple[jax.Array, ...]:
    """The transitions at uniform_B (numbers in [0, 1), one per row drawn) of the rows held."""
    index_B = jnp.minimum((uniform_B * self.size).astype(jnp.int32), self.size - 1)
    return (self.obs_NO[index_B], self.action_N[index_B], self.reward_N[index_B],
            self.next_obs_NO[index_B], self.done_N[index_B])


@struct.dataclass
class DqnState:
  params: dict  # the online Q-network
  target_params: dict  # Q(s', .)'s network: the online one as of the last copy
  opt_state: optax.OptState
  memory: Memory
  epsilon: jax.Array
  updates: jax.Array  # replay updates so far
  episode: jax.Array  # episodes so far
  returns_W: jax.Array  # the last 50 episodes' returns, a ring by episode
  solved_at: jax.Array  # the episode whose running mean first reached solve_return; 0 = not yet
  env_id: jax.Array  # which host environment is this trial's (gymnasium backend; else 0)


def policy_noise(rng, shape: tuple[int, ...], num_actions: int,
                 name: str | jax.Array) -> dict[str, jax.Array]:
  """The random numbers the policy `name` needs to act `shape` times (e.g. [steps, B]); for a
  traced `name` (trials of both policies together), each policy's, from the same `rng`.

  Drawn for a whole episode at once: on CPU each draw inside the scan was a small rolled
  threefry loop, and such loops made up most of an environment step's thunks.
  """
  noise = {}
  names = trials.options(name, POLICIES)
  if "softmax" in names:  # Gumbel-max: argmax(logits + Gumbel noise) samples softmax(logits)
    noise["gumbel"] = jax.random.gumbel(rng, (*shape, num_actions))
  if "epsilon_greedy" in names:
    explore_rng, action_rng = jax.random.split(rng)
    noise["uniform"] = jax.random.uniform(explore_rng, shape)
    noise["random_action"] = jax.random.randint(action_rng, shape, 0, num_actions)
  return noise


def policy(q_BA, epsilon, noise: dict[str, jax.Array], name: str | jax.Array,
           temperature: float):
  """Actions [B] of the policy `name` (or, traced, each trial's) from the action values q_BA and
  its `policy_noise`."""
  def actions(name: str):
    if name == "softmax":  # p(a) ~ exp((Q(s, a) - max Q(s)) / T)
      return jnp.argmax((q_BA - q_BA.max(-1, keepdims=True)) / temperature + noise["gumbel"], -1)
    return jnp.where(noise["uniform"] < epsilon, noise["random_action"], jnp.argmax(q_BA, -1))

  return trials.choose(name, POLICIES, actions)


def running_mean(returns_W, episodes):
  """The mean of the last min(episodes, W) returns (0 before the first)."""
  held_W = jnp.arange(returns_W.shape[0]) < episodes
  return jnp.sum(jnp.where(held_W, returns_W, 0.0)) / jnp.maximum(jnp.sum(held_W), 1)


def build(config: ml_collections.ConfigDict, data, total_steps: int) -> Task:
  del data  # none: the agent makes its own experience
  dqn = config.dqn
  env = envs.environment(dqn.env, dqn.backend, "dqn")
  max_steps, obs_size = env.max_steps, env.obs_size
  network = QNetwork(tuple(dqn.hidden), env.num_actions)
  # Updates, not episodes, step the optimiser: at most one per environment step.
  tx = optim.make_optimizer(config.optimizer, total_steps * max_steps)
  batch_size = config.batch_size
  act = functools.partial(policy, name=dqn.policy, temperature=dqn.temperature)

  def q_values(params, obs_BO):
    return network.apply({"params": params}, obs_BO)

  def loss_fn(params, obs_BO, action_B, target_B):
    q_B = jnp.take_along_axis(q_values(params, obs_BO), action_B[:, None], -1)[:, 0]
    error_B = q_B - jax.lax.stop_gradient(target_B)
    return batch_mean(optax.huber_loss(error_B) if dqn.loss == "huber" else jnp.square(error_B))

  def init(rng, batch):
    del batch
    params = network.init(rng, jnp.zeros((1, obs_size)))["params"]
    return DqnState(params=params, target_params=params, opt_state=tx.init(params),
                    memory=Memory.empty(dqn.memory, obs_size), epsilon=jnp.float32(dqn.epsilon),
                    updates=jnp.int32(0), episode=jnp.int32(0),
                    returns_W=jnp.zeros(SOLVE_WINDOW, jnp.float32), solved_at=jnp.int32(0),
                    env_id=env.new_id(rng))

  def update(state: DqnState, noise) -> tuple[DqnState, jax.Array]:
    """One replay update: a batch from the memory, one optimiser step, epsilon decayed."""
    obs_BO, action_B, reward_B, next_obs_BO, done_B = state.memory.sample(noise["replay"])
    next_q_BA = q_values(state.target_params, next_obs_BO)

    def next_value(target: str):
      if target == "sarsa":  # Q(s', a'), a' drawn from the policy
        next_action_B = act(next_q_BA, state.epsilon, noise["next_action"])
        return jnp.take_along_axis(next_q_BA, next_action_B[:, None], -1)[:, 0]
      return next_q_BA.max(-1)  # max_a' Q(s', a')

    next_value_B = trials.choose(dqn.target, TARGETS, next_value)
    target_B = reward_B + dqn.gamma * (1.0 - done_B) * next_value_B  # r alone at the end
    loss, grads = jax.value_and_grad(loss_fn)(state.params, obs_BO, action_B, target_B)
    updates, opt_state = tx.update(grads, state.opt_state, state.params)
    params = optax.apply_updates(state.params, updates)
    count = state.updates + 1
    copy = count % dqn.target_update_every == 0
    return state.replace(
        params=params, opt_state=opt_state, updates=count,
        target_params=jax.tree.map(lambda new, old: jnp.where(copy, new, old), params,
                                   state.target_params),
        epsilon=jnp.where(state.epsilon > dqn.epsilon_min, state.epsilon * dqn.epsilon_decay,
                          state.epsilon)), loss

  def no_update(state: DqnState, noise) -> tuple[DqnState, jax.Array]:
    del noise
    return state, jnp.float32(0.0)

  def episode_noise(rng) -> dict:
    """Every random number of an episode, one row per environment step."""
    env_rng, act_rng, replay_rng, next_action_rng = jax.random.split(rng, 4)
    noise_shape = lambda rows: (max_steps, rows)
    return {"env": jax.random.split(env_rng, max_steps),
            "act": policy_noise(act_rng, noise_shape(1), env.num_actions, dqn.policy),
            "replay": jax.random.uniform(replay_rng, noise_shape(batch_size)),
            # Q-learning's target needs no next action.
            "next_action": policy_noise(next_action_rng, noise_shape(batch_size),
                                        env.num_actions, dqn.policy)
                           if "sarsa" in trials.options(dqn.target, TARGETS) else {}}

  def env_step(carry, noise):
    """One environment step of the episode (a no-op once it has ended), then maybe an update."""
    state, obs_O, env_state, running, episode_return, loss_sum = carry
    action = act(q_values(state.params, obs_O[None]), state.epsilon, noise["act"])[0]
    next_obs_O, next_env_state, reward, done = env.step(noise["env"], env_state, action, running)
    state = state.replace(memory=state.memory.add(obs_O, action, reward, next_obs_O, done,
                                                  running))
    learns = running & (state.memory.size > batch_size)
    state, loss = jax.lax.cond(learns, update, no_update, state, noise)
    return (state, next_obs_O, next_env_state, running & ~done,
            episode_return + jnp.where(running, reward, 0.0), loss_sum + loss), learns

  def train_step(state: DqnState, batch, rng):
    del batch  # empty: the environment is the data
    reset_rng, steps_rng = jax.random.split(rng)
    obs_O, env_state = env.reset(reset_rng, state.env_id)
    carry = (state, obs_O, env_state, jnp.bool_(True), jnp.float32(0.0), jnp.float32(0.0))
    (state, *_, episode_return, loss_sum), learned_T = jax.lax.scan(
        env_step, carry, episode_noise(steps_rng))
    returns_W = state.returns_W.at[state.episode % SOLVE_WINDOW].set(episode_return)
    episode = state.episode + 1
    mean_return = running_mean(returns_W, episode)
    solved_now = (state.solved_at == 0) & (mean_return >= dqn.solve_return)
    state = state.replace(returns_W=returns_W, episode=episode,
                          solved_at=jnp.where(solved_now, episode, state.solved_at))
    return state, {"return": episode_return, "mean_return_50": mean_return,
                   "epsilon": state.epsilon,
                   "loss": loss_sum / jnp.maximum(jnp.sum(learned_T), 1)}

  def solve(state: DqnState, rng, artefacts) -> dict[str, float]:
    """The running mean of the returns, and whether (and when) it reached solve_return."""
    del rng, artefacts
    solved_at = int(state.solved_at)
    metrics = {"mean_return_50": float(running_mean(state.returns_W, state.episode)),
               "solved": float(solved_at > 0)}
    if solved_at:
      metrics["episodes_to_solve"] = float(solved_at)
    return metrics

  return Task(init=init, train_step=train_step, evaluators=(solve,))

"""The course's DQN loop in Keras 3 (JAX backend) on gymnasium's CartPole-v0, for speed only.

As Imperial's coursework (08_RL.ipynb, the catalogue's family F) wrote it: a Sequential
Dense24 relu -> Dense48 relu -> Dense2 with MSE and Adam 1e-3; each environment step acts
epsilon-greedily with `model.predict` on the one state, stores the transition in a deque of
20,000 and, once it holds more than 32, replays: a random batch of 32, the Q-learning targets
r + 0.95 max_a' Q(s', a') (r alone where the episode ended) from `model.predict` on the batch,
and one `model.fit` on it; epsilon x 0.995 per replay down to 0.01. The batch's two predicts
are one call on the stacked states (fewer calls than the course's, so if anything faster).
"""

import collections
import os
import random
import time
import warnings

import numpy as np

os.environ.setdefault("KERAS_BACKEND", "jax")  # before Keras is imported

GAMMA, BATCH, MEMORY = 0.95, 32, 20_000
EPSILON_DECAY, EPSILON_MIN = 0.995, 0.01


def train(episodes: int, seed: int = 0) -> dict[str, float]:
  """Trains one agent for `episodes`: the environment steps taken, the seconds they took (the
  first episode's apart), the returns."""
  import gymnasium
  import keras

  keras.utils.set_random_seed(seed)
  rng = random.Random(seed)
  model = keras.Sequential([keras.Input((4,)), keras.layers.Dense(24, activation="relu"),
                            keras.layers.Dense(48, activation="relu"), keras.layers.Dense(2)])
  model.compile(loss="mse", optimizer=keras.optimizers.Adam(1e-3))
  with warnings.catch_warnings():
    warnings.simplefilter("ignore")  # CartPole-v0 is out of date
    env = gymnasium.make("CartPole-v0")
  memory = collections.deque(maxlen=MEMORY)
  epsilon, steps, returns = 1.0, 0, []
  start = time.perf_counter()
  episode_seconds = []
  for episode in range(episodes):
    state, _ = env.reset(seed=seed * 10_000 + episode)
    done, episode_return = False, 0.0
    while not done:
      if rng.random() < epsilon:
        action = rng.randrange(2)
      else:
        action = int(np.argmax(model.predict(state[None], verbose=0)[0]))
      next_state, reward, terminated, truncated, _ = env.step(action)
      done = terminated or truncated
      memory.append((state, action, reward, next_state, done))
      state, episode_return, steps = next_state, episode_return + reward, steps + 1
      if len(memory) > BATCH:
        states, actions, rewards, next_states, dones = map(np.array, zip(
            *rng.sample(memory, BATCH), strict=True))
        q = model.predict(np.concatenate([states, next_states]), verbose=0)
        targets = q[:BATCH].copy()
        targets[np.arange(BATCH), actions] = rewards + GAMMA * (1 - dones) * q[BATCH:].max(1)
        model.fit(states, targets, epochs=1, verbose=0)
        if epsilon > EPSILON_MIN:
          epsilon *= EPSILON_DECAY
    returns.append(episode_return)
    episode_seconds.append(time.perf_counter() - start - sum(episode_seconds))
  return {"env_steps": steps, "seconds": time.perf_counter() - start,
          "first_episode_seconds": episode_seconds[0],  # Keras compiles predict and fit in it
          "returns": returns, "keras": keras.__version__}

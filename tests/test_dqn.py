"""DQN on CartPole (dljax/tasks/dqn.py): the JAX CartPole against gymnasium's, the policies, one
episode a train step through the one trainer, seeds trained together, kill -9 and resume, and
the config errors."""

import json
import os
import signal
import subprocess
import sys
import warnings

import gymnasium
import jax
import jax.numpy as jnp
import numpy as np
import pytest

import configs.dqn_cartpole
from dljax import checkpoint, config_lib, envs, tasks, train
from dljax.errors import ConfigError
from dljax.tasks import dqn
from tests.conftest import REPO, cpu_env
from tests.test_contract import saved_state
from tests.test_train import assert_trees_close, read_jsonl, start_and_stop_after_first_checkpoint

SMOKE = "configs/dqn_cartpole.py:smoke"


def smoke_config(arg: str = "", **overrides):
  config = config_lib.load(f"{SMOKE}{',' + arg if arg else ''}")
  for key, value in overrides.items():
    config_lib.override(config, key, value)
  return config


STATE_FIELDS = ("x", "x_dot", "theta", "theta_dot")


@pytest.mark.parametrize("x64", [True, False], ids=["float64", "float32"])
def test_cartpole_v0_steps_as_gymnasiums_for_hundreds_of_steps(x64):
  """The same actions from the same states give the same states, rewards, terminations and
  200-step cap as gymnasium's CartPole-v0. In float64 the JAX environment runs on beside
  gymnasium's for whole episodes; in float32 (what training runs) it starts each step from
  gymnasium's state, since rounding differences grow over an episode. A controller that leans
  into the pole takes episodes to the cap, random actions end them early."""
  with jax.enable_x64(x64), warnings.catch_warnings():
    warnings.simplefilter("ignore")  # gymnasium: CartPole-v0 is out of date
    reference = gymnasium.make("CartPole-v0")
    env, params = envs.make("CartPole-v0")
    step = jax.jit(lambda state, action: env.step_env(jax.random.key(0), state, action, params))
    is_truncated = jax.jit(lambda state: env.is_truncated(state, params))
    start = env.reset(jax.random.key(0), params)[1]
    as_state = lambda values, time: start.replace(time=time, **dict(zip(
        STATE_FIELDS, jnp.asarray(values, jnp.float64 if x64 else jnp.float32), strict=True)))
    random_actions = np.random.default_rng(0)
    steps, capped = 0, 0
    for episode in range(6):
      obs, _ = reference.reset(seed=episode)
      state = as_state(reference.unwrapped.state, 0)
      for time in range(1, 201):
        action = int(obs[2] + 0.5 * obs[3] > 0) if episode % 2 == 0 else int(
            random_actions.integers(2))
        if not x64:
          state = as_state(reference.unwrapped.state, time - 1)
        obs, reward, terminated, truncated, _ = reference.step(action)
        _, state, jax_reward, jax_terminated, _ = step(state, action)
        np.testing.assert_allclose([getattr(state, name) for name in STATE_FIELDS],
                                   reference.unwrapped.state, rtol=1e-7 if x64 else 1e-5,
                                   atol=1e-9 if x64 else 1e-6)
        assert (float(jax_reward), bool(jax_terminated), bool(is_truncated(state))) == (
            reward, terminated, truncated)
        steps += 1
        if terminated or truncated:
          capped += truncated
          break
  assert steps > 600 and capped >= 2


def test_policies_draw_their_actions():
  q_BA = jnp.array([[0.0, 1.0], [1.0, 0.0]] * 500)
  rng = jax.random.key(0)

  def actions(name, epsilon=0.0, temperature=0.025):
    noise = dqn.policy_noise(rng, q_BA.shape[:1], 2, name)
    return np.asarray(dqn.policy(q_BA, epsilon, noise, name, temperature))

  greedy = np.tile([1, 0], 500)
  np.testing.assert_array_equal(actions("epsilon_greedy"), greedy)
  assert 0.4 < np.mean(actions("epsilon_greedy", epsilon=1.0) == greedy) < 0.6
  np.testing.assert_array_equal(actions("softmax"), greedy)  # Q differs by 40 T
  # p(greedy) = 1 / (1 + exp(-1)) = 0.73 where Q differs by T.
  assert 0.68 < np.mean(actions("softmax", temperature=1.0) == greedy) < 0.78


def test_a_smoke_run_learns_one_episode_a_step(tmp_path):
  results = train.run(smoke_config(), str(tmp_path))
  train_records = [r for r in read_jsonl(str(tmp_path)) if r["split"] == "train"]
  assert [r["step"] for r in train_records] == list(range(1, 7))  # one record per episode
  returns = [r["return"] for r in train_records]
  assert all(r == int(r) and 1 <= r <= 200 for r in returns)
  assert train_records[-1]["mean_return_50"] == pytest.approx(np.mean(returns))
  epsilons = [r["epsilon"] for r in train_records]
  assert epsilons[0] == 1.0 > epsilons[-1]  # decayed once the memory held more than a batch
  assert train_records[-1]["loss"] > 0
  assert results["test"] == {"mean_return_50": pytest.approx(np.mean(returns)), "solved": 0.0}
  assert results["epochs"] is None and results["parameters"] == 4 * 24 + 24 + 24 * 48 + 48 + 98
  state = saved_state(str(tmp_path))  # no target network: Q(s', .) from the online one
  for path, value in state.items():
    if path.startswith("params/"):
      np.testing.assert_array_equal(state[f"target_{path}"], value)


# The four agents x two seeds, with the options off by default on: Huber loss, and a target
# network copied every 1000 updates (not within the smoke run's 6 episodes).
AGENTS_TOGETHER = [{"arg": f"policy={policy},target={target}", "seed": seed}
                   for policy in dqn.POLICIES for target in dqn.TARGETS for seed in (0, 1)]
OPTIONS = {"dqn.loss": "huber", "dqn.target_update_every": 1000}


def agent_config(trial: dict):
  return smoke_config(trial["arg"], seed=trial["seed"], **OPTIONS)


@pytest.fixture(scope="module")
def agents_together(tmp_path_factory):
  """The 8 trials trained together in one jit on one device: {trial index: workdir}."""
  root = tmp_path_factory.mktemp("agents_together")
  workdirs = [str(root / str(k)) for k in range(len(AGENTS_TOGETHER))]
  train.run_together([agent_config(t) for t in AGENTS_TOGETHER], workdirs)
  return workdirs


@pytest.mark.parametrize("arg", ["policy=softmax,target=sarsa",
                                 "policy=epsilon_greedy,target=q_learning"])
def test_agents_and_seeds_train_together_as_alone(agents_together, tmp_path, arg):
  """Trials of other policies and targets (each trial's chosen inside the one jit) and other
  seeds beside it leave a trial's episodes as they are alone."""
  k = AGENTS_TOGETHER.index({"arg": arg, "seed": 1})
  alone = train.run(agent_config(AGENTS_TOGETHER[k]), str(tmp_path))
  with open(os.path.join(agents_together[k], "results.json")) as f:
    together = json.load(f)
  assert together["test"] == alone["test"] and together["trials_together"] == 8
  assert_records_close(read_jsonl(agents_together[k]), read_jsonl(str(tmp_path)))
  returns = lambda workdir: [r["return"] for r in read_jsonl(workdir) if r["split"] == "train"]
  assert returns(agents_together[k - 1]) != returns(str(tmp_path))  # seed 0: other episodes
  last = saved_state(str(tmp_path))
  assert_trees_close(saved_state(agents_together[k]), last, atol=1e-5)
  first = checkpoint.read_state(str(tmp_path / "checkpoints"), 3)
  for path in (p for p in last if p.startswith("params/")):
    np.testing.assert_array_equal(last[f"target_{path}"], first[f"target_{path}"])
    assert not np.array_equal(last[path], first[path])


SPLIT_RUN = """
import json, sys
import jax
from dljax import train
from tests import test_dqn
assert jax.device_count() == 8
trials = test_dqn.AGENTS_TOGETHER
train.run_together([test_dqn.agent_config(t) for t in trials],
                   [f"{sys.argv[1]}/{k}" for k in range(len(trials))])
"""


def test_trials_split_over_8_devices_train_as_on_one(agents_together, tmp_path):
  """A task with no data set splits its trials over the devices (here 8 fake CPU devices, one
  trial each): the same episodes as all 8 trials on one device."""
  subprocess.run([sys.executable, "-c", SPLIT_RUN, str(tmp_path)], env=cpu_env(8), cwd=REPO,
                 check=True, capture_output=True, timeout=240)
  for k, workdir in enumerate(agents_together):
    split = str(tmp_path / str(k))
    with open(os.path.join(split, "config.json")) as f:
      info = json.load(f)
    assert (info["device_count"], info["trials_split_over_devices"]) == (8, True)
    assert_records_close(read_jsonl(split), read_jsonl(workdir))


def assert_records_close(records: list[dict], expected: list[dict]) -> None:
  """The same metrics.jsonl records: the same episodes (returns), losses within float rounding
  (the vmapped and the plain step reduce in other orders)."""
  assert [(r["step"], r["split"], r.get("return")) for r in records] == [
      (r["step"], r["split"], r.get("return")) for r in expected]
  for record, expected_record in zip(records, expected, strict=True):
    assert record.keys() == expected_record.keys()
    names = sorted(record.keys() - {"split"})
    np.testing.assert_allclose([record[m] for m in names], [expected_record[m] for m in names],
                               rtol=1e-5, atol=1e-6)


KILLED_RUN = {"num_steps": 40, "eval_every_steps": 5}


def test_kill_9_and_resume_is_bit_identical(tmp_path):
  train.run(smoke_config(**KILLED_RUN), str(tmp_path / "straight"))
  args = (f"--config={SMOKE}", *(f"--config.{key}={value}" for key, value in KILLED_RUN.items()))
  code = start_and_stop_after_first_checkpoint(args, tmp_path / "resumed", signal.SIGKILL,
                                               last_step=KILLED_RUN["num_steps"])
  assert code == -signal.SIGKILL
  train.run(smoke_config(**KILLED_RUN), str(tmp_path / "resumed"))
  assert read_jsonl(str(tmp_path / "straight")) == read_jsonl(str(tmp_path / "resumed"))
  # The replay memory, the returns and epsilon are in the checkpoint with the weights.
  straight = saved_state(str(tmp_path / "straight"))
  assert any(path.startswith("memory/") for path in straight)
  assert_trees_close(straight, saved_state(str(tmp_path / "resumed")), atol=0)
  with open(tmp_path / "resumed" / "results.json") as f:
    assert json.load(f)["steps"] == KILLED_RUN["num_steps"]


def test_the_gymnasium_backend_writes_the_same_files(tmp_path):
  """Any gymnasium id (here CartPole-v1, a 500-step cap), stepped on the host from the step; two
  seeds trained together, each stepping its own host environment."""
  configs = [smoke_config(seed=seed, **{"dqn.backend": "gymnasium", "dqn.env": "CartPole-v1"})
             for seed in (0, 1)]
  workdirs = [str(tmp_path / "0"), str(tmp_path / "1")]
  results = train.run_together(configs, workdirs)
  all_returns = []
  for workdir, result in zip(workdirs, results, strict=True):
    train_records = [r for r in read_jsonl(workdir) if r["split"] == "train"]
    assert [r["step"] for r in train_records] == list(range(1, 7))
    returns = [r["return"] for r in train_records]
    assert all(r == int(r) and 8 <= r <= 500 for r in returns)  # CartPole lasts 8 at the least
    assert train_records[-1]["epsilon"] < 1.0 and train_records[-1]["loss"] > 0
    assert result["test"] == {"mean_return_50": pytest.approx(np.mean(returns)), "solved": 0.0}
    assert checkpoint.read_state(os.path.join(workdir, "checkpoints"), 6)["episode"] == 6
    all_returns.append(returns)
  assert all_returns[0] != all_returns[1]


def test_the_gymnasium_backend_resumes_in_a_new_process(monkeypatch):
  """Host environments are not checkpointed: every episode resets its own, seeded from the step's
  key, so a state restored where no host environment exists yet replays the same episodes."""
  task = tasks.build(smoke_config(**{"dqn.backend": "gymnasium"}), None, 4)
  step = jax.jit(lambda state, rng: task.train_step(state, {}, rng))
  keys = jax.random.split(jax.random.key(0), 4)

  def returns(state, keys):
    for key in keys:
      state, metrics = step(state, key)
      yield float(metrics["return"])

  state = task.init(jax.random.key(1), {})
  straight = list(returns(state, keys))
  for key in keys[:2]:
    state = jax.device_get(step(state, key)[0])  # the checkpoint after two episodes
  monkeypatch.setattr(envs, "_HOST_ENVS", {})  # as in a new process
  assert list(returns(state, keys[2:])) == straight[2:] and len(set(straight)) > 1


@pytest.mark.parametrize("key, value, message", [
    ("dqn.policy", "boltzmann", "config.dqn.policy='boltzmann': allowed: epsilon_greedy, softmax"),
    ("dqn.target", "expected_sarsa", "config.dqn.target='expected_sarsa': allowed: q_learning, "
     "sarsa"),
    ("dqn.env", "MountainCar-v0", "config.dqn.env='MountainCar-v0': unknown environment; "
     "allowed: CartPole-v0, CartPole-v1"),
    ("dqn.memory", "16", "config.dqn.memory=16: must hold at least one batch "
     "(config.batch_size=32)"),
    ("dqn.temperature", "0", "config.dqn.temperature=0.0: must be > 0"),
    ("dqn.loss", "l1", "config.dqn.loss='l1': allowed: mse, huber"),
    ("dqn.backend", "gym", "config.dqn.backend='gym': allowed: gymnax, gymnasium"),
])
def test_a_config_the_agent_cannot_train_is_one_line(key, value, message):
  config = smoke_config()
  config_lib.override(config, key, value)
  with pytest.raises(ConfigError) as error:
    config_lib.validate(config)
  assert str(error.value) == message


@pytest.mark.parametrize("env, message", [
    ("NoSuchEnv-v0", "config.dqn.env='NoSuchEnv-v0': not a gymnasium environment (Environment "
     "`NoSuchEnv` doesn't exist.)"),
    ("Pendulum-v1", "config.dqn.env='Pendulum-v1': its action space Box(-2.0, 2.0, (1,), "
     "float32) is not Discrete; the agent picks one of n actions"),
])
def test_a_gymnasium_env_the_agent_cannot_use_is_one_line(env, message):
  config = smoke_config(**{"dqn.backend": "gymnasium", "dqn.env": env})
  with pytest.raises(ConfigError) as error:
    config_lib.validate(config)
  assert str(error.value) == message


def test_the_agents_sweep_is_four_agents_of_32_seeds():
  trials = configs.dqn_cartpole.sweep_agents()
  assert len(trials) == 4 * 32
  assert {t["config_arg"] for t in trials} == {
      f"policy={p},target={t}" for p in dqn.POLICIES for t in dqn.TARGETS}

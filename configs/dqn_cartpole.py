r"""Imperial task 6: DQN on CartPole-v0, 200 episodes of at most 200 steps (dljax/tasks/dqn.py).

Q-network Dense24 relu -> Dense48 relu -> Dense2, MSE, Adam 1e-3; replay memory 20,000, batch 32,
one update per environment step once the memory holds more than 32; gamma 0.95; epsilon 1.0
x 0.995 per update down to 0.01; softmax T = 0.025. One train step is one episode, so
metrics.jsonl has one record per episode (return, mean of the last 50, epsilon, loss) and
results.json the episode at which the mean of the last 50 returns first reached 195.

    python -m dljax.main --config=configs/dqn_cartpole.py --workdir=runs/dqn
    python -m dljax.main --config=configs/dqn_cartpole.py:policy=softmax,target=sarsa \
        --workdir=runs/dqn_sarsa_softmax
    python -m launch.sweep --config=configs/dqn_cartpole.py --sweep=agents --vmap \
        --parallel=2 --workdir=runs/dqn_agents   # 4 agents x 32 seeds: one process per agent
    python bench/dqn.py --summarize --workdir=runs/dqn_agents   # -> runs/dqn_agents/dqn_study.json
    python -m dljax.main --config=configs/dqn_cartpole.py --config.dqn.backend=gymnasium \
        --config.dqn.env=CartPole-v1 --workdir=runs/dqn_gym   # any gymnasium id, on the host

Measured (`python bench/dqn.py`, 32 seeds per agent, the shared 2-core CPU): the median over
seeds of the mean of the last 50 returns at episode 100 / 200, and the seeds that reached 195:
epsilon-greedy + Q-learning 140 / 172, 9 of 32 (median episode 112); epsilon-greedy + SARSA
161 / 175, 20 of 32 (109); softmax + Q-learning 47 / 172, 7 of 32 (123); softmax + SARSA
55 / 162, 10 of 32 (114). All four agents x 32 seeds: 81 s of training (2.9 million environment
steps, each with its update), 176 s wall at load average 2.5-3.8; run again as two agents at a
time (`bench/dqn.py` now), the same numbers bit for bit, 1,067 s wall at load average ~30. One
seed alone (the second command): 1.5 s of training, 13 s wall. The README's "DQN on CartPole"
has the curves, the speed, and the gymnasium backend against the course's Keras loop.
"""

from dljax import config_lib, optim
from dljax.tasks import dqn

SEEDS = 32


def get_config(arg: str | None = None):
  arg = config_lib.parse_arg(arg, smoke=False, policy="epsilon_greedy", target="q_learning")
  config = config_lib.trainer_config(
      task="dqn",
      batch_size=32,  # the replay batch
      num_steps=200,  # episodes
      log_every_steps=1,  # one metrics.jsonl record per episode
      eval_every_steps=50,  # the evaluator's running mean and checkpoints, every 50 episodes
      early_stopping=dict(metric="mean_return_50", mode="max", patience=0, restore_best=False),
  )
  config.dqn.policy = arg.policy
  config.dqn.target = arg.target
  config.optimizer = optim.optimizer_config("adam", learning_rate=1e-3)
  if arg.smoke:
    config.num_steps = 6
    config.eval_every_steps = 3
    config.dqn.memory = 500
  return config.lock()


def sweep_agents():
  """The four agents (Q-learning and SARSA x epsilon-greedy and softmax), each over 32 seeds."""
  return [{"config_arg": f"policy={policy},target={target}", "seed": seed}
          for policy in dqn.POLICIES for target in dqn.TARGETS for seed in range(SEEDS)]

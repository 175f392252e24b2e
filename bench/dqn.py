r"""DQN on CartPole-v0, the four agents over many seeds: the speed of the jitted loop and the study.

    python bench/dqn.py > dqn.json                    # 4 agents x 32 seeds x 200 episodes
    python bench/dqn.py --seeds=4 --episodes=20       # a quick look
    python bench/dqn.py --override=dqn.target_update_every=100   # with a target network

Trains all the trials (the agents differ in `dqn.policy` and `dqn.target`, choices that trials
trained together may differ in) together in one process and one jit, as
`python -m launch.sweep --config=configs/dqn_cartpole.py --sweep=agents --together` does, their
axis split over --devices CPU devices (`XLA_FLAGS=--xla_force_host_platform_device_count=N`,
default one per core: each core steps its share of the trials), each trial into its own workdir
under --workdir; then it reads the trials' files. Prints one JSON object (also written to
WORKDIR/dqn_study.json): the machine, the settings, the wall seconds from this script's start to
the trials' files written, and per agent the compile and train seconds, the environment steps
taken (every episode's return: CartPole pays 1 a step) and steps per second, and the study: the
mean of the last 50 returns at episodes 50, 100, 150 and 200 (median and quartiles over seeds),
the share of seeds that solved (mean of the last 50 >= 195), the episode at which each seed did
and their median. --plot draws the mean of the last 50 against the episode per agent (median and
interquartile band over seeds). Progress goes to stderr. A second call with the same --workdir
resumes the trials from their checkpoints (finished ones are only tested again); --summarize
trains nothing and summarises a sweep dir that
`python -m launch.sweep --config=configs/dqn_cartpole.py --sweep=agents --vmap` filled.
"""

import argparse
import json
import os
import platform
import subprocess
import sys
import tempfile
import time

import numpy as np

# dljax (and so jax) and matplotlib are imported where they are used, after the training process
# has started: they took ~3 s, which came before it.
START = time.perf_counter()  # this script's start, for the wall seconds
CONFIG = os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "configs",
                      "dqn_cartpole.py")
MILESTONES = (50, 100, 150, 200)
STUDY_FILE = "dqn_study.json"  # the printed JSON, also written into --workdir


def start_training(args: argparse.Namespace) -> subprocess.Popen:
  """Starts the one process that trains the trials (all, or the agents' first --seeds seeds).

  Started before this script imports numpy, matplotlib and dljax (~3 s), which it does while the
  process trains.
  """
  names = [] if args.seeds is None else [f"--trial={name}" for name in agent_workdirs(args)[1]]
  overrides = [f"num_steps={args.episodes}",
               f"eval_every_steps={args.eval_every or args.episodes}", *args.override]
  flags = os.environ.get("XLA_FLAGS", "")
  env = dict(os.environ, XLA_FLAGS=f"{flags} --xla_force_host_platform_device_count="
             f"{args.devices}".strip())
  return subprocess.Popen([sys.executable, "-m", "launch.sweep", f"--config={CONFIG}",
                           "--sweep=agents", f"--workdir={args.workdir}", "--together", *names,
                           *(f"--config.{item}" for item in overrides)], stdout=sys.stderr,
                          env=env)


def agent_workdirs(args: argparse.Namespace) -> tuple[dict[str, list[str]], list[str]]:
  """{agent: its seeds' workdirs} of the agents' first --seeds seeds (all without --seeds), and
  the trials' names."""
  from launch import sweep

  trials = {name: trial for name, trial in sweep.load_sweep(CONFIG, "agents").items()
            if args.seeds is None or trial["seed"] < args.seeds}
  agents = {}
  for name, trial in trials.items():
    agents.setdefault(trial["config_arg"], []).append(os.path.join(args.workdir, name))
  return agents, list(trials)


def read_agent(workdirs: list[str]) -> dict:
  """One agent's seconds and every seed's returns [seeds, episodes], from its trials' files."""
  from dljax import report, writers

  results = [report.read_json(os.path.join(w, "results.json")) for w in workdirs]
  series = [[r for r in writers.read_metrics(w) if r["split"] == "train"] for w in workdirs]
  return {"seconds": {key: results[0][key] for key in (
              "startup_seconds", "compile_seconds", "train_seconds", "trials_together")},
          "returns": np.array([[r["return"] for r in s] for s in series]),
          "mean_return_50": np.array([[r["mean_return_50"] for r in s] for s in series]),
          "episodes_to_solve": [r["test"].get("episodes_to_solve") for r in results]}


def summary(run: dict, solve_return: float) -> dict:
  """One agent's line of the study: its speed, and its running means across seeds."""
  steps = int(run["returns"].sum())
  means_SE = run["mean_return_50"]
  solved = [e for e in run["episodes_to_solve"] if e is not None]
  quartiles = lambda values: [round(float(q), 1) for q in np.percentile(values, (25, 50, 75))]
  return {
      "env_steps": steps,
      "mean_return_50_quartiles": {episode: quartiles(means_SE[:, episode - 1])
                                   for episode in MILESTONES if episode <= means_SE.shape[1]},
      "solved_share": len(solved) / len(means_SE),
      "episodes_to_solve": run["episodes_to_solve"],  # per seed; None: not solved
      "median_episodes_to_solve": float(np.median(solved)) if solved else None,
      "solve_return": solve_return,
  }


def plot(runs: dict[str, dict], path: str) -> None:
  """The mean of the last 50 returns against the episode: median and interquartile band."""
  from matplotlib.figure import Figure

  figure = Figure(figsize=(7, 4.5))
  axis = figure.subplots()
  for agent, run in runs.items():
    means_SE = run["mean_return_50"]
    episodes = np.arange(1, means_SE.shape[1] + 1)
    low, median, high = np.percentile(means_SE, (25, 50, 75), axis=0)
    line, = axis.plot(episodes, median, label=agent.replace("policy=", "").replace(
        ",target=", " + "))
    axis.fill_between(episodes, low, high, color=line.get_color(), alpha=0.2)
  axis.axhline(195, color="grey", linestyle="--", linewidth=1)
  axis.set(xlabel="episode", ylabel="mean return of the last 50 episodes",
           title=f"DQN on CartPole-v0, {len(means_SE)} seeds each (median, 25-75%)")
  axis.legend(loc="lower right")
  figure.savefig(path, dpi=100, bbox_inches="tight")


def main() -> None:
  parser = argparse.ArgumentParser(description=__doc__,
                                   formatter_class=argparse.RawDescriptionHelpFormatter)
  parser.add_argument("--seeds", type=int, help="the first N seeds of each agent (default: all)")
  parser.add_argument("--episodes", type=int, default=200)
  parser.add_argument("--eval_every", type=int, default=0,
                      help="episodes between evaluations and checkpoints (0: only at the end)")
  parser.add_argument("--override", action="append", default=[], metavar="KEY=VALUE",
                      help="a config override for every trial (repeatable)")
  parser.add_argument("--devices", type=int, default=os.cpu_count(),
                      help="CPU devices the trials are split over (one per core)")
  parser.add_argument("--workdir", default=os.path.join(tempfile.gettempdir(), "dqn_bench"))
  parser.add_argument("--plot", default="", help="write the study's PNG here")
  parser.add_argument("--summarize", action="store_true",
                      help="train nothing: summarise the finished trials in --workdir (say, of "
                      "python -m launch.sweep --config=configs/dqn_cartpole.py --sweep=agents "
                      "--vmap --workdir=DIR)")
  args = parser.parse_args()

  training = None if args.summarize else start_training(args)
  from configs import dqn_cartpole
  from dljax import writers

  agents = agent_workdirs(args)[0]
  if training is not None and training.wait() != 0:
    sys.exit(f"bench/dqn.py: training failed (exit code {training.returncode})")
  runs = {agent: read_agent(workdirs) for agent, workdirs in agents.items()}
  wall = time.perf_counter() - START
  solve_return = dqn_cartpole.get_config().dqn.solve_return
  if args.plot:
    plot(runs, args.plot)
  steps = sum(int(run["returns"].sum()) for run in runs.values())
  # Of the process that trained the trials (the same in each one's results.json); of the first
  # agent's process where the agents trained apart (a sweep dir --summarize reads).
  seconds = next(iter(runs.values()))["seconds"]
  together = seconds["trials_together"] == sum(len(run["returns"]) for run in runs.values())
  study = {
      "machine": {"cpu_count": os.cpu_count(), "platform": platform.platform(),
                  "load_average": os.getloadavg()},
      "settings": vars(args),
      "wall_seconds": round(wall, 1),
      **{key: value and round(value, 1) for key, value in seconds.items()},
      "env_steps": steps,
      "env_steps_per_second": round(steps / wall),
      "env_steps_per_train_second": round(steps / seconds["train_seconds"]) if together else None,
      "agents": {agent: summary(run, solve_return) for agent, run in runs.items()},
  }
  writers.write_json(os.path.join(args.workdir, STUDY_FILE), study)
  print(json.dumps(study, indent=2))


if __name__ == "__main__":
  main()

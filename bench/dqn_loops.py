r"""One DQN agent on CartPole-v0, three loops: environment steps per second as JSON.

    python bench/dqn_loops.py --episodes=10 > loops.json

- `keras`: the course's loop in Keras 3 on gymnasium's CartPole (bench/frameworks/keras_dqn.py:
  `model.predict` every step, `model.fit` on a batch of 32 every step);
- `dljax_gymnasium`: `configs/dqn_cartpole.py` with `--config.dqn.backend=gymnasium`: the same
  gymnasium environment stepped on the host from dljax's jitted episode;
- `dljax_gymnax`: the default backend, the whole episode jitted (one seed; bench/dqn.py runs 32
  seeds of each agent together).

The same agent in each (epsilon-greedy, Q-learning, the course's hyper-parameters), seed 0, the
same number of episodes; each loop runs in its own process (its own JAX runtime). Early episodes
are short (~20 steps) and all pay an update a step, so steps per second hardly depend on the
episodes run. Steps per second exclude compiling: dljax's `train_seconds`, Keras' episodes after
the first (where it traces and compiles predict and fit); walls include it.
"""

import argparse
import json
import os
import platform
import subprocess
import sys
import tempfile
import time

LOOPS = ("keras", "dljax_gymnasium", "dljax_gymnax")


def run_loop(loop: str, episodes: int, workdir: str) -> dict:
  """One loop's environment steps, seconds and steps per second."""
  start = time.perf_counter()
  if loop == "keras":
    from bench.frameworks import keras_dqn

    run = keras_dqn.train(episodes)
    first = run["returns"][0]
    return {"env_steps": run["env_steps"], "wall_seconds": round(time.perf_counter() - start, 1),
            "env_steps_per_second": round((run["env_steps"] - first) / (
                run["seconds"] - run["first_episode_seconds"])), "keras": run["keras"]}
  from dljax import config_lib, train, writers

  config = config_lib.load("configs/dqn_cartpole.py")
  for key, value in (("num_steps", episodes), ("eval_every_steps", episodes),
                     ("dqn.backend", loop.removeprefix("dljax_"))):
    config_lib.override(config, key, value)
  results = train.run(config, os.path.join(workdir, loop), restart=True)
  steps = int(sum(r["return"] for r in writers.read_metrics(os.path.join(workdir, loop))
                  if r["split"] == "train"))
  return {"env_steps": steps, "wall_seconds": round(time.perf_counter() - start, 1),
          "compile_seconds": round(results["compile_seconds"], 1),
          "env_steps_per_second": round(steps / results["train_seconds"])}


def main() -> None:
  parser = argparse.ArgumentParser(description=__doc__,
                                   formatter_class=argparse.RawDescriptionHelpFormatter)
  parser.add_argument("--episodes", type=int, default=10)
  parser.add_argument("--loop", choices=LOOPS, help="run only this loop, here (what main runs)")
  parser.add_argument("--workdir", default=os.path.join(tempfile.gettempdir(), "dqn_loops"))
  args = parser.parse_args()
  if args.loop:
    print(json.dumps(run_loop(args.loop, args.episodes, args.workdir)))
    return
  loops = {}
  for loop in LOOPS:
    out = subprocess.run([sys.executable, __file__, f"--loop={loop}",
                          f"--episodes={args.episodes}", f"--workdir={args.workdir}"],
                         check=True, stdout=subprocess.PIPE, text=True).stdout
    loops[loop] = json.loads(out.splitlines()[-1])
    print(f"{loop}: {loops[loop]}", file=sys.stderr)
  print(json.dumps({"machine": {"cpu_count": os.cpu_count(), "platform": platform.platform(),
                                "load_average": os.getloadavg()},
                    "episodes": args.episodes, "loops": loops}, indent=2))


if __name__ == "__main__":
  main()

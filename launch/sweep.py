r"""Runs a sweep: each trial of a config file's `sweep_NAME()` trains in its own workdir.

    python -m launch.sweep --config=configs/mnist_mlp.py --sweep=optimizers \
        --workdir=runs/mlp_optimizers [--parallel=N] [--executor=slurm ...] [--dry_run] \
        [--config.KEY=VALUE ...]

Trial `T` trains in `WORKDIR/T/` as `python -m dljax.main --config=... --config.KEY=VALUE ...`
(its output goes to `WORKDIR/T/train.log`); `--config.KEY=VALUE` flags given here apply to every
trial. Locally the trials run one after another, or N at a time with `--parallel=N`, each
process then seeing one device (CUDA_VISIBLE_DEVICES), or with `--per_device=K` K processes
sharing each device (small models leave a GPU mostly idle), each given 1/K of its memory.
`--executor=slurm` submits them as one SLURM job array through submitit
(`pip install -e '.[slurm]'`), at most `--parallel` at a time.

With `--vmap`, trials that differ only in values (`dljax.trials.VALUE_KEYS`: seeds, learning
rates, dropout rates, regulariser strengths, ...) train together in one process and one jit, their
steps vmapped (`dljax.train.run_together`), at most N at once with `--vmap=N`; each still gets its
own workdir, the same as when trained alone. Such a group runs as
`python -m launch.sweep ... --trial=A --trial=B --together`, its output going to A's train.log
(with no --trial, `--together` trains all the sweep's trials together, here).
`--trial=NAME` (repeatable) runs only the trials named.

Every trial is validated (config argument, overrides, `config_lib.validate`) before any starts;
a mistake stops the sweep with one line naming the trial and the key (exit code 2). Running the
same command again skips finished trials (results.json present) and resumes interrupted ones
from their checkpoints. WORKDIR/sweep.json records the sweep; a local sweep ends by writing its
report (`python -m dljax.report WORKDIR`). A failed trial is summarised by its log's error line.
On Linux, killing the launcher (even with kill -9) sends its running trials SIGTERM: each saves
a checkpoint and exits, to resume when the sweep runs again.

Trials run as subprocesses rather than in this process: each gets a fresh JAX runtime and its
own device memory, a crash or a kill ends one trial and not the sweep, and the same command
runs unchanged in a SLURM job.
"""

import argparse
import ctypes
import json
import os
import queue
import re
import shlex
import signal
import subprocess
import sys
import time
import warnings
from collections.abc import Mapping
from concurrent import futures
from typing import Any

import jax
import ml_collections

from dljax import config_lib, report, train, trials
from dljax.errors import ConfigError, DataError, RunError
from launch import sweeps

OVERRIDE_PREFIX = "--config."
LOG_FILE = "train.log"
SWEEP_PREFIX = "sweep_"


ERROR_PREFIX = "dljax: error:"  # how dljax.main reports a config or data error
# A Python exception's last traceback line: 'ValueError: ...', 'jax.errors.JaxRuntimeError: ...',
# 'KeyboardInterrupt'.
EXCEPTION_LINE = re.compile(r"^([A-Za-z_]\w*\.)*[A-Za-z_]\w*(Error|Exception|Interrupt|Exit)(:|$)")
_PR_SET_PDEATHSIG = 1  # <linux/prctl.h>
_SIGTERM = int(signal.SIGTERM)
_PRCTL = ctypes.CDLL(None, use_errno=True).prctl if sys.platform == "linux" else None


class TrialError(RuntimeError):
  """A trial's process failed; the message names the trial, its exit code and its last words."""


def load_sweep(path: str, name: str) -> dict[str, sweeps.Trial]:
  """The trials of `sweep_NAME()` in the Python file `path`, by trial name.

  Raises a one-line ConfigError if the file does not load, has no such sweep, or the sweep
  raises or gives no trials.
  """
  module = config_lib.load_module(path)
  available = sorted(key.removeprefix(SWEEP_PREFIX) for key in vars(module)
                     if key.startswith(SWEEP_PREFIX) and callable(getattr(module, key)))
  if not callable(getattr(module, SWEEP_PREFIX + name, None)):
    raise ConfigError(f"--sweep={name}: {path} has no {SWEEP_PREFIX}{name}(); its sweeps: "
                      f"{', '.join(available) or 'none'}")
  try:
    trials = sweeps.named(config_lib.call_in(path, getattr(module, SWEEP_PREFIX + name)))
  except ValueError as error:
    raise ConfigError(f"{SWEEP_PREFIX}{name}(): {error}") from None
  if not trials:
    raise ConfigError(f"{SWEEP_PREFIX}{name}() in {path} gave no trials")
  return trials


def config_spec(spec: str, overrides: Mapping[str, Any]) -> str:
  """'path[:arg]' with the trial's 'config_arg' appended to the arg, e.g. 'x.py:smoke,aug=light'."""
  path, _, arg = spec.partition(":")
  arg = ",".join(filter(None, (arg, overrides.get(sweeps.CONFIG_ARG, ""))))
  return f"{path}:{arg}" if arg else path


def override_texts(common: Mapping[str, str], overrides: Mapping[str, Any]) -> dict[str, str]:
  """The `--config.KEY=VALUE` pairs of a trial: the sweep-wide ones, then the trial's own."""
  trial = {key: sweeps.value_text(value) for key, value in overrides.items()
           if key != sweeps.CONFIG_ARG}
  if both := sorted(common.keys() & trial.keys()):
    raise ConfigError(f"config.{both[0]}: set both by --config.{both[0]} and by the sweep")
  return {**common, **trial}


def validate(spec: str, common: Mapping[str, str], trials: Mapping[str, sweeps.Trial],
             device_count: int | None = None) -> dict[str, ml_collections.ConfigDict]:
  """Builds every trial's config as `dljax.main` will, so a mistake stops the sweep up front.

  `device_count`: the devices each trial will shard over, where known (a SLURM trial's GPUs).
  Returns the configs by trial name.
  """
  configs = {}
  for name, overrides in trials.items():
    try:
      config = config_lib.load(config_spec(spec, overrides))
      for key, text in override_texts(common, overrides).items():
        config_lib.override(config, key, text)
      config_lib.validate(config, device_count)
    except ConfigError as error:
      raise ConfigError(f"trial {name}: {error}") from None
    configs[name] = config
  return configs


def trial_command(spec: str, common: Mapping[str, str], overrides: Mapping[str, Any],
                  workdir: str) -> list[str]:
  """The `python -m dljax.main` command line of one trial, with absolute paths."""
  path, colon, arg = spec.partition(":")
  spec = config_spec(os.path.abspath(path) + colon + arg, overrides)
  return [sys.executable, "-m", "dljax.main", f"--config={spec}",
          f"--workdir={os.path.abspath(workdir)}",
          *(f"{OVERRIDE_PREFIX}{key}={text}"
            for key, text in override_texts(common, overrides).items())]


def plan(spec: str, common: Mapping[str, str], trials: Mapping[str, sweeps.Trial],
         sweep_dir: str) -> list[dict[str, Any]]:
  """Each trial's name, overrides, workdir (SWEEP_DIR/NAME) and command line."""
  return [{"name": name, "overrides": overrides, "workdir": os.path.join(sweep_dir, name),
           "command": trial_command(spec, common, overrides, os.path.join(sweep_dir, name))}
          for name, overrides in trials.items()]


def jobs(runs: list[dict[str, Any]], configs: Mapping[str, ml_collections.ConfigDict],
         sweep_command: list[str], vmap: int | None) -> list[dict[str, Any]]:
  """What to run: one job per trial ({"names", "workdirs", "command"}), or with `vmap` set, one
  per group of trials that can train together (`trials.group_key`), at most `vmap` trials each
  (0: no limit), in sweep order. New and interrupted trials are grouped apart: a group starts
  together or resumes together. A group's command is `sweep_command` (`python -m launch.sweep`
  with this sweep's config, sweep, workdir and overrides) with its trials' names and --together.
  """
  if vmap is None:
    return [{"names": [r["name"]], "workdirs": [r["workdir"]], "command": r["command"]}
            for r in runs]
  by_key = {}
  for run in runs:
    key = (trials.group_key(configs[run["name"]]), status(run["workdir"]) == "new")
    by_key.setdefault(key, []).append(run)
  size = vmap or len(runs)
  return [{"names": [r["name"] for r in group], "workdirs": [r["workdir"] for r in group],
           "command": [*sweep_command, *(f"--trial={r['name']}" for r in group), "--together"]}
          for members in by_key.values()
          for group in (members[i:i + size] for i in range(0, len(members), size))]


def run_job(command: list[str], workdirs: list[str], device: str | None = None,
            memory_fraction: float | None = None) -> list[dict | None]:
  """Runs a job's command, its output appended to its first workdir's train.log; returns the
  results of each workdir.

  This is what each SLURM array job runs, and what the local runner runs for each job.
  `device` restricts the process to one GPU (CUDA_VISIBLE_DEVICES); `memory_fraction` caps the
  share of its memory JAX takes (XLA_PYTHON_CLIENT_MEM_FRACTION; by default 75%, so two
  processes on one GPU would not fit), unless that variable is already set. A trial's results are
  results.json's contents, or None if it stopped on SIGTERM after a checkpoint (run it again to
  resume). Raises TrialError if the process failed.
  """
  os.makedirs(workdirs[0], exist_ok=True)
  log_path = os.path.join(workdirs[0], LOG_FILE)
  env = dict(os.environ, **({"CUDA_VISIBLE_DEVICES": device} if device is not None else {}))
  if memory_fraction is not None:
    env.setdefault("XLA_PYTHON_CLIENT_MEM_FRACTION", f"{memory_fraction:.3f}")
  with open(log_path, "a") as log:
    code = subprocess.run(command, stdout=log, stderr=subprocess.STDOUT, env=env,
                          preexec_fn=terminate_with_parent).returncode
  if code != 0:
    with open(log_path, errors="replace") as log:
      reason = error_line(log.read())
    raise TrialError(f"{os.path.basename(workdirs[0])}: exit code {code}: {reason} "
                     f"(log: {log_path})")
  return [_read_results(workdir) for workdir in workdirs]


def error_line(log: str) -> str:
  """The line of a failed trial's log that says why it failed: the last `dljax: error:` line,
  else the last line that looks like a Python exception, else the last non-empty line. (The last
  line alone is often a progress bar, or JAX's note that it removed its internal frames from the
  traceback.)"""
  lines = [line.strip() for line in re.split(r"[\r\n]", log) if line.strip()]  # tqdm redraws on \r
  for line in reversed(lines):
    if ERROR_PREFIX in line:
      return line[line.index(ERROR_PREFIX):]
  return next((line for line in reversed(lines) if EXCEPTION_LINE.match(line)),
              lines[-1] if lines else "")


def terminate_with_parent() -> None:
  """A trial process's preexec_fn: on Linux, asks for SIGTERM when the launcher dies (even by
  kill -9), so the trial saves a checkpoint and exits 0 instead of running on as an orphan.

  The kernel sends the signal when the *thread* that started the process exits: `run_local`
  starts trials from a ThreadPoolExecutor, whose threads live until the pool is shut down, after
  every trial has ended. This runs between fork and exec in a child of a threaded process, so it
  does one system call through a function looked up beforehand (`_PRCTL`), nothing else.
  """
  if _PRCTL is not None:
    _PRCTL(_PR_SET_PDEATHSIG, _SIGTERM)


def _read_results(workdir: str) -> dict | None:
  results_path = os.path.join(workdir, report.RESULTS_FILE)
  if not os.path.exists(results_path):
    return None
  with open(results_path) as f:
    return json.load(f)


def status(workdir: str) -> str:
  """'finished' (results.json is there), 'interrupted' (checkpoints to resume from) or 'new'."""
  if os.path.exists(os.path.join(workdir, report.RESULTS_FILE)):
    return "finished"
  return "interrupted" if os.path.isdir(os.path.join(workdir, "checkpoints")) else "new"


def check_sweep_file(workdir: str, record: dict[str, Any]) -> None:
  """Refuses a workdir whose sweep.json holds a different sweep.

  Trials may be added to a sweep between runs, but the config, sweep and sweep-wide overrides
  must stay: a finished trial of another config would otherwise be taken as done.
  """
  path = os.path.join(workdir, report.SWEEP_FILE)
  if not os.path.exists(path):
    return
  try:
    old = report.read_json(path)
  except ValueError as error:  # garbled: it is written again below
    raise ConfigError(f"{error}; delete it (the sweep writes it again) or use another "
                      "--workdir") from None
  if changed := [key for key in record if key != "trials" and old.get(key) != record[key]]:
    raise ConfigError(f"{path} holds a sweep with {changed[0]}={old.get(changed[0])!r}, not "
                      f"{record[changed[0]]!r}; use the same or another --workdir")


def write_json(path: str, value: Any) -> None:
  """Writes atomically: an interrupted write leaves the old file or the new one."""
  os.makedirs(os.path.dirname(path) or ".", exist_ok=True)
  with open(path + ".tmp", "w") as f:
    json.dump(value, f, indent=2)
  os.replace(path + ".tmp", path)


def say(line: str) -> None:
  """Prints a line in one write: `print` from several threads can interleave text and newline."""
  sys.stdout.write(line + "\n")
  sys.stdout.flush()


def cpu_slots(parallel: int) -> list[set[int] | None]:
  """The CPUs of each of `parallel` worker slots: this process's CPUs split into that many
  disjoint runs of neighbours; all None (no pinning) for one slot or fewer CPUs than slots."""
  cpus = sorted(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else []
  if parallel < 2 or len(cpus) < parallel:
    return [None] * parallel
  return [set(cpus[slot * len(cpus) // parallel:(slot + 1) * len(cpus) // parallel])
          for slot in range(parallel)]


def run_local(runs: list[dict[str, Any]], parallel: int, per_device: int = 1) -> list[str]:
  """Runs the jobs, `parallel` processes at a time; returns the names of the trials that failed.

  With `parallel` > 1 each process sees one device, `per_device` processes sharing each: the
  first ceil(parallel / per_device) of CUDA_VISIBLE_DEVICES (or 0, 1, ...), each process taking
  at most 0.9 / per_device of its device's memory. Each of the `parallel` slots also has CPUs of
  its own (`cpu_slots`), which its processes are pinned to: unpinned, two DQN processes on the
  2-core machine each ran at half the speed of one alone, their XLA threads migrating between
  the cores; pinned, each ran at the speed of one alone.
  """
  needed = -(-parallel // per_device)
  visible = os.environ.get("CUDA_VISIBLE_DEVICES")
  devices = visible.split(",") if visible else [str(i) for i in range(needed)]
  if needed > len(devices):
    raise ConfigError(f"--parallel={parallel} --per_device={per_device}: needs {needed} devices; "
                      f"CUDA_VISIBLE_DEVICES={visible} has {len(devices)}")
  memory_fraction = 0.9 / per_device if per_device > 1 and parallel > 1 else None
  free = queue.SimpleQueue()
  for slot, cpus in enumerate(cpu_slots(parallel)):
    free.put((devices[slot // per_device] if parallel > 1 else None, cpus))

  def run(index: int, job: dict[str, Any]) -> list[str]:
    device, cpus = slot = free.get()
    names = job["names"]
    label = f"[{index + 1}/{len(runs)}] {names[0]}" + (
        f" (+{len(names) - 1} trained together)" if len(names) > 1 else "")
    say(f"{label}: started" + (f" on device {device}" if device else "") +
        (f" on CPUs {','.join(map(str, sorted(cpus)))}" if cpus else ""))
    if cpus:  # this thread's CPUs, which the process it starts inherits (no window unpinned)
      os.sched_setaffinity(0, cpus)
    start = time.perf_counter()
    try:
      results = run_job(job["command"], job["workdirs"], device, memory_fraction)
    except TrialError as error:
      say(f"{label}: failed: {error}")
      return names
    finally:
      free.put(slot)
    outcome = "done" if all(results) else "stopped by SIGTERM; run again to resume"
    say(f"{label}: {outcome} in {time.perf_counter() - start:.0f} s")
    return []

  with futures.ThreadPoolExecutor(parallel) as pool:
    return [name for names in pool.map(run, range(len(runs)), runs) for name in names]


def slurm_executor(folder: str, *, partition: str | None, time_min: int, gpus: int, cpus: int,
                   mem_gb: float | None, parallel: int | None, cluster: str = "slurm"):
  """A submitit executor for SLURM job arrays; `cluster='local'` runs the jobs on this machine."""
  try:
    import submitit  # optional: only the SLURM path needs it
  except ImportError:
    raise ConfigError("--executor=slurm needs submitit: pip install -e '.[slurm]'") from None
  try:
    executor = submitit.AutoExecutor(folder=folder, cluster=cluster)
  except RuntimeError as error:  # e.g. no srun: not on a SLURM cluster
    raise ConfigError(f"--executor=slurm: {error}") from None
  executor.update_parameters(
      name="dljax_sweep", timeout_min=time_min, gpus_per_node=gpus, cpus_per_task=cpus,
      mem_gb=mem_gb, slurm_partition=partition, slurm_array_parallelism=parallel)
  return executor


def submit(runs: list[dict[str, Any]], executor) -> list:
  """Submits the jobs as one job array of `run_job` calls; returns submitit's jobs."""
  return executor.map_array(run_job, [r["command"] for r in runs], [r["workdirs"] for r in runs])


def _parse(argv: list[str]) -> tuple[argparse.Namespace, dict[str, str], argparse.ArgumentParser]:
  parser = argparse.ArgumentParser(prog="python -m launch.sweep", description=__doc__,
                                   formatter_class=argparse.RawDescriptionHelpFormatter)
  parser.add_argument("--config", required=True, help="config file[:arg], as for dljax.main")
  parser.add_argument("--sweep", required=True, help="NAME of a function sweep_NAME()")
  parser.add_argument("--sweep_file", help="Python file defining sweep_NAME() (default: --config)")
  parser.add_argument("--workdir", required=True, help="the sweep dir: one subdir per trial")
  parser.add_argument("--executor", choices=("local", "slurm"), default="local")
  parser.add_argument("--parallel", type=int, help="trials at once (local default: 1; slurm: "
                      "array parallelism, default: no limit)")
  parser.add_argument("--per_device", type=int, default=1, metavar="K",
                      help="local: trials sharing each device, each with 0.9/K of its memory "
                      "(default 1)")
  parser.add_argument("--vmap", type=int, nargs="?", const=0, metavar="N",
                      help="train trials that differ only in values together, vmapped in one "
                      "process, at most N at once (default: no limit)")
  parser.add_argument("--trial", action="append", metavar="NAME",
                      help="run only this trial (repeatable; names as --dry_run lists them)")
  parser.add_argument("--together", action="store_true",
                      help="train the --trial trials (default: all) together in this process "
                      "(what --vmap runs)")
  parser.add_argument("--dry_run", action="store_true", help="validate and list; run nothing")
  slurm = parser.add_argument_group("slurm")
  slurm.add_argument("--partition")
  slurm.add_argument("--time_min", type=int, default=240, help="time limit per trial, minutes")
  slurm.add_argument("--gpus", type=int, default=1, help="GPUs per trial")
  slurm.add_argument("--cpus", type=int, default=8, help="CPUs per trial")
  slurm.add_argument("--mem_gb", type=float, help="memory per trial (default: the partition's)")
  args, rest = parser.parse_known_args(argv)
  common = {}
  for item in rest:
    key, has_value, text = item.removeprefix(OVERRIDE_PREFIX).partition("=")
    if not item.startswith(OVERRIDE_PREFIX) or not has_value:
      parser.exit(2, f"{parser.prog}: error: {item}: expected --config.KEY=VALUE\n")
    common[key] = text
  if args.parallel is not None and args.parallel < 1:
    parser.exit(2, f"{parser.prog}: error: --parallel={args.parallel}: must be >= 1\n")
  if args.per_device < 1:
    parser.exit(2, f"{parser.prog}: error: --per_device={args.per_device}: must be >= 1\n")
  if args.per_device > 1 and args.executor != "local":
    parser.exit(2, f"{parser.prog}: error: --per_device: local runs only (SLURM gives each job "
                "its own --gpus)\n")
  if args.vmap is not None and args.vmap < 0:
    parser.exit(2, f"{parser.prog}: error: --vmap={args.vmap}: must be >= 1 (or bare: no limit)\n")
  return args, common, parser


def main(argv: list[str] | None = None) -> int:
  """Validates and runs (or submits) the sweep in `argv` (default: sys.argv[1:]); exit status."""
  args, common, parser = _parse(sys.argv[1:] if argv is None else argv)
  if not args.together:
    # This process only validates configs; on a GPU machine it must not hold the memory (JAX
    # preallocates most of it) that its trials need. They inherit no such setting.
    jax.config.update("jax_platforms", "cpu")
    # Trials start by fork and a preexec_fn (`terminate_with_parent`), which JAX, once it runs
    # here, warns may deadlock a multithreaded process: the child makes one system call, then
    # execs.
    warnings.filterwarnings("ignore", r"os\.fork\(\) was called", RuntimeWarning)
  try:
    trials_ = load_sweep(args.sweep_file or args.config.partition(":")[0], args.sweep)
    if unknown := sorted(set(args.trial or ()) - trials_.keys()):
      raise ConfigError(f"--trial={unknown[0]}: no such trial in sweep_{args.sweep}() "
                        "(--dry_run lists them)")
    selected = {name: o for name, o in trials_.items() if not args.trial or name in args.trial}
    configs = validate(args.config, common, selected,
                       device_count=args.gpus if args.executor == "slurm" and args.gpus else None)
    runs = plan(args.config, common, selected, args.workdir)
    if args.together:
      train.run_together([configs[r["name"]] for r in runs], [r["workdir"] for r in runs])
      return 0
    record = {"config": args.config, "sweep": args.sweep, "sweep_file": args.sweep_file,
              "overrides": common,
              "trials": [{"name": name, "overrides": o} for name, o in trials_.items()]}
    check_sweep_file(args.workdir, record)
    statuses = [status(r["workdir"]) for r in runs]
    pending = [r for r, s in zip(runs, statuses, strict=True) if s != "finished"]
    print(f"{len(runs)} trials: " + ", ".join(f"{statuses.count(s)} {s}" for s in (
        "finished", "interrupted", "new")), flush=True)
    path, colon, arg = args.config.partition(":")
    sweep_command = [
        sys.executable, "-m", "launch.sweep", f"--config={os.path.abspath(path)}{colon}{arg}",
        f"--sweep={args.sweep}", f"--workdir={os.path.abspath(args.workdir)}",
        *([f"--sweep_file={os.path.abspath(args.sweep_file)}"] if args.sweep_file else []),
        *(f"{OVERRIDE_PREFIX}{key}={text}" for key, text in common.items())]
    to_run = jobs(pending, configs, sweep_command, args.vmap)
    if args.dry_run:
      for r, s in zip(runs, statuses, strict=True):
        print(f"{s:>11}  {r['name']}")
      for job in to_run:
        count = len(job["names"])
        print(f"run {count} trial{'s' if count > 1 else ''}: {shlex.join(job['command'])}")
      return 0
    executor = slurm_executor(
        os.path.join(args.workdir, "slurm", "%j"), partition=args.partition,
        time_min=args.time_min, gpus=args.gpus, cpus=args.cpus, mem_gb=args.mem_gb,
        parallel=args.parallel) if args.executor == "slurm" else None
    write_json(os.path.join(args.workdir, report.SWEEP_FILE), record)
    if executor is not None:
      try:
        submitted = submit(to_run, executor) if to_run else []
      except RuntimeError as error:  # sbatch refused the array: its message says why
        print(f"{parser.prog}: error: submitting to SLURM: {error}", file=sys.stderr)
        return 1
      print(f"submitted {len(submitted)} jobs {' '.join(j.job_id for j in submitted)}; when "
            f"they are done: python -m dljax.report {args.workdir}")
      return 0
    failed = run_local(to_run, args.parallel or 1, args.per_device)
  except (ConfigError, DataError) as error:
    print(f"{parser.prog}: error: {error}", file=sys.stderr)
    return 2
  except RunError as error:  # trials trained together here: one diverged, or a workdir in use
    print(f"dljax: error: {error}", file=sys.stderr)
    return 1
  try:
    print(f"wrote {', '.join(report.write_sweep(args.workdir))}")
  except ValueError as error:
    print(f"{parser.prog}: no report: {error}", file=sys.stderr)
  if failed:
    print(f"{len(failed)} trials failed: {', '.join(failed)}", file=sys.stderr)
  return 1 if failed else 0


if __name__ == "__main__":
  sys.exit(main())

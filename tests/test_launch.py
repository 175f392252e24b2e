"""Sweeps: expansion and names, the launcher end to end (local and via submitit), the report."""

import csv
import glob
import json
import os
import random
import re
import shutil
import signal
import subprocess
import sys
import time

import pytest

from dljax import config_lib, report
from dljax.errors import ConfigError
from launch import sweep, sweeps
from tests.conftest import REPO

SMOKE = os.path.join(REPO, "configs/mnist_mlp.py:smoke")
# Three trials, one factor at a time around the recipe's RMSprop and dropout 0.2.
SWEEP_FILE = """
from launch import sweeps

def sweep_three():
  return sweeps.one_factor({"optimizer.name": "rmsprop", "model.dropout": 0.2},
                           **{"optimizer.name": ["sgd"], "model.dropout": [0.2, 0.0]})

def sweep_bad():
  return sweeps.chain(sweeps.grid(**{"model.dropout": [0.1]}),
                      sweeps.grid(**{"optimizer.learnin_rate": [0.1]}))
"""
TRIALS = ("optimizer.name=rmsprop,model.dropout=0.2", "optimizer.name=sgd,model.dropout=0.2",
          "optimizer.name=rmsprop,model.dropout=0.0")


# Expansion and names. ------------------------------------------------------------------------

def test_grid_is_the_product_last_axis_fastest():
  trials = sweeps.grid(**{"optimizer.name": ["sgd", "adam"], "model.dropout": [0.0, 0.2, 0.5]})
  assert len(trials) == 6
  assert trials[:3] == [{"optimizer.name": "sgd", "model.dropout": d} for d in (0.0, 0.2, 0.5)]
  assert {(t["optimizer.name"], t["model.dropout"]) for t in trials} == {
      (o, d) for o in ("sgd", "adam") for d in (0.0, 0.2, 0.5)}


def test_one_factor_includes_the_reference_once():
  reference = {"optimizer.name": "rmsprop", "model.dropout": 0.2}
  trials = sweeps.one_factor(reference, **{"optimizer.name": ["sgd", "rmsprop", "adam"],
                                           "model.dropout": [0.0, 0.2, 0.5]})
  assert trials[0] == reference
  assert trials.count(reference) == 1
  assert trials[1:] == [{"optimizer.name": "sgd", "model.dropout": 0.2},
                        {"optimizer.name": "adam", "model.dropout": 0.2},
                        {"optimizer.name": "rmsprop", "model.dropout": 0.0},
                        {"optimizer.name": "rmsprop", "model.dropout": 0.5}]
  with pytest.raises(ValueError, match="'seed' has alternatives but no reference value"):
    sweeps.one_factor(reference, seed=[1, 2])


def test_zip_and_chain():
  trials = sweeps.zip_(**{"optimizer.name": ["sgd", "adam"], "optimizer.learning_rate": [0.01,
                                                                                         1e-3]})
  assert trials == [{"optimizer.name": "sgd", "optimizer.learning_rate": 0.01},
                    {"optimizer.name": "adam", "optimizer.learning_rate": 1e-3}]
  assert sweeps.chain(trials, [{"seed": 1}]) == [*trials, {"seed": 1}]
  with pytest.raises(ValueError, match="axes of different lengths"):
    sweeps.zip_(a=[1, 2], b=[1])


def test_random_search_is_deterministic_per_seed_and_in_range():
  distributions = {"optimizer.learning_rate": (1e-4, 1e-1, "log"),
                   "model.dropout": (0.0, 0.5, "linear"),
                   "optimizer.name": lambda rng: rng.choice(["sgd", "adam"])}
  first = sweeps.random_search(0, 20, **distributions)
  assert first == sweeps.random_search(0, 20, **distributions)
  assert first != sweeps.random_search(1, 20, **distributions)
  assert all(1e-4 <= t["optimizer.learning_rate"] <= 1e-1 and 0 <= t["model.dropout"] <= 0.5
             and t["optimizer.name"] in ("sgd", "adam") for t in first)
  assert all(type(t["optimizer.learning_rate"]) is float for t in first)  # plain, readable
  with pytest.raises(ValueError, match="expected a callable or"):
    sweeps.random_search(0, 1, lr=(1e-4, 1e-1, "exp"))


def test_names_are_readable_filesystem_safe_and_unique():
  assert sweeps.trial_name({"optimizer.name": "adam", "optimizer.learning_rate": 1e-3}) == (
      "optimizer.name=adam,optimizer.learning_rate=0.001")
  assert sweeps.trial_name({"config_arg": "smoke,aug=light"}) == "config_arg=smoke,aug=light"
  assert sweeps.trial_name({}) == "default"
  rng = random.Random(0)
  awkward = [{"model.hidden": (256, 256)}, {"model.hidden": [256, 256]}, {"data.dir": "/a b/c"},
             {"data.dir": "/a_b/c"}, {"x": "y" * 300}, {"x": "y" * 301},
             *({"data.dir": "".join(rng.choice("/\\:*?\"<>| .é") for _ in range(8))}
               for _ in range(30))]
  names = sweeps.named(awkward)
  assert len(names) == len(awkward)
  for name in names:
    assert len(name) <= sweeps.MAX_NAME_LENGTH
    assert set(name) <= set("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789_.,=+-")
  assert sweeps.trial_name({"model.hidden": (256, 256)}).startswith("model.hidden=256,256-")
  with pytest.raises(ValueError, match=re.escape("two trials are named 'model.dropout=0.5'")):
    sweeps.named([{"model.dropout": 0.5}, {"model.dropout": "0.5"}])


def test_config_arg_is_appended_to_the_config_argument():
  assert sweep.config_spec("c.py:smoke", {"config_arg": "aug=light"}) == "c.py:smoke,aug=light"
  assert sweep.config_spec("c.py", {"config_arg": "aug=light"}) == "c.py:aug=light"
  assert sweep.config_spec("c.py", {"seed": 1}) == "c.py"


SHIPPED_SWEEPS = [(os.path.basename(path), name.removeprefix(sweep.SWEEP_PREFIX))
                  for path in sorted(glob.glob(os.path.join(REPO, "configs", "*.py")))
                  for name in sorted(vars(config_lib.load_module(path)))
                  if name.startswith(sweep.SWEEP_PREFIX)]


@pytest.mark.parametrize("config_file, name", SHIPPED_SWEEPS)
def test_every_shipped_sweep_validates_and_builds_its_models(config_file, name):
  path = os.path.join(REPO, "configs", config_file)
  trials = sweep.load_sweep(path, name)
  assert sweep.validate(f"{path}:smoke", {}, trials)  # config_lib.validate builds each model


def test_the_shipped_studies_are_there():
  assert {("leiden_mlp.py", name) for name in (
      "init", "dropout", "optimizer", "loss", "batch", "widths", "output", "depth",
      "regularizers", "permuted")} <= set(SHIPPED_SWEEPS)
  assert ("cifar10_cnn.py", "imperial") in SHIPPED_SWEEPS


# The launcher. -------------------------------------------------------------------------------

@pytest.fixture
def sweep_file(tmp_path):
  path = tmp_path / "sweeps.py"
  path.write_text(SWEEP_FILE)
  return str(path)


def launch(sweep_file: str, workdir, *args: str, sweep_name: str = "three") -> int:
  return sweep.main([f"--config={SMOKE}", f"--sweep={sweep_name}", f"--sweep_file={sweep_file}",
                     f"--workdir={workdir}", *args])


def test_unknown_sweep_lists_the_sweeps_in_one_line(sweep_file, tmp_path, capsys):
  assert launch(sweep_file, tmp_path / "s", sweep_name="nope") == 2
  error = capsys.readouterr().err
  assert error.count("\n") == 1
  assert f"--sweep=nope: {sweep_file} has no sweep_nope(); its sweeps: bad, three" in error


@pytest.mark.parametrize("text, message", [
    ("def sweep_x(:\n", "FILE:1: syntax error: "),
    ("def sweep_x():\n  return [{'seed': 1 / 0}]\n",
     "sweep_x(): FILE:2: ZeroDivisionError: division by zero"),
])
def test_a_sweep_file_that_does_not_load_is_one_line(text, message, tmp_path, capsys):
  path = tmp_path / "sweeps.py"
  path.write_text(text)
  assert launch(str(path), tmp_path / "s", sweep_name="x") == 2
  error = capsys.readouterr().err
  assert error.startswith(f"python -m launch.sweep: error: {message.replace('FILE', str(path))}")
  assert error.count("\n") == 1


def test_a_garbled_sweep_file_in_the_workdir_is_one_line(sweep_file, tmp_path, capsys):
  (tmp_path / "s").mkdir()
  (tmp_path / "s" / "sweep.json").write_text('{"config": ')
  assert launch(sweep_file, tmp_path / "s") == 2
  error = capsys.readouterr().err
  assert error.startswith(f"python -m launch.sweep: error: {tmp_path / 's' / 'sweep.json'}: "
                          "not valid JSON")
  assert error.endswith("delete it (the sweep writes it again) or use another --workdir\n")
  assert error.count("\n") == 1


def test_a_bad_override_stops_the_sweep_before_any_trial(sweep_file, tmp_path, capsys):
  assert launch(sweep_file, tmp_path / "s", sweep_name="bad") == 2
  error = capsys.readouterr().err
  assert error.count("\n") == 1
  assert ("error: trial optimizer.learnin_rate=0.1: config.optimizer.learnin_rate: unknown key"
          in error)
  assert not (tmp_path / "s").exists()  # the valid first trial did not start either
  assert launch(sweep_file, tmp_path / "s", "--config.model.dropout=0.1") == 2
  assert "config.model.dropout: set both by --config.model.dropout and by the sweep" in (
      capsys.readouterr().err)


@pytest.mark.parametrize("visible, parallel, per_device, expected", [
    (None, 1, 1, {(None, None)}),  # one at a time: every device visible, JAX's memory default
    ("0", 1, 3, {(None, None)}),  # nothing shares a device when one trial runs at a time
    (None, 4, 1, {("0", None), ("1", None), ("2", None), ("3", None)}),
    ("0", 3, 3, {("0", 0.3)}),  # three trials share the one GPU, 30% of its memory each
    ("4,5", 4, 2, {("4", 0.45), ("5", 0.45)}),
])
def test_local_runs_get_device_slots(monkeypatch, visible, parallel, per_device, expected):
  if visible is None:
    monkeypatch.delenv("CUDA_VISIBLE_DEVICES", raising=False)
  else:
    monkeypatch.setenv("CUDA_VISIBLE_DEVICES", visible)
  seen = []
  monkeypatch.setattr(sweep, "run_job", lambda command, workdirs, device, memory_fraction: (
      seen.append((device, memory_fraction and round(memory_fraction, 3))) or [{}]))
  jobs = [{"names": [f"t{i}"], "command": [], "workdirs": [f"w{i}"]} for i in range(6)]
  assert sweep.run_local(jobs, parallel, per_device) == []
  assert len(seen) == 6 and set(seen) == expected


@pytest.mark.parametrize("parallel, expected", [
    (1, [None]),  # one at a time: the process keeps every CPU
    (2, [{0, 1, 2}, {3, 4, 5}]),
    (4, [{0}, {1, 2}, {3}, {4, 5}]),
    (8, [None] * 8),  # fewer CPUs than slots: nothing to split
])
def test_parallel_slots_get_cpus_of_their_own(monkeypatch, parallel, expected):
  monkeypatch.setattr(os, "sched_getaffinity", lambda pid: set(range(6)))
  assert sweep.cpu_slots(parallel) == expected


@pytest.mark.skipif(len(getattr(os, "sched_getaffinity", lambda pid: ())(0)) < 2,
                    reason="needs 2 CPUs and sched_setaffinity")
def test_parallel_trials_run_pinned_to_their_slots_cpus(tmp_path):
  show = [sys.executable, "-c", "import os, time; print(*sorted(os.sched_getaffinity(0))); "
          "time.sleep(0.3)"]
  jobs = [{"names": [f"t{i}"], "command": show, "workdirs": [str(tmp_path / f"t{i}")]}
          for i in range(4)]
  mine = os.sched_getaffinity(0)
  assert sweep.run_local(jobs, 2) == []
  seen = [{int(cpu) for cpu in (tmp_path / f"t{i}" / "train.log").read_text().split()}
          for i in range(4)]
  assert {frozenset(cpus) for cpus in seen} == {frozenset(c) for c in sweep.cpu_slots(2)}
  assert os.sched_getaffinity(0) == mine  # the launcher's own thread is not pinned


@pytest.mark.parametrize("args, message", [
    (("--per_device=0",), "--per_device=0: must be >= 1"),
    (("--per_device=2", "--executor=slurm"), "--per_device: local runs only"),
])
def test_bad_per_device_is_one_line(sweep_file, tmp_path, capsys, args, message):
  with pytest.raises(SystemExit) as exit_info:
    launch(sweep_file, tmp_path / "s", *args)
  assert exit_info.value.code == 2
  error = capsys.readouterr().err
  assert error.count("\n") == 1 and message in error


def test_a_shared_device_caps_each_trials_memory(tmp_path, monkeypatch):
  monkeypatch.delenv("XLA_PYTHON_CLIENT_MEM_FRACTION", raising=False)
  show = [sys.executable, "-c", "import os; print(os.environ['CUDA_VISIBLE_DEVICES'], "
          "os.environ.get('XLA_PYTHON_CLIENT_MEM_FRACTION'))"]
  assert sweep.run_job(show, [str(tmp_path / "a")], "3", 0.45) == [None]
  assert (tmp_path / "a" / "train.log").read_text().split() == ["3", "0.450"]
  monkeypatch.setenv("XLA_PYTHON_CLIENT_MEM_FRACTION", "0.2")  # the user's own setting stays
  sweep.run_job(show, [str(tmp_path / "b")], "3", 0.45)
  assert (tmp_path / "b" / "train.log").read_text().split() == ["3", "0.2"]


JAX_NOTE = ("For simplicity, JAX has removed its internal frames from the traceback of the "
            "following exception. Set JAX_TRACEBACK_FILTERING=off to include these.")
TRACEBACK = ("Traceback (most recent call last):\n  File \"x.py\", line 1, in <module>\n"
             "    raise ValueError('inner')\nValueError: inner\n\nThe above exception was the "
             "direct cause of the following exception:\n\n"
             "jax.errors.JaxRuntimeError: RESOURCE_EXHAUSTED: out of memory\n")


@pytest.mark.parametrize("log, expected", [
    (f"W0101 warning\ndljax: error: config.seed=-1: must be >= 0\n{TRACEBACK}",
     "dljax: error: config.seed=-1: must be >= 0"),
    (f"{TRACEBACK}--------------------\n{JAX_NOTE}\n",
     "jax.errors.JaxRuntimeError: RESOURCE_EXHAUSTED: out of memory"),
    ("  5%|#         | 1/20 [00:01<00:19]\rKeyboardInterrupt\r 10%|##        | 2/20\n\n",
     "KeyboardInterrupt"),
    ("step 1\nsegfault somewhere\n\n", "segfault somewhere"),
    ("", ""),
])
def test_a_failed_trial_is_summarised_by_its_error_line(log, expected):
  assert sweep.error_line(log) == expected


@pytest.mark.skipif(sys.platform != "linux", reason="PR_SET_PDEATHSIG is Linux's")
def test_trials_get_sigterm_when_the_launcher_is_killed(tmp_path):
  # A launcher running one trial as `run_local` does, from a pool thread; the trial writes its
  # pid and sleeps.
  pid_file = tmp_path / "pid"
  launcher = ("import sys\nfrom launch import sweep\n"
              "sweep.run_local([{'names': ['t'], 'workdirs': [sys.argv[1]], 'command': "
              "['sh', '-c', 'echo $$ > ' + sys.argv[2] + '.tmp; mv ' + sys.argv[2] + '.tmp ' + "
              "sys.argv[2] + '; exec sleep 60']}], 1)\n")
  parent = subprocess.Popen([sys.executable, "-c", launcher, str(tmp_path / "t"), str(pid_file)],
                            cwd=REPO)
  trial = int(wait_for(lambda: pid_file.exists() and pid_file.read_text()))
  parent.kill()
  parent.wait()
  try:
    assert wait_for(lambda: not running(trial))
  finally:
    if running(trial):
      os.kill(trial, signal.SIGKILL)


def wait_for(condition, timeout: float = 30.0):
  """The first true value of `condition()`, polled until `timeout` seconds have passed."""
  deadline = time.monotonic() + timeout
  while not (value := condition()) and time.monotonic() < deadline:
    time.sleep(0.05)
  return value


def running(pid: int) -> bool:
  """Whether process `pid` runs (a zombie that no one reaps does not)."""
  try:
    with open(f"/proc/{pid}/stat") as f:
      return f.read().rsplit(")", 1)[1].split()[0] not in "ZX"
  except FileNotFoundError:
    return False


def test_too_few_devices_for_the_parallel_trials_is_one_line(monkeypatch):
  monkeypatch.setenv("CUDA_VISIBLE_DEVICES", "0")
  with pytest.raises(ConfigError, match=r"--parallel=3 --per_device=2: needs 2 devices; "
                     r"CUDA_VISIBLE_DEVICES=0 has 1"):
    sweep.run_local([], 3, 2)


@pytest.fixture(scope="module")
def trial_env(tmp_path_factory):
  """Trials (subprocesses) run on the CPU and share a compilation cache: half their time."""
  with pytest.MonkeyPatch.context() as patch:
    patch.setenv("JAX_PLATFORMS", "cpu")
    patch.setenv("JAX_COMPILATION_CACHE_DIR", str(tmp_path_factory.mktemp("jax_cache")))
    patch.setenv("JAX_PERSISTENT_CACHE_MIN_COMPILE_TIME_SECS", "0")
    yield


@pytest.fixture(scope="module")
def finished_sweep(tiny_mnist_dir, tmp_path_factory, trial_env):
  """The three-trial sweep of the smoke config run locally, two trials at a time."""
  root = tmp_path_factory.mktemp("sweep")
  (root / "sweeps.py").write_text(SWEEP_FILE)
  assert launch(str(root / "sweeps.py"), root / "sweep", "--parallel=2",
                f"--config.data.dir={tiny_mnist_dir}", "--config.model.hidden=(32,)") == 0
  return root


def read_json(path):
  with open(path) as f:
    return json.load(f)


def test_local_sweep_trains_each_trial_in_its_workdir_and_reports(finished_sweep):
  sweep_dir = finished_sweep / "sweep"
  record = read_json(sweep_dir / "sweep.json")
  assert record["config"] == SMOKE and record["sweep"] == "three"
  assert [t["name"] for t in record["trials"]] == list(TRIALS)
  assert record["trials"][1]["overrides"] == {"optimizer.name": "sgd", "model.dropout": 0.2}
  for name, trial in zip(TRIALS, record["trials"], strict=True):
    config = read_json(sweep_dir / name / "config.json")["config"]
    assert config["optimizer"]["name"] == trial["overrides"]["optimizer.name"]
    assert config["model"]["dropout"] == trial["overrides"]["model.dropout"]
    assert config["model"]["hidden"] == [32]  # the sweep-wide override
    assert (sweep_dir / name / "results.json").exists()
    assert (sweep_dir / name / "train.log").exists()
  rows = read_json(sweep_dir / "report.json")
  assert sorted(r["trial"] for r in rows) == sorted(TRIALS)
  assert [r["rank"] for r in rows] == [1, 2, 3]
  values = [r["best_validation"] for r in rows]
  assert values == sorted(values, reverse=True)  # accuracy: higher is better
  assert (sweep_dir / "curves.png").read_bytes()[:4] == b"\x89PNG"
  assert all(name in (sweep_dir / "report.md").read_text() for name in TRIALS)


def test_rerun_skips_finished_trials_and_resumes_the_others_via_submitit(
    finished_sweep, tiny_mnist_dir, tmp_path, trial_env):
  # A copy of the sweep in which one trial lost its results.json: as if killed after its last
  # checkpoint. Submitted through submitit's local executor, standing in for SLURM, only that
  # trial runs again, and it resumes instead of starting over.
  sweep_dir = tmp_path / "sweep"
  shutil.copytree(finished_sweep / "sweep", sweep_dir)
  (sweep_dir / TRIALS[1] / "results.json").unlink()
  logs = {name: (sweep_dir / name / "train.log").read_text() for name in TRIALS}
  common = {"data.dir": tiny_mnist_dir, "model.hidden": "(32,)"}
  trials = sweep.load_sweep(str(finished_sweep / "sweeps.py"), "three")
  runs = sweep.plan(SMOKE, common, trials, str(sweep_dir))
  assert [sweep.status(run["workdir"]) for run in runs] == ["finished", "interrupted", "finished"]
  pending = sweep.jobs([runs[1]], {}, [], vmap=None)
  executor = sweep.slurm_executor(str(tmp_path / "submitit" / "%j"), partition="gpu",
                                  time_min=5, gpus=0, cpus=1, mem_gb=None, parallel=None,
                                  cluster="local")
  [job] = sweep.submit(pending, executor)
  [results] = job.result()
  assert results == read_json(sweep_dir / TRIALS[1] / "results.json")
  original = read_json(finished_sweep / "sweep" / TRIALS[1] / "results.json")
  assert results["train_seconds"] == original["train_seconds"]  # restored, not trained again
  assert results["test"] == original["test"]
  resumed_log = (sweep_dir / TRIALS[1] / "train.log").read_text()
  assert resumed_log.startswith(logs[TRIALS[1]]) and len(resumed_log) > len(logs[TRIALS[1]])

  # Everything is finished now: the local launcher runs nothing and rewrites the report. (No
  # capsys here: importing submitit reconfigures logging, which closes absl's handler's stream
  # if it is not the sys.stderr of that moment.)
  (sweep_dir / "report.json").unlink()
  assert launch(str(finished_sweep / "sweeps.py"), sweep_dir,
                *(f"--config.{key}={value}" for key, value in common.items())) == 0
  assert {name: (sweep_dir / name / "train.log").read_text() for name in TRIALS} == {
      **logs, TRIALS[1]: resumed_log}
  assert [r["status"] for r in read_json(sweep_dir / "report.json")] == ["done"] * 3


def test_vmap_trains_the_trials_that_differ_in_values_together(finished_sweep, tiny_mnist_dir,
                                                               tmp_path, trial_env, capsys):
  # Of the three trials, the two RMSprop ones differ only in the dropout rate: one process, one
  # jit. The SGD one differs in the optimiser's structure and trains alone.
  args = (str(finished_sweep / "sweeps.py"), tmp_path / "sweep", "--vmap",
          f"--config.data.dir={tiny_mnist_dir}", "--config.model.hidden=(32,)")
  assert launch(*args, "--dry_run") == 0
  planned = [line for line in capsys.readouterr().out.splitlines() if line.startswith("run ")]
  assert [line.split(":")[0] for line in planned] == ["run 2 trials", "run 1 trial"]
  assert planned[0].endswith(f"--trial={TRIALS[0]} --trial={TRIALS[2]} --together")

  assert launch(*args) == 0
  for name in TRIALS:
    results = read_json(tmp_path / "sweep" / name / "results.json")
    alone = read_json(finished_sweep / "sweep" / name / "results.json")
    assert results["trials_together"] == (1 if "sgd" in name else 2)
    assert results["steps"] == alone["steps"]
    assert results["test"]["loss"] == pytest.approx(alone["test"]["loss"], rel=1e-4)
  assert (tmp_path / "sweep" / "report.md").exists()


# The report. ---------------------------------------------------------------------------------

def fake_run(workdir, value: float | None, mode: str = "max", finished: bool = True,
             steps_per_epoch: int = 10, best_metrics: dict | None = None) -> None:
  """A workdir as the trainer leaves it, with a validation curve peaking at `value`."""
  os.makedirs(workdir)
  with open(os.path.join(workdir, "config.json"), "w") as f:
    json.dump({"config": {}}, f)
  with open(os.path.join(workdir, "metrics.jsonl"), "w") as f:
    for epoch in (1, 2, 3):
      f.write(json.dumps({"step": epoch * steps_per_epoch, "split": "validation",
                          "accuracy": value * epoch / 3, "loss": 1 / epoch}) + "\n")
  if finished:
    with open(os.path.join(workdir, "results.json"), "w") as f:
      json.dump({"best_validation": {"metric": "accuracy" if mode == "max" else "loss",
                                     "mode": mode, "value": value, "step": 30, "epoch": 3.0,
                                     "metrics": best_metrics or {}},
                 "test": {"accuracy": value, "loss": 0.5}, "steps": 30, "epochs": 3.0,
                 "train_seconds": 12.5, "parameters": 1234}, f)


@pytest.mark.parametrize("mode, expected", [("max", ["b", "c", "a"]), ("min", ["a", "c", "b"])])
def test_report_ranks_by_the_metric_mode_and_lists_unfinished(tmp_path, mode, expected):
  sweep_dir = tmp_path / "sweep"
  for name, value in (("a", 0.5), ("b", 0.9), ("c", 0.7)):
    fake_run(str(sweep_dir / name), value, mode)
  fake_run(str(sweep_dir / "running"), 0.99, mode, finished=False)
  (sweep_dir / "slurm").mkdir()  # not a run: ignored
  with open(sweep_dir / "sweep.json", "w") as f:
    json.dump({"config": "c.py", "sweep": "s", "trials": [
        {"name": "queued", "overrides": {"seed": 1}}, {"name": "a", "overrides": {"seed": 0}}]},
        f)
  assert report.main([str(sweep_dir)]) == 0

  rows = read_json(sweep_dir / "report.json")
  assert [r["trial"] for r in rows] == [*expected, "queued", "running"]
  assert [r["rank"] for r in rows] == [1, 2, 3, None, None]
  assert [r["status"] for r in rows[3:]] == ["not started", "unfinished"]
  assert rows[4]["steps"] == 30 and rows[expected.index("a")]["overrides"] == {"seed": 0}
  with open(sweep_dir / "report.csv") as f:
    assert [r["trial"] for r in csv.DictReader(f)] == [r["trial"] for r in rows]
  md = (sweep_dir / "report.md").read_text()
  metric = "accuracy (best, max)" if mode == "max" else "loss (best, min)"
  assert f"| # | trial | validation {metric} | epoch | test accuracy | test loss |" in md
  assert f"| 1 | {expected[0]} | {0.9 if mode == 'max' else 0.5:.4f} | 3.0 |" in md
  assert "| - | queued | not started |" in md and "| - | running | unfinished (step 30) |" in md
  assert "3 of 5 trials finished; 2 unfinished or not started." in md
  assert (sweep_dir / "curves.png").read_bytes()[:4] == b"\x89PNG"


def test_report_skips_a_damaged_metrics_line_naming_it(tmp_path, capsys):
  fake_run(str(tmp_path / "sweep" / "a"), 0.5)
  fake_run(str(tmp_path / "sweep" / "b"), 0.7, finished=False)
  for name in ("a", "b"):
    with open(tmp_path / "sweep" / name / "metrics.jsonl", "a") as f:
      f.write('{"step": 3, "spl')
  assert report.main([str(tmp_path / "sweep")]) == 0
  err = capsys.readouterr().err
  assert f"{tmp_path / 'sweep' / 'a' / 'metrics.jsonl'}:4: not a metrics record, skipped" in err
  assert "| - | b | unfinished (step 30) |" in (tmp_path / "sweep" / "report.md").read_text()


@pytest.mark.parametrize("name, text, problem", [
    ("a/results.json", '{"best_validation": {"metric": "acc', "not valid JSON"),
    ("a/results.json", '{"test": {}}', "has no 'best_validation'"),
    ("sweep.json", "\x00garbage", "not valid JSON"),
    ("sweep.json", "[]", "holds a list, not a JSON object"),
])
def test_report_names_a_garbled_results_or_sweep_file_in_one_line(name, text, problem, tmp_path,
                                                                 capsys):
  fake_run(str(tmp_path / "sweep" / "a"), 0.5)
  (tmp_path / "sweep" / name).write_text(text)
  assert report.main([str(tmp_path / "sweep")]) == 2
  err = capsys.readouterr().err
  assert err.startswith(f"python -m dljax.report: error: {tmp_path / 'sweep' / name}: {problem}")
  assert err.count("\n") == 1


def test_report_of_listed_workdirs_needs_out_and_one_metric(tmp_path, capsys):
  fake_run(str(tmp_path / "x"), 0.8, "max")
  fake_run(str(tmp_path / "y"), 0.3, "min")
  assert report.main([str(tmp_path / "x"), str(tmp_path / "y")]) == 2
  assert "--out is needed" in capsys.readouterr().err
  assert report.main([str(tmp_path / "x"), str(tmp_path / "y"), "--out", str(tmp_path / "r")]) == 2
  assert "different validation metrics: accuracy (max), loss (min)" in capsys.readouterr().err
  assert report.main([str(tmp_path / "x"), "--out", str(tmp_path / "r")]) == 0
  assert {p.name for p in (tmp_path / "r").iterdir()} == set(report.OUTPUTS)


def test_report_of_sweep_dirs_is_a_study_with_a_table_per_sweep(tmp_path):
  # Two one-factor sweeps, each ranked by its own metric: a study needs no common one.
  for sweep_name, mode, values in (("dropout", "max", {"a": 0.5, "b": 0.9}),
                                   ("width", "min", {"c": 0.2, "d": 0.1})):
    for name, value in values.items():
      fake_run(str(tmp_path / sweep_name / name), value, mode)
  dirs = [str(tmp_path / "dropout"), str(tmp_path / "width")]
  assert report.main([*dirs, "--out", str(tmp_path / "study")]) == 0
  md = (tmp_path / "study" / "report.md").read_text()
  assert md.count("\n## Sweep ") == 2
  assert md.index("| 1 | b |") < md.index("| 2 | a |") < md.index("| 1 | d |") < md.index(
      "| 2 | c |")
  rows = read_json(tmp_path / "study" / "report.json")
  assert [(r["sweep"], r["trial"], r["rank"]) for r in rows] == [
      (dirs[0], "b", 1), (dirs[0], "a", 2), (dirs[1], "d", 1), (dirs[1], "c", 2)]


def test_report_ranks_by_another_metric_at_the_best_step(tmp_path, capsys):
  # Trials that stopped on losses of different kinds: their accuracies compare, their losses not.
  for name, loss, accuracy in (("mse", 0.01, 0.92), ("cce", 0.09, 0.97)):
    fake_run(str(tmp_path / "loss" / name), loss, "min", best_metrics={"accuracy": accuracy})
  assert report.main([str(tmp_path / "loss"), "--rank_by=accuracy:max"]) == 0
  md = (tmp_path / "loss" / "report.md").read_text()
  assert "| validation accuracy at the best loss (max) |" in md
  assert md.index("| 1 | cce | 0.9700 |") < md.index("| 2 | mse | 0.9200 |")
  assert report.main([str(tmp_path / "loss"), "--rank_by=accuracy"]) == 2
  assert "needs NAME:max or NAME:min" in capsys.readouterr().err

"""The trainer end to end: workdir, determinism, sharding, resume, multi-process, errors."""

import json
import os
import re
import signal
import subprocess
import sys
import time

import jax
import numpy as np
import orbax.checkpoint as ocp
import pytest
import tensorflow_datasets as tfds
from tensorboard.backend.event_processing import event_file_loader

import configs.mnist_mlp
from dljax import config_lib, train
from dljax import workdir as workdir_lib
from dljax.errors import ConfigError
from tests.conftest import REPO, cpu_env, main_command, run_main

SMOKE = "configs/mnist_mlp.py:smoke"


def smoke_config(**overrides):
  config = config_lib.load(SMOKE)
  for key, value in overrides.items():
    config_lib.override(config, key, value)
  return config


def config_from_args(*args: str):
  """The config `python -m dljax.main ARGS` trains: --config=SPEC and its --config.KEY=VALUE."""
  spec = next(a.removeprefix("--config=") for a in args if a.startswith("--config="))
  config = config_lib.load(spec)
  for arg in args:
    if arg.startswith("--config."):
      key, _, value = arg.removeprefix("--config.").partition("=")
      config_lib.override(config, key, value)
  return config


def latest_params(workdir: str):
  """The params of the newest checkpoint in `workdir` as numpy arrays, whatever devices wrote it."""
  path = os.path.join(workdir, "checkpoints", str(finished_steps(workdir)[-1]), "state")
  checkpointer = ocp.StandardCheckpointer()
  on_this_device = jax.sharding.SingleDeviceSharding(jax.devices()[0])
  target = jax.tree.map(lambda m: jax.ShapeDtypeStruct(m.shape, m.dtype, sharding=on_this_device),
                        checkpointer.metadata(path).item_metadata.tree)
  return jax.device_get(checkpointer.restore(path, target)["params"])


def assert_trees_close(a, b, atol: float) -> None:
  assert a.keys() == b.keys()
  for key in a:
    if isinstance(a[key], dict):
      assert_trees_close(a[key], b[key], atol)
    else:
      np.testing.assert_allclose(np.asarray(a[key]), np.asarray(b[key]), rtol=0, atol=atol)


def read_jsonl(workdir: str) -> list[dict]:
  with open(os.path.join(workdir, "metrics.jsonl")) as f:
    return [json.loads(line) for line in f]


def test_python_api_writes_a_readable_workdir(tmp_path):
  config = configs.mnist_mlp.get_config("smoke")
  config.model.dropout = 0.5  # overriding from Python, as a user would
  with tfds.testing.mock_data(num_examples=600):
    results = train.run(config, str(tmp_path))

  with open(tmp_path / "config.json") as f:
    info = json.load(f)
  assert info["config"]["model"]["dropout"] == 0.5
  assert {"dljax_version", "jax_version", "device_count", "platform"} <= info.keys()
  records = read_jsonl(str(tmp_path))
  assert {r["split"] for r in records} == {"train", "validation", "test"}
  assert all(np.isfinite(r["loss"]) for r in records)
  events = [e for path in (tmp_path / "tensorboard").iterdir()
            for e in event_file_loader.EventFileLoader(str(path)).Load()]
  tags = {v.tag for e in events for v in e.summary.value}
  assert {"train/loss", "validation/accuracy", "test/accuracy"} <= tags
  assert (tmp_path / "curves.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
  assert any(p.name.isdigit() for p in (tmp_path / "checkpoints").iterdir())
  with open(tmp_path / "results.json") as f:
    assert json.load(f) == results
  assert results["parameters"] == 784 * 512 + 512 + 512 * 512 + 512 + 512 * 10 + 10
  assert results["best_validation"]["metric"] == "accuracy"
  for key in ("train_seconds", "compile_seconds", "examples_per_second",
              "inference_ms_per_example"):
    assert results[key] > 0


def test_a_relative_workdir_works(tmp_path, monkeypatch):
  config = smoke_config(num_steps=2)
  monkeypatch.chdir(tmp_path)
  with tfds.testing.mock_data(num_examples=600):
    results = train.run(config, os.path.join("runs", "relative"))
  assert results["steps"] == 2
  assert (tmp_path / "runs" / "relative" / "results.json").exists()


def test_same_seed_gives_bit_identical_params(tmp_path):
  with tfds.testing.mock_data(num_examples=600):
    for name, seed in (("a", 0), ("b", 0), ("c", 1)):
      train.run(smoke_config(seed=seed), str(tmp_path / name))
  a, b, c = (latest_params(str(tmp_path / name)) for name in "abc")
  assert_trees_close(a, b, atol=0)
  assert not np.array_equal(a["Dense_0"]["kernel"], c["Dense_0"]["kernel"])


def test_several_steps_per_call_train_the_same_steps(tmp_path):
  # 10 steps, logs every 4, evaluations every 5, 3 steps a call: calls of 3 and of 1 step.
  schedule = dict(num_steps=10, log_every_steps=4, eval_every_steps=5)
  with tfds.testing.mock_data(num_examples=600):
    for steps_per_call in (1, 3):
      train.run(smoke_config(**schedule, steps_per_call=steps_per_call),
                str(tmp_path / str(steps_per_call)))
  assert read_jsonl(str(tmp_path / "1")) == read_jsonl(str(tmp_path / "3"))
  assert_trees_close(latest_params(str(tmp_path / "1")), latest_params(str(tmp_path / "3")),
                     atol=0)


def test_main_trains_and_learns(tiny_mnist_dir, tmp_path):
  result = run_main(f"--config={SMOKE}", f"--workdir={tmp_path}",
                    f"--config.data.dir={tiny_mnist_dir}")
  assert result.returncode == 0, result.stderr
  with open(tmp_path / "results.json") as f:
    results = json.load(f)
  assert results["test"]["accuracy"] > 0.5  # the tiny digits are easy; chance is 0.1
  for name in ("config.json", "metrics.jsonl", "curves.png", "tensorboard", "checkpoints"):
    assert (tmp_path / name).exists()
  with open(tmp_path / "config.json") as f:
    info = json.load(f)
  # The command line restarted itself with huge-page malloc; the conv flag joined the test's
  # (only on jaxlib 0.10, where it was verified: XLA aborts on flags it does not know).
  assert "glibc.malloc.hugetlb=1" in info["glibc_tunables"]
  assert "xla_force_host_platform_device_count=1" in info["xla_flags"]
  conv_flag_expected = jax.lib.__version__.startswith("0.10.")
  assert ("ynn_fusion_type=-individual_convolution" in info["xla_flags"]) == conv_flag_expected


# Sharded and single-device gradients differ by float reduction order (~1e-8). RMSprop and Adam
# divide by sqrt(v), which blows that up to ~lr where a gradient is ~0 (dead units), so the
# parity checks train with SGD + momentum: they test the sharding, not that amplification.
PARITY = ("--config.batch_size=64", "--config.model.dropout=0.0", "--config.optimizer.name=sgd",
          "--config.optimizer.learning_rate=0.1", "--config.optimizer.momentum=0.9")


def parity_args(data_dir: str) -> tuple[str, ...]:
  return (f"--config={SMOKE}", f"--config.data.dir={data_dir}", *PARITY,
          "--config.eval_every_steps=4", "--config.num_steps=16")


@pytest.fixture(scope="module")
def eight_device_run(tiny_mnist_dir, tmp_path_factory):
  """PARITY trained on 8 fake devices in one process: what 1 device and 2 processes must match.
  It runs 4 steps a compiled call: the steps' batch indices stacked, each batch sharded."""
  workdir = tmp_path_factory.mktemp("eight")
  result = run_main(*parity_args(tiny_mnist_dir), "--config.steps_per_call=4",
                    f"--workdir={workdir}", devices=8)
  assert result.returncode == 0, result.stderr
  return workdir


def test_eight_devices_match_one(tiny_mnist_dir, eight_device_run, tmp_path):
  result = run_main(*parity_args(tiny_mnist_dir), f"--workdir={tmp_path}", devices=1)
  assert result.returncode == 0, result.stderr
  with open(eight_device_run / "config.json") as f:
    assert json.load(f)["device_count"] == 8
  assert_trees_close(latest_params(str(tmp_path)), latest_params(str(eight_device_run)),
                     atol=1e-5)


NUM_STEPS = 600
LONG_RUN = (f"--config={SMOKE}", f"--config.num_steps={NUM_STEPS}", "--config.eval_every_steps=50",
            "--config.log_every_steps=25", "--config.model.hidden=(1024, 1024)",
            "--config.steps_per_call=5")  # resumes exactly with several steps a call too


@pytest.fixture(scope="module")
def uninterrupted_run(tiny_mnist_dir, tmp_path_factory):
  """The reference for the resume tests: LONG_RUN trained straight through."""
  workdir = tmp_path_factory.mktemp("straight")
  result = run_main(*LONG_RUN, f"--config.data.dir={tiny_mnist_dir}", f"--workdir={workdir}")
  assert result.returncode == 0, result.stderr
  return workdir


def finished_steps(workdir) -> list[int]:
  """Steps of the complete checkpoints in `workdir` (Orbax renames a save into place when done)."""
  return workdir_lib.saved_steps(str(workdir))


def start_and_stop_after_first_checkpoint(args, workdir, stop_signal,
                                          last_step: int = NUM_STEPS) -> int:
  """Starts main, sends `stop_signal` once a checkpoint is on disk, and returns the exit code."""
  process = subprocess.Popen(main_command(*args, f"--workdir={workdir}"), env=cpu_env(1),
                             cwd=REPO, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
  deadline = time.time() + 120
  while not finished_steps(workdir) and process.poll() is None and time.time() < deadline:
    time.sleep(0.02)
  process.send_signal(stop_signal)
  process.communicate(timeout=120)
  assert finished_steps(workdir)[-1] < last_step, "the run ended before it could be stopped"
  return process.returncode


@pytest.mark.parametrize("stop_signal", [signal.SIGKILL, signal.SIGTERM])
def test_stopped_and_resumed_run_equals_uninterrupted(tiny_mnist_dir, uninterrupted_run, tmp_path,
                                                      stop_signal):
  args = (*LONG_RUN, f"--config.data.dir={tiny_mnist_dir}")
  code = start_and_stop_after_first_checkpoint(args, tmp_path / "resumed", stop_signal)
  assert code == (-signal.SIGKILL if stop_signal == signal.SIGKILL else 0)
  train.run(config_from_args(*args), str(tmp_path / "resumed"))  # resumes as main would

  straight = str(uninterrupted_run)
  assert_trees_close(latest_params(straight), latest_params(str(tmp_path / "resumed")), atol=0)
  assert read_jsonl(straight) == read_jsonl(str(tmp_path / "resumed"))
  results = []
  for workdir in (straight, str(tmp_path / "resumed")):
    with open(os.path.join(workdir, "results.json")) as f:
      results.append(json.load(f))
  assert results[0]["test"] == results[1]["test"]
  assert results[0]["best_validation"] == results[1]["best_validation"]
  # The checkpoint the stop made (off the evaluation schedule) is gone: the same ones are kept.
  assert finished_steps(straight) == finished_steps(tmp_path / "resumed")


def test_two_processes_match_one_and_resume(tiny_mnist_dir, eight_device_run, tmp_path):
  args = [a for a in parity_args(tiny_mnist_dir) if not a.startswith("--config.num_steps")]

  def two_processes(num_steps: int):
    port = 20000 + os.getpid() % 20000
    processes = [subprocess.Popen(
        main_command(*args, f"--config.num_steps={num_steps}", f"--workdir={tmp_path / 'two'}",
                     f"--coordinator_address=127.0.0.1:{port}", "--num_processes=2",
                     f"--process_id={index}"),
        env=cpu_env(4), cwd=REPO, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
        for index in range(2)]
    for process in processes:
      _, stderr = process.communicate(timeout=240)
      assert process.returncode == 0, stderr

  two_processes(num_steps=8)  # stops halfway ...
  assert finished_steps(tmp_path / "two")[-1] == 8
  two_processes(num_steps=16)  # ... and both processes resume from the step-8 checkpoint
  assert_trees_close(latest_params(str(eight_device_run)), latest_params(str(tmp_path / "two")),
                     atol=1e-5)


@pytest.mark.parametrize("key, value, message", [
    ("optimizer.learnin_rate", "0.1", "config.optimizer.learnin_rate: unknown key; allowed here:"),
    ("num_steps", "ten", "config.num_steps='ten': must be a int"),
    ("model.dropout", "'high'", "config.model.dropout='high': must be a float"),
    ("model", "3", "config.model: is a group"),
    ("model.dropout_rate", "0.1", "config.model.dropout_rate: unknown key"),
])
def test_bad_overrides_name_the_key(key, value, message):
  with pytest.raises(ConfigError, match=re.escape(message)):
    config_lib.override(config_lib.load(SMOKE), key, value)


@pytest.mark.parametrize("key, value, message", [
    ("optimizer.learning_rate", -0.1, "config.optimizer.learning_rate=-0.1"),
    ("optimizer.name", "adamm", "config.optimizer.name='adamm'"),
    ("model.name", "resnet", "config.model.name='resnet': unknown model; allowed: "),
    ("data.name", "imagenet", "config.data.name='imagenet': unknown data set; allowed:"),
    ("task", "ranking", "config.task='ranking': unknown task; allowed: "),
    ("batch_size", 0, "config.batch_size=0: must be > 0"),
    ("early_stopping.mode", "up", "config.early_stopping.mode='up': allowed: min, max"),
    ("data.validation", "half", "config.data.validation='half': allowed:"),
    ("classification.loss", "poison",
     "config.classification.loss='poison': unknown loss for classification; allowed:"),
    ("classification.output_activation", "softmx",
     "config.classification.output_activation='softmx': unknown output"),
])
def test_impossible_values_are_rejected_before_training(key, value, message, tmp_path):
  config = smoke_config()
  config_lib.override(config, key, value)
  with pytest.raises(ConfigError, match=re.escape(message)):
    train.run(config, str(tmp_path))
  assert not (tmp_path / "checkpoints").exists()


def test_unknown_validation_metric_is_rejected(tmp_path):
  with tfds.testing.mock_data(num_examples=100), pytest.raises(
      ConfigError, match=re.escape("config.early_stopping.metric='auc': not a metric")):
    train.run(smoke_config(**{"early_stopping.metric": "auc"}), str(tmp_path))


@pytest.mark.parametrize("args, devices, message", [
    (("--config.optimizer.learnin_rate=0.1",), 1, "config.optimizer.learnin_rate: unknown key"),
    (("--config.batch_size=12",), 8,
     "config.batch_size=12: must be divisible by the device count (8)"),
    (("--config.optimizer.learning_rate=-1",), 1, "config.optimizer.learning_rate=-1"),
])
def test_main_reports_config_errors_in_one_line(args, devices, message, tmp_path):
  result = run_main(f"--config={SMOKE}", f"--workdir={tmp_path}", *args, devices=devices)
  assert result.returncode == 2
  error_lines = [line for line in result.stderr.splitlines() if line.startswith("dljax: error:")]
  assert len(error_lines) == 1 and message in error_lines[0], result.stderr
  assert "Traceback" not in result.stderr


def test_main_reports_a_missing_config_file(tmp_path):
  result = run_main("--config=configs/nope.py", f"--workdir={tmp_path}")
  assert result.returncode == 2
  assert "dljax: error: --config=configs/nope.py: no such file" in result.stderr


def test_missing_data_names_the_prepare_command(tmp_path):
  result = run_main(f"--config={SMOKE}", f"--workdir={tmp_path}",
                    f"--config.data.dir={tmp_path / 'empty'}")
  assert result.returncode == 2
  assert "python -m dljax.data prepare mnist" in result.stderr, result.stderr
  assert sys.executable  # the subprocess ran the same interpreter


def test_early_stopping_stops_and_tests_the_best_state(tiny_mnist_dir, tmp_path):
  # Validation loss falls as the model learns, so with mode='max' the first evaluation stays the
  # best: the run must stop after `patience` more evaluations and test the first one's params.
  config = smoke_config(**{
      "data.dir": tiny_mnist_dir, "num_epochs": 20.0, "early_stopping.metric": "loss",
      "early_stopping.mode": "max", "early_stopping.patience": 2,
      "early_stopping.restore_best": True})
  results = train.run(config, str(tmp_path))
  steps_per_epoch = 512 // 64
  assert results["stopped_early"]
  assert results["steps"] == 3 * steps_per_epoch
  assert results["best_validation"]["step"] == steps_per_epoch
  assert results["tested_step"] == steps_per_epoch
  validation = [r for r in read_jsonl(str(tmp_path)) if r["split"] == "validation"]
  assert results["test"]["loss"] == pytest.approx(validation[0]["loss"])  # validation = test


def test_rerunning_a_finished_run_rewrites_its_results_once(tmp_path):
  with tfds.testing.mock_data(num_examples=600):
    first = train.run(smoke_config(), str(tmp_path))
    os.remove(tmp_path / "results.json")  # as if the run died after its last checkpoint
    again = train.run(smoke_config(), str(tmp_path))
  assert again["test"] == first["test"]
  assert [r["split"] for r in read_jsonl(str(tmp_path))].count("test") == 1

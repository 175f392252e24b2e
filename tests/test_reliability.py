"""A run never loses its results: best checkpoint kept, divergence stopped, workdirs locked and
checked, damage recovered (issue 11's findings, each reproduced)."""

import contextlib
import json
import math
import os
import re
import signal
import subprocess
import time

import numpy as np
import pytest
import tensorflow_datasets as tfds

from dljax import checkpoint, config_lib, train, workdir
from dljax.errors import ConfigError, RunError
from tests.conftest import REPO, cpu_env, main_command, run_main
from tests.test_train import (
  SMOKE,
  assert_trees_close,
  config_from_args,
  finished_steps,
  latest_params,
  read_jsonl,
  smoke_config,
)


def mock_run(config, path, **kwargs):
  with tfds.testing.mock_data(num_examples=600):
    return train.run(config, str(path), **kwargs)


def read_info(path) -> dict:
  with open(os.path.join(path, "config.json")) as f:
    return json.load(f)


# 1. The best checkpoint is the one the trainer selected, by one rule. --------------------------

def test_of_equal_validation_values_the_first_is_best_and_its_checkpoint_is_kept(tmp_path):
  # Frozen params: every evaluation gives the same accuracy. Orbax's BestN kept the last of the
  # ties, the trainer tested the first, and the finished run crashed without results.json.
  config = smoke_config(**{"optimizer.freeze": ".*", "num_epochs": 3.0,
                           "early_stopping.restore_best": True})
  results = mock_run(config, tmp_path)
  assert results["tested_step"] == results["best_validation"]["step"] == 8
  assert finished_steps(tmp_path) == [8, 16, 24]  # the best, and the two latest
  assert (tmp_path / "results.json").exists()


def test_a_non_finite_validation_value_is_never_best():
  stopping = config_lib.trainer_config().early_stopping
  stopping.update(metric="loss", mode="min", patience=2)
  meta = {"best": None, "evals_without_improvement": 0, "stopped_early": False}
  for step, value in ((1, math.nan), (2, 0.5), (3, math.nan), (4, 0.5), (5, -math.inf)):
    train._update_early_stopping(meta, {"loss": value}, step, stopping)
    if step < 5:
      assert meta["best"] is None or meta["best"]["step"] == 2
  assert meta["best"]["step"] == 2 and meta["stopped_early"]


@pytest.mark.parametrize("mode, values, stops_at", [
    ("max", (0.90, 0.97, 0.98, 0.99), 3),  # accuracy: stops at the first value >= 0.98
    ("min", (0.30, math.nan, 0.05, 0.01), 3),  # loss: <= 0.05; NaN never reaches it
])
def test_a_target_stops_at_the_first_evaluation_that_reaches_it(mode, values, stops_at):
  stopping = config_lib.trainer_config().early_stopping
  stopping.update(metric="m", mode=mode, target=0.98 if mode == "max" else 0.05)
  meta = {"best": None, "evals_without_improvement": 0, "stopped_early": False}
  for step, value in enumerate(values, start=1):
    train._update_early_stopping(meta, {"m": value}, step, stopping)
    assert meta["stopped_early"] == (step >= stops_at)
    if meta["stopped_early"]:
      break


def test_the_checkpointer_keeps_the_two_latest_and_the_named_best(tmp_path):
  checkpointer = checkpoint.Checkpointer(str(tmp_path))
  for step in range(1, 7):
    checkpointer.save(step, {"w": np.full(3, step, np.float32)}, {"step": step}, best_step=2)
    checkpointer.wait()
  checkpointer.close()
  assert sorted(int(p.name) for p in tmp_path.iterdir() if p.name.isdigit()) == [2, 5, 6]


# 2. Divergence stops the run; a changed config resumes it. -------------------------------------

def test_a_diverging_run_stops_with_one_line_and_resumes_with_a_lower_learning_rate(
    tiny_mnist_dir, tmp_path):
  args = (f"--config={SMOKE}", f"--config.data.dir={tiny_mnist_dir}", f"--workdir={tmp_path}",
          "--config.optimizer.name=sgd", "--config.log_every_steps=2",
          "--config.eval_every_steps=4", "--allow_changes")
  train.run(config_from_args(*args, "--config.num_steps=8"), str(tmp_path))  # checkpoints 4, 8
  result = run_main(*args, "--config.num_steps=16", "--config.optimizer.learning_rate=1e4")
  assert result.returncode == 1, result.stderr
  errors = [line for line in result.stderr.splitlines() if line.startswith("dljax: error:")]
  assert len(errors) == 1, result.stderr
  assert re.search(r"diverged: a non-finite loss at step (9|1\d); its last checkpoint \(step 8\) "
                   "is finite", errors[0]), errors[0]
  assert "Traceback" not in result.stderr
  assert finished_steps(tmp_path)[-1] == 8  # nothing non-finite was saved

  resumed = train.run(config_from_args(*args, "--config.num_steps=16",
                                       "--config.optimizer.learning_rate=1e-2"),
                      str(tmp_path), allow_changes=True)
  assert np.isfinite(resumed["test"]["loss"])
  train_steps = [r["step"] for r in read_jsonl(str(tmp_path)) if r["split"] == "train"]
  assert train_steps == list(range(2, 17, 2))  # the diverged steps' records were dropped
  history = read_info(tmp_path)["changes"]
  assert [change["step"] for change in history] == [8, 8]
  assert history[-1]["changed"]["optimizer.learning_rate"] == [1e4, 1e-2]


def test_an_infinite_learning_rate_is_a_config_error():
  config = smoke_config()
  config_lib.override(config, "optimizer.learning_rate", "1e999")
  with pytest.raises(ConfigError, match=r"config.optimizer.learning_rate=inf"):
    config_lib.validate(config)


# 3. One live run per workdir. -------------------------------------------------------------------

def test_a_second_run_in_a_locked_workdir_refuses_naming_the_holder(tmp_path):
  with contextlib.ExitStack() as held:
    workdir.lock(str(tmp_path), held)
    result = run_main(f"--config={SMOKE}", f"--workdir={tmp_path}")
    assert result.returncode == 1
    assert f"is in use by pid {os.getpid()}" in result.stderr, result.stderr
    with pytest.raises(RunError, match="is in use by pid"):
      mock_run(smoke_config(), tmp_path)
  assert not (tmp_path / "checkpoints").exists()
  mock_run(smoke_config(num_steps=2), tmp_path)  # the lock went with its holder


def test_a_workdir_that_is_a_file_is_a_one_line_error(tmp_path):
  (tmp_path / "file").write_text("")
  result = run_main(f"--config={SMOKE}", f"--workdir={tmp_path / 'file'}")
  assert result.returncode == 2
  assert "dljax: error: --workdir=" in result.stderr and "is a file" in result.stderr


# 4. A re-run checks its config against the workdir's. -----------------------------------------

def test_resuming_with_another_config_refuses_before_writing_anything(tmp_path):
  mock_run(smoke_config(num_steps=8), tmp_path)
  before = (tmp_path / "config.json").read_text()
  with pytest.raises(ConfigError, match=r"optimizer.learning_rate: 0.001 -> 0.01.*--restart"):
    mock_run(smoke_config(num_steps=16, **{"optimizer.learning_rate": 0.01}), tmp_path)
  assert (tmp_path / "config.json").read_text() == before
  # Training longer is a resumable change; another model is not, even when allowed.
  assert mock_run(smoke_config(num_steps=16), tmp_path)["steps"] == 16
  with pytest.raises(ConfigError, match=r"has params/Dense_0/bias of shape \(512,\), this "
                                        r"config's is \(32,\)"):
    mock_run(smoke_config(num_steps=24, **{"model.hidden": (32, 32)}), tmp_path,
             allow_changes=True)
  results = mock_run(smoke_config(num_steps=4, **{"model.hidden": (32, 32)}), tmp_path,
                     restart=True)
  assert results["steps"] == 4 and read_info(tmp_path)["changes"] == []


# 5. Damage is recovered from. -------------------------------------------------------------------

def test_a_damaged_latest_checkpoint_falls_back_to_the_one_before(tmp_path):
  config = smoke_config(num_steps=24, eval_every_steps=8)
  straight = mock_run(config, tmp_path / "straight")
  damaged = tmp_path / "damaged"
  mock_run(smoke_config(num_steps=16, eval_every_steps=8), damaged)
  for path in (damaged / "checkpoints" / "16").rglob("*"):
    if path.is_file():
      path.write_bytes(b"garbage")
  (damaged / "metrics.jsonl").open("a").write('{"step": 17, "spl\n')
  resumed = mock_run(config, damaged)
  assert (damaged / "checkpoints" / "16.damaged").is_dir()  # set aside for a person to look at
  assert resumed["test"] == straight["test"]
  assert_trees_close(latest_params(str(tmp_path / "straight")), latest_params(str(damaged)),
                     atol=0)


# 8, 9. Speed over resumptions; SIGTERM's checkpoints and timing. -------------------------------

def test_sigterm_while_starting_exits_cleanly_and_its_checkpoint_goes_at_the_end(
    tiny_mnist_dir, tmp_path):
  args = (f"--config={SMOKE}", f"--config.data.dir={tiny_mnist_dir}", "--config.num_steps=40",
          "--config.eval_every_steps=20", f"--workdir={tmp_path}")
  process = subprocess.Popen(main_command(*args), env=cpu_env(1), cwd=REPO,
                             stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
  deadline = time.time() + 60  # the lock is taken once the run handles SIGTERM
  while not (tmp_path / workdir.LOCK_FILE).exists() and time.time() < deadline:
    time.sleep(0.01)
  process.send_signal(signal.SIGTERM)
  _, stderr = process.communicate(timeout=120)
  assert process.returncode == 0, stderr
  results = train.run(smoke_config(**{"data.dir": tiny_mnist_dir, "num_steps": 40,
                                      "eval_every_steps": 20}), str(tmp_path))
  assert results["examples_per_second"] == pytest.approx(
      results["steps"] * 64 / results["train_seconds"])
  assert finished_steps(tmp_path) == [20, 40]

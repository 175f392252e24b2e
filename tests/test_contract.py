"""The task contract, proved on toy tasks (tests/toy_tasks.py): two optimisers and an evaluator
(a 2-D GAN), a task with no data set that resumes exactly (a bandit), a ratio-of-sums metric, and
starting from another run's weights with frozen parts."""

import json
import os
import signal
import types

import jax
import jax.numpy as jnp
import numpy as np
import pytest
import tensorflow_datasets as tfds
from flax import struct
from tensorboard.backend.event_processing import event_file_loader

import dljax
from dljax import checkpoint, config_lib, evaluation, models, tasks, train
from dljax.data import Splits
from dljax.data import __main__ as data_cli
from dljax.errors import ConfigError
from dljax.tasks import supervised
from dljax.tasks.task import Task
from tests import toy_tasks
from tests.conftest import run_main
from tests.test_reliability import read_info
from tests.test_train import (
  SMOKE,
  assert_trees_close,
  finished_steps,
  read_jsonl,
  smoke_config,
  start_and_stop_after_first_checkpoint,
)


@pytest.fixture(autouse=True, scope="module")
def toy_registries():
  """The toy tasks while this module's tests run; the registries as shipped for everyone else."""
  toy_tasks.register()
  yield
  toy_tasks.unregister()


def toy_config(name: str, **overrides):
  config = config_lib.load(f"tests/configs/{name}.py")
  for key, value in overrides.items():
    config_lib.override(config, key, value)
  return config


def saved_state(workdir) -> dict[str, np.ndarray]:
  """The state a run tested, as {'/'-joined path: array}."""
  with open(os.path.join(workdir, "results.json")) as f:
    step = json.load(f)["tested_step"]
  return checkpoint.read_state(os.path.join(workdir, "checkpoints"), step)


def test_a_gan_with_two_optimisers_moves_its_samples_to_the_modes(tmp_path):
  results = train.run(toy_config("gan2d"), str(tmp_path))
  validation = [r for r in read_jsonl(str(tmp_path)) if r["split"] == "validation"]
  assert results["test"]["nearest_mode_distance"] < 0.7 * validation[0]["nearest_mode_distance"]
  assert results["test"]["modes_covered"] >= 6  # the evaluator's metric, beside finalize's
  assert 0 < results["test"]["real_precision"] < 1
  # Both optimisers' states are in the checkpoint, each over its own network.
  saved = saved_state(str(tmp_path))
  for name in ("generator", "discriminator"):
    assert any(path.startswith(f"opt_state/{name}/") for path in saved)
  # The evaluator drew its fixed-noise samples at every evaluation, as PNGs and in TensorBoard.
  pngs = sorted(os.listdir(tmp_path / "samples" / "samples"))
  assert pngs == [f"step_{r['step']:08d}.png" for r in validation] + ["test.png"]
  events = [e for path in (tmp_path / "tensorboard").iterdir()
            for e in event_file_loader.EventFileLoader(str(path)).Load()]
  images = [v for e in events for v in e.summary.value if v.tag == "samples"]
  assert len(images) == len(validation) + 1
  # TensorBoard's loader migrates image summaries to tensors: [width, height, PNG].
  assert images[0].tensor.string_val[-1][:8] == b"\x89PNG\r\n\x1a\n"


def test_several_optimisers_are_validated_each_by_name():
  config = toy_config("gan2d")
  config_lib.override(config, "optimizers.generator.b1", "1.5")
  with pytest.raises(ConfigError, match=r"^config.optimizers.generator.b1=1.5: must be in"):
    config_lib.validate(config)


@struct.dataclass
class NoParams:
  params: dict


def _ratio_probe(config, splits, total_steps):
  """A task whose metric is a ratio of sums: the mean y of the points with x > 0."""
  del config, splits, total_steps
  return Task(
      init=lambda rng, batch: NoParams(params={}),
      train_step=lambda state, batch, rng: (state, {}),
      eval_step=lambda state, batch, rng: {
          "right": (batch["point"][:, 0] > 0).astype(jnp.float32),
          "y_if_right": jnp.where(batch["point"][:, 0] > 0, batch["point"][:, 1], 0.0)},
      finalize=lambda totals, count: {"y_given_right": totals["y_if_right"] / totals["right"]})


def test_finalize_turns_split_sums_into_ratio_metrics(tmp_path, monkeypatch):
  monkeypatch.setitem(tasks.TASKS, "ratio_probe", types.SimpleNamespace(
      build=_ratio_probe, validate=lambda config: None))
  config = toy_config("gan2d", num_steps=1, eval_batch_size=96,  # 512 test points: padding
                      **{"early_stopping.metric": "y_given_right"})
  with config.unlocked():
    config.task = "ratio_probe"
    del config.optimizers
  results = train.run(config, str(tmp_path))
  points = toy_tasks.mixture(None)["test"]["point"]
  right = points[:, 0] > 0
  expected = points[right, 1].sum() / right.sum()
  assert results["test"]["y_given_right"] == pytest.approx(expected, rel=1e-5)
  assert not np.isclose(expected, np.mean(np.where(right, points[:, 1], 0.0)))  # not a mean


BANDIT_LONG = {"num_steps": 6000, "eval_every_steps": 200, "log_every_steps": 100}


def test_a_task_with_no_data_set_resumes_bit_identically_after_kill_9(tmp_path):
  train.run(toy_config("bandit", **BANDIT_LONG), str(tmp_path / "straight"))
  args = ("--config=tests/configs/bandit.py",
          *(f"--config.{key}={value}" for key, value in BANDIT_LONG.items()))
  code = start_and_stop_after_first_checkpoint(args, tmp_path / "resumed", signal.SIGKILL,
                                               last_step=BANDIT_LONG["num_steps"])
  assert code == -signal.SIGKILL
  train.run(toy_config("bandit", **BANDIT_LONG), str(tmp_path / "resumed"))
  assert read_jsonl(str(tmp_path / "straight")) == read_jsonl(str(tmp_path / "resumed"))
  assert_trees_close(saved_state(str(tmp_path / "straight")),
                     saved_state(str(tmp_path / "resumed")), atol=0)
  with open(tmp_path / "resumed" / "results.json") as f:
    results = json.load(f)
  assert results["test"]["regret"] == 0.0 and results["epochs"] is None
  assert (tmp_path / "resumed" / "samples" / "greedy_arm" / "test.txt").read_text().startswith(
      "arm ")


def test_tasks_with_no_data_set_train_together_as_alone(tmp_path):
  configs = [toy_config("bandit", **{"optimizer.learning_rate": lr, "num_steps": 100})
             for lr in (0.05, 0.2)]
  together = train.run_together(configs, [str(tmp_path / "a"), str(tmp_path / "b")])
  alone = train.run(configs[1], str(tmp_path / "alone"))
  assert together[1]["test"] == alone["test"]
  np.testing.assert_allclose(saved_state(str(tmp_path / "b"))["params"],
                             saved_state(str(tmp_path / "alone"))["params"], rtol=1e-6)


# Starting from another run's weights. --------------------------------------------------------

def _mlp(**overrides):
  return smoke_config(num_steps=8, eval_every_steps=8, **{
      "model.hidden": (32, 32), "model.batch_norm_after": (0,), **overrides})


def _run(config, path):
  with tfds.testing.mock_data(num_examples=600):
    return train.run(config, str(path))


@pytest.fixture(scope="module")
def source_run(tmp_path_factory):
  path = tmp_path_factory.mktemp("source")
  _run(_mlp(), path)
  return path


def test_a_backbone_loads_from_another_workdir_frozen_with_its_batch_norm(source_run, tmp_path):
  config = _mlp(**{"init_from.path": str(source_run), "init_from.skip": "Dense_2",
                   "optimizer.freeze": "Dense_0|BatchNorm_0"})
  _run(config, tmp_path)
  source, loaded = saved_state(str(source_run)), saved_state(str(tmp_path))
  for path in ("params/Dense_0/kernel", "params/BatchNorm_0/scale", "batch_stats/BatchNorm_0/mean",
               "batch_stats/BatchNorm_0/var"):  # loaded and frozen: BatchNorm in inference mode
    np.testing.assert_array_equal(loaded[path], source[path], err_msg=path)
  for path in ("params/Dense_1/kernel", "params/Dense_2/kernel"):  # trained on / a new head
    assert not np.allclose(loaded[path], source[path]), path
  assert read_info(str(tmp_path))["config"]["init_from"]["path"] == str(source_run)


def test_weights_load_from_an_npz_file_as_from_a_workdir(source_run, tmp_path):
  weights = {path: value for path, value in saved_state(str(source_run)).items()
             if path.startswith("params/")}
  np.savez(tmp_path / "weights.npz", **weights)
  params_only = {"optimizer.freeze": ".*", "init_from.load": "^params/"}
  from_file = _run(_mlp(**{"init_from.path": str(tmp_path / "weights.npz"), **params_only}),
                   tmp_path / "file")
  from_workdir = _run(_mlp(**{"init_from.path": str(source_run), **params_only}),
                      tmp_path / "workdir")
  assert from_file["test"] == from_workdir["test"]


@pytest.mark.parametrize("overrides, message", [
    ({"model.hidden": (16, 32)}, r"^config.init_from: .* has batch_stats/BatchNorm_0/mean of "
                                 r"shape \(32,\), this config's is \(16,\)$"),
    ({"init_from.load": "^params/Conv"}, r"^config.init_from.load='\^params/Conv' .*selects no "
                                         r"variable"),
    ({"model.batch_norm_after": (0, 1)}, r"has no batch_stats/BatchNorm_1/mean \(it holds "
                                         r"batch_stats/BatchNorm_0/mean, batch_stats/BatchNorm_0/"
                                         r"var, params/BatchNorm_0/bias, \.\.\. \(10 in all\)\)$"),
])
def test_weights_that_do_not_fit_are_a_one_line_error(source_run, tmp_path, overrides, message):
  with pytest.raises(ConfigError, match=message):
    _run(_mlp(**{"init_from.path": str(source_run), **overrides}), tmp_path)
  assert not finished_steps(tmp_path)


def test_frozen_batch_norm_runs_in_inference_mode_in_the_train_step():
  config = _mlp(**{"optimizer.freeze": "BatchNorm_0"})
  splits = jax.tree.map(np.asarray, {"image": np.zeros((8, 28, 28, 1), np.uint8),
                                     "label": np.zeros(8, np.int64)})
  task = tasks.build(config, Splits(train=splits, validation=None, test=splits), 10)
  batch = {"image": jnp.asarray(np.random.default_rng(0).integers(0, 255, (8, 28, 28, 1)),
                                jnp.uint8), "label": jnp.zeros(8, jnp.int32)}
  state = task.init(jax.random.key(0), batch)
  trained, _ = task.train_step(state, batch, jax.random.key(1))
  assert_trees_close(trained.batch_stats, state.batch_stats, atol=0)
  unfrozen = tasks.build(_mlp(), Splits(train=splits, validation=None, test=splits), 10)
  moved, _ = unfrozen.train_step(unfrozen.init(jax.random.key(0), batch), batch,
                                 jax.random.key(1))
  assert not np.allclose(moved.batch_stats["BatchNorm_0"]["mean"], 0.0)


# A trained run scored on other data. ---------------------------------------------------------

def test_evaluate_mode_scores_the_tested_state_on_another_data_set(source_run, tmp_path):
  before = (source_run / "results.json").read_text()
  config = _mlp()
  config_lib.override(config, "data.name", "fashion_mnist")
  with tfds.testing.mock_data(num_examples=600):
    evaluated = evaluation.evaluate(config, str(source_run))
  assert 0 <= evaluated["metrics"]["accuracy"] <= 1 and evaluated["examples"] == 256
  with open(source_run / "eval_fashion_mnist.json") as f:
    assert json.load(f) == json.loads(json.dumps(evaluated))
  assert (source_run / "results.json").read_text() == before  # the run is left as it was
  config_lib.override(config, "data.name", "cifar10")
  with tfds.testing.mock_data(num_examples=600), pytest.raises(
      ConfigError, match=r"^config.data.name='cifar10': its 'image' is 32x32x3, the run trained "
                         r"on 28x28x1$"):
    evaluation.evaluate(config, str(source_run))


def test_evaluate_mode_from_the_command_line_writes_eval_name_json(tiny_mnist_dir, tmp_path):
  train.run(smoke_config(num_steps=8, **{"data.dir": tiny_mnist_dir}), str(tmp_path))
  result = run_main(f"--config={SMOKE}", f"--config.data.dir={tiny_mnist_dir}",
                    f"--workdir={tmp_path}", "--mode=evaluate", "--eval_split=train",
                    "--eval_name=tiny_train")
  assert result.returncode == 0, result.stderr
  with open(tmp_path / "eval_tiny_train.json") as f:
    evaluated = json.load(f)
  assert evaluated["split"] == "train" and evaluated["examples"] == 512
  assert json.loads(result.stdout) == evaluated["metrics"]


def test_inputs_and_targets_are_made_inside_the_step():
  """A denoiser's recipe: noisy inputs from the step's RNG, the clean images as targets."""
  config = _mlp(**{"model.num_classes": 784})
  config.data.normalize = "none"
  images = np.random.default_rng(0).integers(0, 256, (4, 28, 28, 1)).astype(np.uint8)
  splits = Splits(train={"image": images}, validation=None, test={"image": images})

  def noisy_inputs(rng, images_BHWC, batch):
    noisy = images_BHWC + 0.1 * jax.random.normal(rng, images_BHWC.shape)
    return noisy, {**batch, "target": images_BHWC.reshape(len(images_BHWC), -1)}

  task = supervised.build(
      config, splits, 10, inputs_and_targets=noisy_inputs,
      loss=lambda outputs, batch: jnp.mean(jnp.square(outputs - batch["target"]), axis=-1),
      metrics=lambda outputs, batch: {})
  batch = {"image": jnp.asarray(images)}
  state = task.init(jax.random.key(0), batch)
  rng = jax.random.key(3)
  clean = images.reshape(4, -1) / 255.0
  noisy, _ = noisy_inputs(rng, jnp.asarray(images, jnp.float32) / 255.0, {})
  outputs = task_model_outputs(config, state, noisy)
  np.testing.assert_allclose(task.eval_step(state, batch, rng)["loss"],
                             np.mean(np.square(outputs - clean), axis=-1), rtol=1e-5)
  assert not np.allclose(task.eval_step(state, batch, jax.random.key(4))["loss"],
                         task.eval_step(state, batch, rng)["loss"])  # the noise is the RNG's
  _, metrics = task.train_step(state, batch, rng)
  assert np.isfinite(metrics["loss"])


def task_model_outputs(config, state, inputs):
  return np.asarray(models.build(config.model).apply(
      {"params": state.params, "batch_stats": state.batch_stats}, inputs, train=False))


def test_a_clock_model_is_scored_on_the_course_clocks(tmp_path):
  """The issue's example: trained on rendered clocks, scored on the course's images.npy."""
  config = config_lib.load("configs/clock_periodic.py:smoke")
  for key, value in {"data.dir": str(tmp_path / "tfds"), "data.clocks.size": 150,
                     "data.clocks.num_examples": 100, "num_steps": 2, "data.eval_limit": 8,
                     "eval_batch_size": 8}.items():
    config_lib.override(config, key, value)
  train.run(config, str(tmp_path / "run"))
  course = tmp_path / "course"
  course.mkdir()
  rng = np.random.default_rng(0)
  np.save(course / "images.npy", rng.integers(0, 256, (10, 150, 150), dtype=np.uint8))
  np.save(course / "labels.npy", np.stack([rng.integers(0, 12, 10), rng.integers(0, 60, 10)], 1))
  assert data_cli.main(["prepare", "clocks", "--from", str(course),
                        "--data_dir", str(tmp_path / "tfds")]) == 0
  config_lib.override(config, "data.clocks.source", "course")
  evaluated = evaluation.evaluate(config, str(tmp_path / "run"), "course")
  assert evaluated["examples"] == 2 and 0 <= evaluated["metrics"]["error_minutes"] <= 360
  assert "error_minutes_median" in evaluated["metrics"]  # the task's analysis ran ...
  assert (tmp_path / "run" / "eval_course" / "error_histogram.png").exists()  # ... and drew


def test_a_task_with_no_data_set_stops_early_on_its_evaluators_metric(tmp_path):
  # The bandit's regret is 0 from the first evaluation on: no later one improves on it.
  results = train.run(toy_config("bandit", **{"early_stopping.patience": 2}), str(tmp_path))
  assert results["stopped_early"] and results["steps"] == 3 * 50
  assert results["best_validation"]["step"] == 50 and results["tested_step"] == 150


def test_a_run_with_no_data_set_loads_for_its_state(tmp_path):
  train.run(toy_config("bandit", num_steps=50), str(tmp_path))
  run = dljax.load(str(tmp_path))
  np.testing.assert_array_equal(run.state.params, saved_state(str(tmp_path))["params"])
  with pytest.raises(ConfigError, match="makes no predictions from inputs"):
    run.predict({})

"""Trials trained together (vmapped in one jit) against the same trials trained one by one."""

import json

import jax
import jax.numpy as jnp
import ml_collections
import numpy as np
import pytest
import tensorflow_datasets as tfds

import configs.mnist_mlp
from dljax import data, optim, tasks, train, trials
from dljax.errors import ConfigError
from tests.test_dqn import smoke_config as dqn_config
from tests.test_train import latest_params, read_jsonl, smoke_config

# Three trials of the smoke MLP differing in every way the vmapped step must get right: seed
# (their own batches, init and dropout masks), learning rate, dropout rate and a regulariser.
# The third's learning rate makes its validation loss climb, so it stops early while the others
# go on. Two steps a compiled call: the trials' own batches are stacked per step too.
TRIALS = (
    {"seed": 0, "optimizer.learning_rate": 1e-3, "model.dropout": 0.2, "optimizer.l2": 0.0},
    {"seed": 1, "optimizer.learning_rate": 3e-3, "model.dropout": 0.0, "optimizer.l2": 1e-4},
    {"seed": 0, "optimizer.learning_rate": 0.3, "model.dropout": 0.5, "optimizer.l2": 0.0},
)
COMMON = {"early_stopping.metric": "loss", "early_stopping.mode": "min",
          "early_stopping.patience": 1, "early_stopping.restore_best": True,
          "eval_every_steps": 2, "num_epochs": 3.0, "steps_per_call": 2}


def trial_configs(data_dir: str):
  return [smoke_config(**COMMON, **{"data.dir": data_dir}, **overrides) for overrides in TRIALS]


def read_results(workdir) -> dict:
  with open(workdir / "results.json") as f:
    return json.load(f)


@pytest.fixture(scope="module")
def one_by_one(tiny_mnist_dir, tmp_path_factory):
  root = tmp_path_factory.mktemp("one_by_one")
  for k, config in enumerate(trial_configs(tiny_mnist_dir)):
    train.run(config, str(root / str(k)))
  return root


def test_trials_trained_together_match_trials_trained_one_by_one(tiny_mnist_dir, one_by_one,
                                                                 tmp_path):
  workdirs = [tmp_path / str(k) for k in range(len(TRIALS))]
  together = train.run_together(trial_configs(tiny_mnist_dir), [str(w) for w in workdirs])

  assert [r["trials_together"] for r in together] == [3, 3, 3]
  stopped = [r["stopped_early"] for r in together]
  assert stopped[2] and not all(stopped), "the test needs one trial to stop before the others"
  for k, workdir in enumerate(workdirs):
    alone = read_results(one_by_one / str(k))
    assert together[k] == read_results(workdir)
    for key in ("steps", "tested_step", "stopped_early", "parameters"):
      assert together[k][key] == alone[key], key
    for name, value in alone["test"].items():
      np.testing.assert_allclose(together[k]["test"][name], value, rtol=1e-4, atol=1e-5)
    records, alone_records = read_jsonl(str(workdir)), read_jsonl(str(one_by_one / str(k)))
    assert [(r["step"], r["split"]) for r in records] == [
        (r["step"], r["split"]) for r in alone_records]
    for record, alone_record in zip(records, alone_records, strict=True):
      np.testing.assert_allclose(record["loss"], alone_record["loss"], rtol=1e-4, atol=1e-5)
    # Reduction order differs between the vmapped and the plain step; RMSprop's 1 / sqrt(v)
    # amplifies that rounding, most in the diverging trial (params ~4, differences ~1e-3 of that).
    for leaf, alone_leaf in zip(jax.tree.leaves(latest_params(str(workdir))),
                                jax.tree.leaves(latest_params(str(one_by_one / str(k)))),
                                strict=True):
      assert np.abs(leaf - alone_leaf).max() <= 1e-3 * np.abs(alone_leaf).max() + 1e-6


def test_trials_stopped_together_resume_as_if_never_stopped(tiny_mnist_dir, one_by_one, tmp_path,
                                                            monkeypatch):
  workdirs = [str(tmp_path / str(k)) for k in range(len(TRIALS))]
  stop_at = 4  # a log boundary (log_every_steps=4) after trial 2 has stopped early

  class StopOnce(train._PreemptionFlag):
    def __call__(self, step):
      return step == stop_at

  monkeypatch.setattr(train, "_PreemptionFlag", StopOnce)
  assert train.run_together(trial_configs(tiny_mnist_dir), workdirs) == [None, None, None]
  monkeypatch.undo()
  resumed = train.run_together(trial_configs(tiny_mnist_dir), workdirs)

  for k in range(len(TRIALS)):
    alone = read_results(one_by_one / str(k))
    assert resumed[k]["steps"] == alone["steps"]
    np.testing.assert_allclose(resumed[k]["test"]["loss"], alone["test"]["loss"], rtol=1e-4)


def test_trials_with_one_seed_share_their_batches(tmp_path):
  overrides = [{"optimizer.learning_rate": lr} for lr in (1e-3, 2e-3)]
  configs_ = [smoke_config(num_steps=3, **o) for o in overrides]
  with tfds.testing.mock_data(num_examples=600):
    together = train.run_together(configs_, [str(tmp_path / "a"), str(tmp_path / "b")])
    alone = train.run(configs_[1], str(tmp_path / "alone"))
  np.testing.assert_allclose(together[1]["test"]["loss"], alone["test"]["loss"], rtol=1e-5)
  assert together[0]["test"]["loss"] != together[1]["test"]["loss"]


@pytest.mark.parametrize("optimizer", ["sgd", "rmsprop", "adam", "adamw", "adadelta", "nadam"])
@pytest.mark.parametrize("model", ["mlp", "cnn"])
def test_every_value_key_can_be_traced(optimizer, model):
  """Building and stepping the task with every VALUE_KEY traced: no Python decision on them."""
  config = configs.mnist_mlp.get_config("smoke")
  with config.unlocked():
    config.optimizer = optim.optimizer_config(optimizer)
    if model == "cnn":
      config.model = ml_collections.ConfigDict(
          dict(name="cnn", conv_features=(4,), kernel_sizes=(3,), pool_after=(0,),
               dropout_after=(0,), hidden=(8,), dropout=0.5))
  splits = data.Splits(train={"image": np.zeros((8, 28, 28, 1), np.uint8),
                              "label": np.zeros(8, np.int64)}, validation=None, test=None)
  keys = [key for key in trials.VALUE_KEYS
          if key != "seed" and key.split(".")[1] in config[key.split(".")[0]]]

  def step(values):
    task = tasks.build(trials.with_values(config, dict(zip(keys, values, strict=True))), splits,
                       total_steps=10)
    batch = {"image": jnp.zeros((2, 28, 28, 1), jnp.uint8), "label": jnp.zeros(2, jnp.int32)}
    state = task.init(jax.random.key(0), batch)
    return task.train_step(state, batch, jax.random.key(1))

  jax.eval_shape(jax.vmap(step), [jnp.full(2, 0.5)] * len(keys))


def test_differing_names_a_key_that_cannot_vary():
  a, b = smoke_config(), smoke_config(**{"model.hidden": (8,)})
  with pytest.raises(ConfigError, match=r"config.model.hidden differs .* only these may: seed"):
    trials.differing([a, b])
  assert trials.group_key(a) != trials.group_key(b)


def test_values_that_may_vary_group_together():
  a, b = smoke_config(), smoke_config(**{"seed": 3, "optimizer.learning_rate": 0.1})
  assert trials.differing([a, b]) == {"optimizer.learning_rate": [1e-3, 0.1], "seed": [0, 3]}
  assert trials.group_key(a) == trials.group_key(b)
  assert list(trials.stacked_values([a, b])) == ["optimizer.learning_rate"]


def test_seeds_cannot_vary_when_they_draw_the_validation_split():
  a, b = (smoke_config(**{"seed": seed, "data.validation": "random",
                          "data.validation_size": 0.1}) for seed in (0, 1))
  with pytest.raises(ConfigError, match=r"data\.validation='random'"):
    trials.differing([a, b])


def test_trials_need_their_own_workdirs(tmp_path):
  with pytest.raises(ConfigError, match="different workdirs"):
    train.run_together([smoke_config(), smoke_config(seed=1)], [str(tmp_path)] * 2)


def test_choices_that_differ_are_indices_and_group_together():
  a = dqn_config()
  b = dqn_config(**{"dqn.policy": "softmax", "dqn.target": "sarsa", "seed": 1})
  c = dqn_config(**{"dqn.target": "sarsa"})
  assert trials.group_key(a) == trials.group_key(b) == trials.group_key(c)
  stacked = trials.stacked_values([a, b, c])
  assert {key: value.tolist() for key, value in stacked.items()} == {
      "dqn.policy": [0, 1, 0], "dqn.target": [0, 1, 1]}
  assert stacked["dqn.policy"].dtype == np.int32
  assert trials.stacked_values([a, a]) == {}  # all agree: the task sees the string


def test_a_choice_that_is_not_allowed_is_one_line():
  with pytest.raises(ConfigError) as error:
    trials.differing([dqn_config(), dqn_config(**{"dqn.policy": "boltzmann"})])
  assert str(error.value) == "config.dqn.policy='boltzmann': allowed: epsilon_greedy, softmax"


def test_choose_computes_the_named_choice_or_selects_each_trials():
  choices = ("double", "negate")
  compute = lambda x: lambda name: {"y": 2 * x if name == "double" else -x}
  x = jnp.arange(3.0)
  built = []
  assert trials.choose("negate", choices, lambda name: built.append(name) or name) == "negate"
  assert built == ["negate"]  # a string: that choice alone is built
  assert trials.options("negate", choices) == ("negate",)
  chosen = jax.vmap(lambda index, x: trials.choose(index, choices, compute(x)))(
      jnp.array([1, 0], jnp.int32), jnp.stack([x, x]))
  np.testing.assert_array_equal(chosen["y"], [-x, 2 * x])

"""Every config file loads, validates and builds its model; the reference configs train (smoke)."""

import dataclasses
import glob
import os
import re

import numpy as np
import pytest
import tensorflow_datasets as tfds

import configs.cifar10_cnn
from dljax import config_lib, models, train
from dljax.errors import ConfigError
from tests.conftest import REPO
from tests.test_models import KERAS_PARAMS

CONFIG_FILES = sorted(os.path.relpath(path, REPO) for path in glob.glob(f"{REPO}/configs/*.py")
                      if not path.endswith("__init__.py"))
# Configs whose task trains one network of the model registry (an agent's lives in its section).
MODEL_CONFIG_FILES = [path for path in CONFIG_FILES
                      if "model" in config_lib.load(os.path.join(REPO, path))]


@pytest.mark.parametrize("arg", ["", ":smoke"])
@pytest.mark.parametrize("path", CONFIG_FILES)
def test_config_loads_locked_validates_and_builds_its_model(path, arg):
  config = config_lib.load(os.path.join(REPO, path) + arg)
  assert config.is_locked
  config_lib.validate(config)  # which builds the model, if the config has one


@pytest.mark.parametrize("path", MODEL_CONFIG_FILES)
def test_every_model_knob_is_in_the_config_so_the_command_line_reaches_it(path):
  config = config_lib.load(os.path.join(REPO, path))
  model_class = models.MODELS[config.model.name]
  fields = {field.name for field in dataclasses.fields(model_class)} - {"parent", "name"}
  assert set(config.model) - {"name"} == fields


@pytest.mark.parametrize("path, key, value", [
    ("configs/mnist_mlp.py", "model.dropout_after", "(1,)"),
    ("configs/mnist_mlp.py", "model.batch_norm_after", "(0, 1)"),
    ("configs/geron_mlp.py", "model.bias_init", "he_normal"),
    ("configs/mnist_cnn.py", "model.bias_init", "ones"),
    ("configs/mnist_mlp.py", "classification.output_activation", "sigmoid"),
    ("configs/geron_mlp.py", "classification.loss", "poisson"),
    ("configs/mnist_mlp.py", "data.permute_pixels", "true"),
    ("configs/geron_cnn.py", "data.permutation_seed", "7"),
])
def test_new_knobs_override_the_locked_configs_and_build(path, key, value):
  config = config_lib.load(os.path.join(REPO, path))
  config_lib.override(config, key, value)
  config_lib.validate(config)
  models.build(config.model)


@pytest.mark.parametrize("key, value, message", [
    ("optimizer.learning_rate", "1e999", "config.optimizer.learning_rate=inf: "),  # as typed
    ("num_epochs", float("nan"), "config.num_epochs=nan: "),
    ("model.hidden", (512, float("-inf")), "config.model.hidden[1]=-inf: "),
])
def test_validate_rejects_inf_and_nan_anywhere(key, value, message):
  config = config_lib.load(os.path.join(REPO, "configs/mnist_mlp.py:smoke"))
  config_lib.override(config, key, value)
  with pytest.raises(ConfigError, match=f"^{re.escape(message)}must be a finite number$"):
    config_lib.validate(config)


@pytest.mark.parametrize("key, value, message", [
    ("model.hidden", "(512, 0)", "config.model.hidden=(512, 0): sizes must be ints > 0"),
    ("model.dropout", "1.0", "config.model.dropout=1.0: must be a dropout rate in [0, 1)"),
])
def test_validate_checks_the_model_fields_before_any_data_is_read(key, value, message):
  config = config_lib.load(os.path.join(REPO, "configs/mnist_mlp.py:smoke"))
  config_lib.override(config, key, value)
  config.data.dir = "/nonexistent"  # validation reads no data
  with pytest.raises(ConfigError, match=f"^{re.escape(message)}$"):
    config_lib.validate(config)


@pytest.mark.parametrize("text, message", [
    ("def get_config(arg):\n  return (\n", r"CONFIG:2: syntax error: '\(' was never closed"),
    ("import ml_collections\n\ndef get_config(arg):\n  return {}['lr']\n",
     "CONFIG:4: KeyError: 'lr'"),
    ("import nowhere_to_be_found\n", "CONFIG:1: ModuleNotFoundError: No module named"),
    ("x = 1\n", "CONFIG: defines no get_config"),
    ("def get_config(arg):\n  return dict(lr=0.1)\n",
     r"CONFIG: get_config\('smoke'\) returned a dict, not an ml_collections.ConfigDict"),
])
def test_a_config_file_that_does_not_load_is_one_config_error(text, message, tmp_path):
  path = tmp_path / "broken.py"
  path.write_text(text)
  with pytest.raises(ConfigError, match="^" + message.replace("CONFIG", re.escape(str(path)))):
    config_lib.load(f"{path}:smoke")


def test_config_errors_raised_by_get_config_pass_unchanged():
  with pytest.raises(ConfigError, match=r"^config argument 'nope': unknown; allowed: "):
    config_lib.load(os.path.join(REPO, "configs/mnist_mlp.py:nope"))


@pytest.mark.parametrize("arg, fields", [
    ("", dict(augment=dict(zoom=0.0, rotation=0.0, translation=0.0, flip=""), conv_dropout=0.0,
              batch_norm_after=(), kernel_init="glorot_uniform", optimizer="adam",
              learning_rate=3e-4)),
    ("aug=light", dict(augment=dict(zoom=0.1, rotation=0.1, translation=0.1, flip=""))),
    ("aug=aggressive", dict(augment=dict(zoom=0.5, rotation=0.5, translation=0.3,
                                         flip="horizontal"))),
    ("batchnorm,dropout=0.3", dict(conv_dropout=0.3, batch_norm_after=(0, 1))),
    ("init=zeros", dict(kernel_init="zeros")),
    ("optimizer=sgd,lr=3e-3", dict(optimizer="sgd", learning_rate=3e-3)),
])
def test_cifar10_cnn_arguments_select_the_imperial_variants(arg, fields):
  config = configs.cifar10_cnn.get_config(arg)
  actual = dict(augment={k: config.data.augment[k] for k in fields.get("augment", {})},
                conv_dropout=config.model.conv_dropout,
                batch_norm_after=tuple(config.model.batch_norm_after),
                kernel_init=config.model.kernel_init, optimizer=config.optimizer.name,
                learning_rate=config.optimizer.learning_rate)
  assert {key: actual[key] for key in fields} == fields


# Mock data sets hold this many random examples per split: more than the 5,000 the Géron configs
# hold out for validation.
MOCK_EXAMPLES = 5_300


@pytest.mark.parametrize("spec, params", [
    ("configs/geron_mlp.py:smoke", KERAS_PARAMS["geron_mlp"]),
    ("configs/geron_cnn.py:smoke", KERAS_PARAMS["geron_cnn"]),
    # BatchNorm, conv dropout and augmentation all in the train step at once.
    ("configs/cifar10_cnn.py:smoke,batchnorm,dropout=0.3,aug=aggressive",
     KERAS_PARAMS["cifar10_cnn:batchnorm"] - 2 * (32 + 64)),  # less the moving statistics
])
def test_smoke_config_trains_end_to_end(spec, params, tmp_path):
  config = config_lib.load(os.path.join(REPO, spec))
  with tfds.testing.mock_data(num_examples=MOCK_EXAMPLES):
    results = train.run(config, str(tmp_path))
  assert results["parameters"] == params
  assert results["steps"] > 0 and np.isfinite(results["best_validation"]["metrics"]["loss"])
  assert 0 <= results["test"]["accuracy"] <= 1

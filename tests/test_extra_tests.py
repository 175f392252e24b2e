"""`data.extra_tests`: more of a data set's own splits, tested after 'test' with the same tested
state and reported under their names (results.json, metrics.jsonl, the task's analysis)."""

import json
import os
import re

import numpy as np
import pytest
import tensorflow_datasets as tfds

from dljax import config_lib, data, train
from dljax.errors import ConfigError


def mnist_with_twins(config):
  """mnist, with its test split three times more: the same source ('test_again'), every image
  inverted ('test_inverted', arrays in memory) and cropped ('test_cropped')."""
  sources = data.DATASETS["mnist"](config)
  test = data.read(data.Subset(sources["test"], np.arange(len(sources["test"]))),
                   np.arange(len(sources["test"])))
  return {**sources, "test_again": sources["test"],
          "test_inverted": {**test, "image": 255 - test["image"]},
          "test_cropped": {**test, "image": test["image"][:, 2:-2, 2:-2]}}


def smoke_config(*extra_tests: str):
  config = config_lib.load("configs/mnist_mlp.py:smoke")
  config_lib.override(config, "data.name", "twins")
  config_lib.override(config, "data.extra_tests", extra_tests)
  return config


@pytest.fixture
def twins(monkeypatch):
  monkeypatch.setitem(data.DATASETS, "twins", mnist_with_twins)
  with tfds.testing.mock_data(num_examples=200):
    yield


def read_records(workdir: str) -> list[dict]:
  with open(os.path.join(workdir, "metrics.jsonl")) as f:
    return [json.loads(line) for line in f]


def test_extra_tests_are_scored_like_test_and_written_under_their_names(twins, tmp_path):
  results = train.run(smoke_config("test_again", "test_inverted"), str(tmp_path))
  with open(tmp_path / "results.json") as f:
    assert json.load(f) == results
  # The same examples give the same metrics: the same tested state, scored the same way ...
  assert results["test_again"] == results["test"]
  # ... and other examples other metrics.
  assert results["test_inverted"]["loss"] != pytest.approx(results["test"]["loss"])
  tested = [r for r in read_records(str(tmp_path)) if r["split"] not in ("train", "validation")]
  assert [r["split"] for r in tested] == ["test", "test_again", "test_inverted"]
  assert {r["step"] for r in tested} == {results["tested_step"]}
  # A finished run run again writes its tests again, each once.
  os.remove(tmp_path / "results.json")
  again = train.run(smoke_config("test_again", "test_inverted"), str(tmp_path))
  assert again["test_inverted"] == results["test_inverted"]
  assert [r["split"] for r in read_records(str(tmp_path))].count("test_inverted") == 1


@pytest.mark.parametrize("extra_tests, message", [
    (("test_flipped",), "config.data.extra_tests: 'test_flipped' is not a split of twins; "
                        "allowed: test_again, test_cropped, test_inverted"),
    (("test_cropped",), "config.data.extra_tests: 'test_cropped' has examples {'image': "
                        "((24, 24, 1), 'uint8'), 'label': ((), 'int64')}, unlike the test "
                        "split's {'image': ((28, 28, 1), 'uint8'), 'label': ((), 'int64')}"),
    (("test",), "config.data.extra_tests=('test',): must be a tuple of distinct split names"),
    (("test_again", "test_again"), "config.data.extra_tests=('test_again', 'test_again'): must"),
])
def test_bad_extra_tests_are_one_line_config_errors(twins, extra_tests, message, tmp_path):
  with pytest.raises(ConfigError, match="^" + re.escape(message)):
    train.run(smoke_config(*extra_tests), str(tmp_path))

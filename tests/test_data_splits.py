"""Splits as index sets over the sources, where each split lives, and the pipeline config key."""

import numpy as np
import pytest
import tensorflow_datasets as tfds

import configs.mnist_mlp
from dljax import data, train
from dljax.data import tfds_io
from dljax.errors import ConfigError
from dljax.tasks import supervised

NUM_TRAIN, NUM_TEST = 100, 30
SOURCES = {"train": {"x": np.arange(NUM_TRAIN) * 10}, "test": {"x": np.arange(NUM_TEST) * 10}}


def split(validation="test", validation_size=0.0, seed=0, **overrides):
  config = data.data_config("mnist", validation=validation, validation_size=validation_size,
                            **overrides)
  return data.split_sources(config, seed, SOURCES)


def indices(subset):
  return None if subset is None else subset.index_N.tolist()


def test_validating_on_test_keeps_train_whole():
  splits = split("test")
  assert splits["validation"] is splits["test"]
  assert splits["train"].source is SOURCES["train"] and splits["test"].source is SOURCES["test"]
  assert indices(splits["train"]) == list(range(NUM_TRAIN))
  assert indices(splits["test"]) == list(range(NUM_TEST))
  assert split("none")["validation"] is None


@pytest.mark.parametrize("mode, size, held_out", [
    ("first", 20, range(20)), ("first", 0.2, range(20)), ("last", 20, range(80, 100))])
def test_first_and_last_hold_out_a_contiguous_block(mode, size, held_out):
  splits = split(mode, size)
  assert splits["validation"].source is splits["train"].source is SOURCES["train"]
  assert indices(splits["validation"]) == list(held_out)
  assert indices(splits["train"]) == sorted(set(range(NUM_TRAIN)) - set(held_out))


def test_random_hold_out_is_disjoint_complete_and_a_function_of_the_seed():
  splits = split("random", 0.25, seed=3)
  validation, train_part = indices(splits["validation"]), indices(splits["train"])
  assert len(validation) == 25 and len(train_part) == 75
  assert sorted(validation + train_part) == list(range(NUM_TRAIN))
  assert train_part == sorted(train_part)  # train keeps the stored order
  assert indices(split("random", 0.25, seed=3)["validation"]) == validation
  assert indices(split("random", 0.25, seed=4)["validation"]) != validation


def test_limits_keep_the_first_examples_of_each_split():
  splits = split("last", 20, train_limit=10, eval_limit=5)
  assert indices(splits["train"]) == list(range(10))
  assert indices(splits["validation"]) == list(range(80, 85))
  assert indices(splits["test"]) == list(range(5))


def test_a_hold_out_that_leaves_nothing_is_rejected():
  with pytest.raises(ConfigError, match="holds out 100 of 100"):
    split("first", 100)


def test_on_device_and_streaming_load_the_same_examples(tiny_mnist_dir):
  whole = tfds_io.read_split("mnist", "train", tiny_mnist_dir)
  loaded = {}
  for pipeline in ("device", "streaming"):
    config = data.data_config("mnist", dir=tiny_mnist_dir, validation="random",
                              validation_size=40, pipeline=pipeline)
    loaded[pipeline] = data.load(config, seed=0)
  streamed = loaded["streaming"]
  assert isinstance(streamed.train, data.Subset) and isinstance(streamed.validation, data.Subset)
  for name in ("train", "validation"):
    arrays, subset = getattr(loaded["device"], name), getattr(streamed, name)
    for key in ("image", "label"):
      np.testing.assert_array_equal(arrays[key], whole[key][subset.index_N])
  assert loaded["device"].test["label"].shape == (160,)


def test_channel_stats_are_the_same_in_memory_and_streamed(tiny_mnist_dir):
  config = data.data_config("mnist", dir=tiny_mnist_dir, pipeline="streaming")
  subset = data.load(config, seed=0).train
  arrays = data.read(subset, np.arange(len(subset)))
  in_memory = data.channel_stats(arrays, "image")
  streamed = data.channel_stats(subset, "image", chunk_size=100)
  np.testing.assert_array_equal(in_memory, streamed)
  pixels = arrays["image"].astype(np.float64)
  np.testing.assert_allclose(in_memory, ([pixels.mean()], [pixels.std()]), rtol=1e-12)
  per_pixel = data.channel_stats(subset, "image", chunk_size=100, per_pixel=True)
  assert per_pixel[0].shape == (28, 28, 1)
  np.testing.assert_allclose(per_pixel, (pixels.mean(axis=0), pixels.std(axis=0)), rtol=1e-9,
                             atol=1e-9)


def test_per_pixel_standardisation_is_gerons(tiny_mnist_dir):
  """(x - X_train.mean(axis=0)) / (X_train.std(axis=0) + 1e-7) on [0, 1] pixels, then permuted."""
  config = data.data_config("mnist", dir=tiny_mnist_dir, normalize="per_pixel")
  splits = data.load(config, seed=0)
  train = splits.train
  x = train["image"][:4]
  pixels = train["image"].astype(np.float64) / 255
  expected = (x / 255 - pixels.mean(axis=0)) / (pixels.std(axis=0) + 1e-7)
  np.testing.assert_allclose(supervised.preprocessor(config, splits)(x), expected, rtol=1e-4,
                             atol=1e-3)
  with config.unlocked():
    config.permute_pixels = True
  permuted = supervised.preprocessor(config, splits)(x)
  np.testing.assert_allclose(permuted, supervised.permute_pixels(expected, 0), rtol=1e-4,
                             atol=1e-3)


def test_auto_keeps_mnist_on_the_devices(tiny_mnist_dir):
  config = data.data_config("mnist", dir=tiny_mnist_dir, validation="first", validation_size=40)
  assert config.pipeline == "auto"
  splits = data.load(config, seed=0)
  assert all(isinstance(s, dict) for s in (splits.train, splits.validation, splits.test))
  source = tfds.builder("mnist", data_dir=tiny_mnist_dir).as_data_source(split="train")
  assert data.example_bytes(source) == 28 * 28 * 1 + 8  # uint8 image, int64 label
  assert data.fits_on_device(60_000 * data.example_bytes(source))  # the real MNIST train split
  assert not data.fits_on_device(10 * data.CPU_BUDGET_BYTES)


def test_a_bad_pipeline_is_rejected_in_one_line(tmp_path):
  config = configs.mnist_mlp.get_config("smoke")
  config.data.pipeline = "gpu"
  with pytest.raises(ConfigError) as error:
    train.run(config, str(tmp_path))
  assert str(error.value) == "config.data.pipeline='gpu': allowed: auto, device, streaming"

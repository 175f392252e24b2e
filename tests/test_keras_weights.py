"""Keras applications' weights in dljax: the same networks built in Keras 3 (JAX backend) with
random weights, saved in the legacy `.h5` layout Keras' ImageNet files use, imported by layer name
into dljax's VGG16 and EfficientNet, give Keras' outputs (eval mode); and the one-line errors of
`config.init_from` and `python -m dljax.weights fetch`."""

import os

os.environ.setdefault("KERAS_BACKEND", "jax")  # before Keras is imported

import h5py
import jax
import ml_collections
import numpy as np
import pytest

from dljax import checkpoint, models, pretrained, weights
from dljax.errors import ConfigError, DataError
from dljax.models import vgg

keras = pytest.importorskip("keras")
from keras.src.applications import efficientnet as keras_applications_efficientnet  # noqa: E402
from keras.src.legacy.saving import legacy_h5_format  # noqa: E402

SIZE = 32  # the smallest input Keras' applications accept
# A narrow, shallow EfficientNet (10 blocks, every kind of layer of B0's 16, residual adds and
# drop connect included): Keras builds the full B0's 240 layers in ~20 s on 2 cores, this in ~4.
SMALL_EFFICIENTNET = dict(width_coefficient=0.25, depth_coefficient=0.5)


def randomize(model, rng: np.random.Generator) -> None:
  """Random values for what Keras initialises to constants (biases, BatchNorm and Normalization
  statistics, gamma, beta); kernels keep their random initialisation. Variances stay > 0."""
  for variable in model.weights:
    if len(variable.shape) == 1:
      positive = variable.path.endswith(("variance", "gamma"))
      variable.assign(rng.uniform(0.5, 1.5, variable.shape) if positive
                      else rng.normal(0.0, 0.5, variable.shape))


def save_legacy_h5(model, path) -> None:
  """The layout of Keras' application weight files (root `layer_names`, a group per layer);
  Keras then loads the file back, as it loads its ImageNet files (Normalization's mean and
  variance reach its computation only so)."""
  with h5py.File(path, "w") as f:
    legacy_h5_format.save_weights_to_hdf5_group(f, model)
  model.load_weights(path)


def keras_vgg16(include_top: bool):
  return keras.applications.VGG16(weights=None, include_top=include_top, classes=10,
                                  input_shape=(SIZE, SIZE, 3), classifier_activation=None)


def keras_efficientnet():
  return keras_applications_efficientnet.EfficientNet(
      SMALL_EFFICIENTNET["width_coefficient"], SMALL_EFFICIENTNET["depth_coefficient"], SIZE,
      0.2, weights=None, classes=10, input_shape=(SIZE, SIZE, 3), classifier_activation=None)


def dljax_outputs(model_config: dict, path: str, images_BHWC: np.ndarray) -> np.ndarray:
  """The dljax model's eval-mode logits with every variable imported from the Keras file."""
  model = models.build(ml_collections.ConfigDict(model_config))
  expected = weights.abstract_variables(model_config, SIZE)
  variables = weights.to_variables(weights.read_h5(path),
                                   {p: leaf.shape for p, leaf in expected.items()}, path)
  checkpoint.check_fits(expected, {p: v.shape for p, v in variables.items()}, path)
  tree = {}
  for variable, value in variables.items():
    collection, layer, name = variable.split("/")
    tree.setdefault(collection, {}).setdefault(layer, {})[name] = value
  return np.asarray(jax.jit(lambda v, x: model.apply(v, x, train=False))(tree, images_BHWC))


@pytest.fixture(scope="module")
def images_BHWC():
  return np.random.default_rng(0).uniform(0, 1, (3, SIZE, SIZE, 3)).astype(np.float32)


@pytest.fixture(scope="module")
def vgg16_file(tmp_path_factory, images_BHWC):
  """VGG16 with its top (10 classes) in Keras: the saved file and Keras' logits."""
  model = keras_vgg16(include_top=True)
  randomize(model, np.random.default_rng(1))
  path = str(tmp_path_factory.mktemp("keras") / "vgg16.h5")
  save_legacy_h5(model, path)
  return path, np.asarray(model.predict(images_BHWC, verbose=0))


def test_vgg16_from_keras_gives_keras_outputs(vgg16_file, images_BHWC):
  path, keras_logits = vgg16_file
  logits = dljax_outputs(dict(name="vgg", depth=16, num_classes=10), path, images_BHWC)
  np.testing.assert_allclose(logits, keras_logits, rtol=1e-4, atol=1e-4 * np.abs(
      keras_logits).max())


def test_efficientnet_from_keras_gives_keras_outputs(tmp_path, images_BHWC):
  model = keras_efficientnet()
  randomize(model, np.random.default_rng(2))
  path = str(tmp_path / "efficientnet.h5")
  save_legacy_h5(model, path)
  keras_logits = np.asarray(model.predict(images_BHWC * 255.0, verbose=0))  # Keras takes 0-255
  logits = dljax_outputs(dict(name="efficientnet", num_classes=10, **SMALL_EFFICIENTNET), path,
                         images_BHWC)
  np.testing.assert_allclose(logits, keras_logits, rtol=1e-4, atol=1e-4)


def test_caffe_inputs_are_keras_vgg_preprocessing(images_BHWC):
  expected = keras.applications.vgg16.preprocess_input(images_BHWC * 255.0)
  np.testing.assert_allclose(vgg.caffe_inputs(images_BHWC), expected, rtol=1e-6, atol=1e-4)


NARROW = dict(width=1 / 16, top_width=16)  # VGG16 with 4-32 filters: quick to initialise


@pytest.fixture(scope="module")
def narrow_vgg16_file(tmp_path_factory) -> str:
  """A narrow VGG16 (NARROW, 10 classes) built in Keras with keras.applications' layer names."""
  inputs = keras.Input((SIZE, SIZE, 3))
  x = inputs
  for block, (filters, convs) in enumerate(zip(vgg.FILTERS, vgg.CONVS_PER_BLOCK[16],
                                               strict=True), start=1):
    for conv in range(1, convs + 1):
      x = keras.layers.Conv2D(round(filters * NARROW["width"]), 3, padding="same",
                              activation="relu", name=f"block{block}_conv{conv}")(x)
    x = keras.layers.MaxPooling2D(name=f"block{block}_pool")(x)
  x = keras.layers.Flatten(name="flatten")(x)
  for name in ("fc1", "fc2"):
    x = keras.layers.Dense(NARROW["top_width"], activation="relu", name=name)(x)
  model = keras.Model(inputs, keras.layers.Dense(10, name="predictions")(x))
  path = str(tmp_path_factory.mktemp("narrow") / "narrow_vgg16.h5")
  save_legacy_h5(model, path)
  return path


def load(state_config: dict, path: str, **init_from):
  """`pretrained.load_into` of the Keras file into a fresh state of `state_config`'s model."""
  model = models.build(ml_collections.ConfigDict(state_config))
  # Zeros of the model's shapes: what is loaded replaces them, and the rest is only compared by
  # shape, so the model's initialisation need not be compiled (10-20 s for each VGG).
  shapes = jax.eval_shape(lambda: model.init(jax.random.key(0), np.zeros((1, SIZE, SIZE, 3)),
                                             train=False))
  variables = jax.tree.map(lambda leaf: jax.numpy.zeros(leaf.shape, leaf.dtype), shapes)
  config = ml_collections.ConfigDict({"path": path, "checkpoint": "best", "load": ".*",
                                      "skip": "", **init_from})
  return pretrained.load_into(variables, config)


def test_init_from_loads_the_base_and_keeps_a_new_head(narrow_vgg16_file):
  loaded = load(dict(name="vgg", depth=16, num_classes=7, **NARROW), narrow_vgg16_file,
                skip="predictions")
  keras_layers = weights.read_h5(narrow_vgg16_file)
  np.testing.assert_array_equal(loaded["params"]["block5_conv3"]["kernel"],
                                keras_layers["block5_conv3"][0])
  assert loaded["params"]["predictions"]["kernel"].shape == (16, 7)


@pytest.mark.parametrize("model_config, message", [
    (dict(name="vgg", depth=16, num_classes=7, **NARROW),
     r"its predictions layer has 10 classes, config.model.num_classes=7; leave it out with "
     r"--config.init_from.skip=predictions$"),
    (dict(name="vgg", depth=19, num_classes=10, **NARROW),
     r"has no params/block3_conv4/bias \(it holds"),
    (dict(name="vgg", depth=16, num_classes=10, width=1 / 8, top_width=16),
     r"has params/block1_conv1/bias of shape \(4,\), this config's is \(8,\)$"),
    (dict(name="efficientnet", num_classes=10, **SMALL_EFFICIENTNET),
     r"holds the weights of another model \(layers block1_conv1, "),
])
def test_init_from_a_keras_file_that_does_not_fit_is_one_line(narrow_vgg16_file, model_config,
                                                               message):
  with pytest.raises(ConfigError, match=message) as error:
    load(model_config, narrow_vgg16_file)
  assert "\n" not in str(error.value)


def test_parameter_counts_are_keras_applications_summaries():
  """Keras' published totals (its Normalization layer's count is the one extra weight)."""
  count = lambda config: sum(leaf.size for leaf in weights.abstract_variables(config).values())
  assert count(dict(name="vgg", depth=16)) == 138_357_544
  assert count(dict(name="vgg", depth=19)) == 143_667_240
  assert count(dict(name="efficientnet")) + 1 == 5_330_571


@pytest.fixture(scope="module")
def vgg16_notop_file(tmp_path_factory) -> str:
  """A file standing for Keras' vgg16_notop (VGG16's base, in the legacy layout): the real file
  cannot be downloaded here. Built once (a full-width VGG16 base in Keras, 59 MB)."""
  model = keras.applications.VGG16(weights=None, include_top=False, input_shape=(SIZE, SIZE, 3))
  path = str(tmp_path_factory.mktemp("notop") / "vgg16_notop.h5")
  save_legacy_h5(model, path)
  return path


@pytest.fixture
def official_vgg16_notop(monkeypatch, vgg16_notop_file):
  """That file, and the table entry made to expect its md5."""
  entry = weights.KERAS_FILES["vgg16_notop"]
  monkeypatch.setitem(weights.KERAS_FILES, "vgg16_notop",
                      weights.KerasFile(entry.url, weights.md5(vgg16_notop_file), entry.model))
  return vgg16_notop_file


def test_fetch_from_a_local_copy_checks_and_caches_it(official_vgg16_notop, tmp_path, capsys):
  cache = str(tmp_path / "cache")
  assert weights.main(["fetch", "vgg16_notop", "--from", official_vgg16_notop,
                       "--dir", cache]) == 0
  cached = capsys.readouterr().out.strip()
  assert cached == os.path.join(cache, "vgg16_weights_tf_dim_ordering_tf_kernels_notop.h5")
  assert weights.md5(cached) == weights.md5(official_vgg16_notop)
  assert weights.fetch("vgg16_notop", directory=cache) == cached  # from the cache, no download


def test_fetch_refuses_a_wrong_hash_and_another_architecture(official_vgg16_notop, vgg16_file,
                                                             tmp_path, capsys, monkeypatch):
  cache = str(tmp_path / "cache")
  other, _ = vgg16_file  # VGG16 with a 10-class top: not the no-top file
  assert weights.main(["fetch", "vgg16_notop", "--from", other, "--dir", cache]) == 2
  error = capsys.readouterr().err
  assert error.count("\n") == 1 and "md5" in error and "Keras' vgg16_notop file has" in error
  entry = weights.KERAS_FILES["vgg16_notop"]  # the right hash, another network's file
  monkeypatch.setitem(weights.KERAS_FILES, "vgg16_notop",
                      weights.KerasFile(entry.url, weights.md5(other), entry.model))
  with pytest.raises(DataError, match=r"holds the weights of another model|not Keras' "
                                      r"vgg16_notop weights"):
    weights.fetch("vgg16_notop", other, cache)
  assert not os.listdir(cache)  # nothing kept

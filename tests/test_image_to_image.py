"""Autoencoders and image-to-image tasks: SSIM, MS-SSIM and PSNR against scikit-image, the
majority-vote clustering accuracy on a hand-made example, the noise drawn from the step's RNG,
one-line errors, and smoke runs of the autoencoder, the colourising UNet and pix2pix."""

import os

import jax
import jax.numpy as jnp
import numpy as np
import pytest
import tensorflow_datasets as tfds
from skimage.metrics import peak_signal_noise_ratio, structural_similarity
from skimage.transform import downscale_local_mean

import configs.autoencoder_mnist
import configs.pix2pix_cifar10
import configs.unet_cifar10
from dljax import config_lib, models, train
from dljax.errors import ConfigError
from dljax.tasks import autoencoder, image_quality, image_to_image


def _pair(size: int, channels: int = 3) -> tuple[np.ndarray, np.ndarray]:
  """Two smooth-ish images and a noisy copy, [2, size, size, channels] each, float64 in [0, 1]."""
  rng = np.random.default_rng(0)
  clean = downscale_local_mean(rng.random((2, 2 * size, 2 * size, channels)), (1, 2, 2, 1))
  return clean, np.clip(clean + 0.1 * rng.normal(size=clean.shape), 0, 1)


def _skimage_ssim(a_HWC, b_HWC, **kwargs):
  return structural_similarity(a_HWC, b_HWC, gaussian_weights=True, sigma=1.5,
                               use_sample_covariance=False, data_range=1.0, channel_axis=-1,
                               **kwargs)


def test_ssim_and_psnr_match_scikit_image():
  clean, noisy = _pair(32)
  ssim_B, _ = image_quality.ssim_terms(clean.astype(np.float32), noisy.astype(np.float32))
  expected_ssim = [_skimage_ssim(a, b) for a, b in zip(clean, noisy, strict=True)]
  np.testing.assert_allclose(image_quality.ssim(clean, noisy), expected_ssim, rtol=1e-5)
  np.testing.assert_allclose(ssim_B, expected_ssim, rtol=1e-5)
  np.testing.assert_allclose(image_quality.psnr(clean, noisy),
                             [peak_signal_noise_ratio(a, b, data_range=1.0)
                              for a, b in zip(clean, noisy, strict=True)], rtol=1e-5)


def test_ms_ssim_matches_a_reference_built_from_scikit_image():
  """Wang et al.'s MS-SSIM over three scales: the contrast-structure term of the first two is
  scikit-image's SSIM with a luminance constant so large that luminance drops out (K1 = 1e4),
  the last scale's is its SSIM; 2x2 means between scales."""
  clean, noisy = _pair(64, channels=1)
  weights = image_quality.MS_SSIM_WEIGHTS[:3]
  expected = []
  for a, b in zip(clean, noisy, strict=True):
    value = 1.0
    for scale, weight in enumerate(weights):
      last = scale == len(weights) - 1
      value *= _skimage_ssim(a, b, **({} if last else {"K1": 1e4})) ** weight
      a, b = downscale_local_mean(a, (2, 2, 1)), downscale_local_mean(b, (2, 2, 1))
    expected.append(value)
  np.testing.assert_allclose(image_quality.ms_ssim(clean, noisy, weights), expected, rtol=1e-4)
  np.testing.assert_allclose(image_quality.ms_ssim(clean[:, :32, :32], clean[:, :32, :32]), 1.0,
                             rtol=1e-6)  # five scales of a 32-pixel image: small windows


def test_every_loss_is_differentiable_and_smallest_for_the_target():
  clean, noisy = (jnp.asarray(x, jnp.float32) for x in _pair(32))

  @jax.jit  # one compilation for all six (eager MS-SSIM gradients are slow)
  def values_and_grads(noisy):
    return {name: (loss(noisy, clean), loss(0.5 * (noisy + clean), clean),
                   jax.grad(lambda x, loss=loss: loss(x, clean).sum())(noisy))
            for name, loss in image_quality.LOSSES.items()}

  for name, (far, near, grads) in values_and_grads(noisy).items():
    assert np.all(np.isfinite(grads)) and np.any(grads != 0), name
    assert np.all(far > near), name


def test_colourfulness_is_zero_for_grey_and_grows_with_saturation():
  clean, _ = _pair(16)
  grey = jnp.broadcast_to(image_quality.grey(jnp.asarray(clean)), clean.shape)
  np.testing.assert_allclose(image_quality.colourfulness(grey), 0.0, atol=1e-3)
  mean = clean.mean(axis=-1, keepdims=True)
  assert np.all(image_quality.colourfulness(mean + 2 * (clean - mean))
                > image_quality.colourfulness(clean))


def test_majority_vote_clustering_accuracy_by_hand():
  # Cluster 0 holds digits 1, 1, 2 (labelled 1: 2 right); cluster 1 holds 3, 3 (2 right);
  # cluster 2 holds 4, 5, 5, 6 (labelled 5: 2 right): 6 of 9.
  clusters = np.array([0, 0, 0, 1, 1, 2, 2, 2, 2])
  labels = np.array([1, 1, 2, 3, 3, 4, 5, 5, 6])
  assert autoencoder.majority_vote_accuracy(clusters, labels) == pytest.approx(6 / 9)


def test_the_noise_comes_from_the_steps_rng():
  knobs = image_to_image.task_config(noise_sigma=0.2)
  make = image_to_image.inputs_maker(knobs)
  images = jnp.full((4, 32, 32, 3), 0.5)
  noisy = lambda seed: make(jax.random.key(seed), images, {})[0]
  np.testing.assert_array_equal(noisy(1), noisy(1))
  assert not np.allclose(noisy(1), noisy(2))
  assert float(jnp.std(noisy(1) - images)) == pytest.approx(0.2, rel=0.05)
  inputs, batch = make(jax.random.key(1), images, {})
  np.testing.assert_array_equal(batch["target"], images)
  np.testing.assert_array_equal(batch["input"], inputs)


def _validated(config_module, arg, key, value):
  config = config_module.get_config(arg)
  config_lib.override(config, key, value)
  config_lib.validate(config)


@pytest.mark.parametrize("config_module, key, value, message", [
    (configs.autoencoder_mnist, "model.representation", 784,
     "config.model.representation=784: must be < the 784 values of an image of shape (28, 28, 1)"),
    (configs.autoencoder_mnist, "autoencoder.loss", "l2",
     "config.autoencoder.loss='l2': unknown image loss; allowed:"),
    (configs.unet_cifar10, "image_to_image.loss", "ssim2",
     "config.image_to_image.loss='ssim2': unknown image loss; allowed: mae, ms_ssim, mse"),
    (configs.unet_cifar10, "image_to_image.inputs", "blurred",
     "config.image_to_image.inputs='blurred': allowed: noisy, grey"),
    (configs.pix2pix_cifar10, "pix2pix.compare_with", "/nonexistent",
     "config.pix2pix.compare_with='/nonexistent': not a directory"),
])
def test_bad_knobs_are_one_line_config_errors(config_module, key, value, message):
  with pytest.raises(ConfigError) as error:
    _validated(config_module, "smoke", key, value)
  assert str(error.value).startswith(message) and "\n" not in str(error.value)


@pytest.mark.parametrize("arg, expected", [
    ("dense", 213_564),  # seed report 000's best non-linear autoencoder, its Keras summary
    ("linear", 784 * 2 + 2 + 2 * 784 + 784),
])
def test_autoencoder_parameter_counts(arg, expected):
  model = models.build(configs.autoencoder_mnist.get_config(arg).model)
  params = jax.eval_shape(model.init, jax.random.key(0), jnp.zeros((1, 28, 28, 1)))["params"]
  assert sum(x.size for x in jax.tree.leaves(params)) == expected


def test_an_image_the_unet_cannot_halve_is_a_one_line_error():
  model = models.build(configs.unet_cifar10.get_config("smoke").model)
  with pytest.raises(ConfigError) as error:
    model.init(jax.random.key(0), jnp.zeros((1, 30, 30, 3)))
  assert str(error.value).startswith("config.model.features=(4, 8): a UNet of 2 levels halves "
                                     "images 2 times, so their sides must divide by 4; these are "
                                     "30x30")


def test_an_autoencoder_trains_and_rates_its_representation(tmp_path):
  with tfds.testing.mock_data(num_examples=300):
    results = train.run(configs.autoencoder_mnist.get_config("smoke,conv32"), str(tmp_path))
  test = results["test"]
  assert {"mse", "mae", "clustering_accuracy", "probe_train_accuracy", "probe_test_accuracy",
          "pca_mse", "pca_clustering_accuracy", "pca_probe_test_accuracy"} <= set(test)
  assert 0 <= test["clustering_accuracy"] <= 1 and test["pca_mse"] > 0
  assert os.path.isfile(tmp_path / "representation.png")
  assert os.path.isfile(tmp_path / "samples" / "reconstructions" / "test.png")


def test_a_colourising_unet_and_pix2pix_train_and_are_compared(tmp_path):
  unet_dir, cgan_dir = str(tmp_path / "unet"), str(tmp_path / "cgan")
  with tfds.testing.mock_data(num_examples=300):
    unet = train.run(configs.unet_cifar10.get_config("smoke,colour"), unet_dir)
    config = configs.pix2pix_cifar10.get_config("smoke")
    config.pix2pix.compare_with = unet_dir
    cgan = train.run(config, cgan_dir)
  quality = {"mse", "mae", "psnr", "ssim", "input_mse", "input_mae", "input_psnr", "input_ssim",
             "colourfulness", "target_colourfulness"}
  assert set(unet["test"]) == quality | {"loss"}
  assert set(cgan["test"]) == quality | {"d_loss", "compare_mae", "compare_colourfulness"}
  assert cgan["test"]["compare_mae"] == pytest.approx(unet["test"]["mae"], rel=1e-4)
  assert os.path.isfile(os.path.join(cgan_dir, "comparison.png"))
  assert os.path.isfile(os.path.join(cgan_dir, "samples", "images", "test.png"))

"""Tests for dljax.data.augment: identity when off, determinism, Keras geometry conventions."""

import functools

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from dljax.data import augment as aug

AFFINE_AND_FLIP = dict(zoom=0.1, rotation=0.05, translation=0.1, flip="horizontal_and_vertical")
ALL_ON = dict(AFFINE_AND_FLIP, pad_crop=2)
SHAPE = (4, 8, 6, 3)  # one shape for most tests, so they share compiled programs

# Eagerly, map_coordinates is hundreds of tiny ops, each compiled on first use.
_resample = jax.jit(aug.affine_resample)


def _images(shape=SHAPE, dtype=jnp.float32, seed=0):
  return jnp.asarray(np.random.default_rng(seed).random(shape), dtype)


def test_all_off_returns_input_unchanged():
  images = _images()
  out = aug.augment(jax.random.key(0), images)
  assert out is images


@pytest.mark.parametrize("dtype, channels", [(jnp.float32, 3), (jnp.bfloat16, 1)])
def test_shape_and_dtype_kept(dtype, channels):
  images = _images((*SHAPE[:3], channels), dtype)
  out = aug.augment(jax.random.key(0), images, **ALL_ON)
  assert out.shape == images.shape
  assert out.dtype == images.dtype


def test_same_key_same_output_and_other_key_differs():
  images = _images()
  first = aug.augment(jax.random.key(1), images, **ALL_ON)
  np.testing.assert_array_equal(first, aug.augment(jax.random.key(1), images, **ALL_ON))
  assert not np.allclose(first, aug.augment(jax.random.key(2), images, **ALL_ON))


def test_examples_get_different_draws():
  same_image_B = jnp.broadcast_to(_images()[:1], SHAPE)
  out = aug.augment(jax.random.key(0), same_image_B, **AFFINE_AND_FLIP)
  assert not np.allclose(out[0], out[1])


@pytest.mark.parametrize("axis", [0, 1])
def test_flip_twice_is_identity(axis):
  image = _images()[0]
  flipped = aug.reverse(image, axis)
  np.testing.assert_array_equal(flipped, np.flip(image, axis))
  np.testing.assert_array_equal(aug.reverse(flipped, axis), image)


def test_horizontal_and_vertical_flips_each_axis_on_its_own_coin():
  # Keras 3 uses one coin for both axes; we follow tf.keras 2 / torchvision (see module doc).
  image = np.asarray(_images((1, 4, 4, 1))[0])
  out = aug.augment(jax.random.key(0), jnp.broadcast_to(image, (64, 4, 4, 1)),
                    flip="horizontal_and_vertical")
  outcomes = [image, image[:, ::-1], image[::-1], image[::-1, ::-1]]
  seen = {next(i for i, o in enumerate(outcomes) if np.array_equal(x, o)) for x in np.asarray(out)}
  assert seen == {0, 1, 2, 3}


def test_rotating_zooming_shifting_flipping_a_constant_image_keeps_it_constant():
  # Reflect fill has no border colour to leak in, unlike zero fill; flips keep it constant too.
  images = jnp.full(SHAPE, 0.7, jnp.float32)
  out = aug.augment(jax.random.key(0), images, **AFFINE_AND_FLIP)
  np.testing.assert_allclose(out, images, atol=1e-6)


def test_integer_translation_moves_content_right_and_down_with_reflect_fill():
  image = _images((1, 8, 8, 1))[0]
  out = _resample(image, aug.translation_matrix(2.0, 1.0))
  np.testing.assert_allclose(out[1:, 2:], image[:-1, :-2], atol=1e-6)
  # Keras 'reflect' is d c b a | a b c d: columns -1, -2 repeat columns 0, 1.
  np.testing.assert_allclose(out[1:, :2], image[:-1, 1::-1], atol=1e-6)


def test_positive_quarter_turn_is_counter_clockwise_like_np_rot90():
  image = _images((1, 8, 8, 3))[0]
  out = _resample(image, aug.rotation_matrix(np.pi / 2, 8, 8))
  np.testing.assert_allclose(out, np.rot90(image), atol=1e-5)


def test_zoom_matrix_matches_keras_and_positive_factor_zooms_out():
  # Keras RandomZoom: output (x, y) samples input (s*x + (W-1)/2*(1-s), s*y + (H-1)/2*(1-s)).
  np.testing.assert_allclose(
      aug.zoom_matrix(1.1, 8, 6), [[1.1, 0, -0.25], [0, 1.1, -0.35], [0, 0, 1]], atol=1e-6)
  # Scale 2 (factor +1) on a 9x9 image: the centre stays, its neighbour samples 2 pixels out.
  image = _images((1, 9, 9, 1))[0]
  out = _resample(image, aug.zoom_matrix(2.0, 9, 9))
  np.testing.assert_allclose(out[4, 4:7], image[4, 4:9:2], atol=1e-6)


def test_pad_crop_inside_jit_gives_only_image_values_or_zero_padding():
  images = _images((16, 8, 8, 1)) + 1.0  # in [1, 2): never zero
  out = np.asarray(jax.jit(functools.partial(aug.augment, pad_crop=3))(jax.random.key(0), images))
  assert np.isin(out, np.append(np.asarray(images).ravel(), 0.0)).all()
  assert (out == 0).any()


def test_pad_and_crop_without_padding_is_identity():
  image = _images()[0]
  np.testing.assert_array_equal(aug.pad_and_crop(image, 0, 0, 0), image)


def test_pad_and_crop_window_position():
  image = _images()[0]
  out = aug.pad_and_crop(image, 2, 0, 3)  # 2 rows of zeros on top, shifted 1 column left
  np.testing.assert_array_equal(out[:2], 0)
  np.testing.assert_array_equal(out[2:, :-1], image[:-2, 1:])
  np.testing.assert_array_equal(out[2:, -1], 0)


@pytest.mark.parametrize("kwargs, name", [
    (dict(flip="diagonal"), "flip"),
    (dict(zoom=-0.1), "zoom"),
    (dict(rotation=1.5), "rotation"),
    (dict(translation=-0.2), "translation"),
    (dict(pad_crop=-1), "pad_crop"),
])
def test_bad_arguments_raise_value_error_naming_them(kwargs, name):
  with pytest.raises(ValueError, match=name):
    aug.augment(jax.random.key(0), _images(), **kwargs)

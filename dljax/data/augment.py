"""On-device, per-example, seeded image augmentation with Keras 3 preprocessing-layer semantics.

Pure JAX (jit- and vmap-friendly, no host work), so augmentation runs inside the jitted train step
and a course report's Keras settings carry over one-to-one:

  keras.Sequential([RandomZoom(z), RandomRotation(r), RandomTranslation(t, t), RandomFlip(f)])
  == augment(key, images, zoom=z, rotation=r, translation=t, flip=f)

Conventions, checked against the Keras 3.15 source (layers/preprocessing/image_preprocessing and
backend/jax/image.py):
  * Every transform is a matrix mapping an *output* pixel (x=column, y=row, 1) to the *input*
    point it samples, in pixel units with the centre at ((W-1)/2, (H-1)/2), as in Keras.
  * RandomZoom(f): scale s ~ U[1-f, 1+f] about the centre, same s for both axes (width_factor
    None). s > 1 samples a larger area, so the content shrinks (positive = zoom out).
  * RandomRotation(f): angle ~ U[-2πf, 2πf]; positive = counter-clockwise on screen.
  * RandomTranslation(f, f): shifts ~ U[-fH, fH] and U[-fW, fW], drawn independently; positive
    moves content down / right.
  * fill_mode='reflect', interpolation='bilinear': Keras' JAX backend hands both to
    `jax.scipy.ndimage.map_coordinates(order=1, mode='reflect')`, which is scipy's 'reflect'
    (d c b a | a b c d | d c b a), the same as Keras' documented 'reflect'; we call it the same way.

Deliberate differences from stacking the Keras layers:
  * Zoom, rotation and translation are composed into one matrix and the image is resampled once
    (one blur instead of three, and one gather instead of three).
  * 'horizontal_and_vertical' flips each axis on its own coin (prob 0.5 each), as tf.keras 2 and
    torchvision do. Keras 3.15 uses one coin for both axes (no flip or a 180° turn, never a single
    flip), which looks unintended.
  * Pad-and-crop (CIFAR style, not a Keras layer) pads with zeros, as torchvision's
    RandomCrop(padding=p) and big_vision do, and runs first.
"""

import functools

import jax
import jax.numpy as jnp

from dljax.errors import ConfigError

FLIP_MODES = ("", "horizontal", "vertical", "horizontal_and_vertical")


def augment(
    key: jax.Array,
    images_BHWC: jax.Array,
    *,
    zoom: float = 0.0,
    rotation: float = 0.0,
    translation: float = 0.0,
    flip: str = "",
    pad_crop: int = 0,
) -> jax.Array:
  """Randomly augments each image of a batch on its own key; strength 0 / '' turns a step off.

  Order: pad-crop, then one resample for zoom -> rotation -> translation (Keras Sequential order),
  then flip. The strengths are Python values (static under jit), so disabled steps cost nothing
  and with everything off the input comes back unchanged.

  Args:
    key: PRNG key; split into one key per image.
    images_BHWC: float images, any number of channels.
    zoom: Keras RandomZoom(zoom) factor in [0, 1].
    rotation: Keras RandomRotation(rotation) factor in [0, 1], a fraction of a full turn.
    translation: Keras RandomTranslation(translation, translation) factor in [0, 1].
    flip: Keras RandomFlip mode, one of FLIP_MODES ('' = off).
    pad_crop: zero-pad by this many pixels, then crop a random HxW window (0 = off).

  Returns:
    The augmented images, same shape and dtype.

  Raises:
    ConfigError (a ValueError): an argument is out of range; the message names it.
  """
  _check_args(images_BHWC, zoom, rotation, translation, flip, pad_crop)
  if not (zoom or rotation or translation or flip or pad_crop):
    return images_BHWC
  return _augment_batch(
      key, images_BHWC, zoom=zoom, rotation=rotation, translation=translation, flip=flip,
      pad_crop=pad_crop)


def _check_args(images_BHWC, zoom, rotation, translation, flip, pad_crop):
  if images_BHWC.ndim != 4:
    raise ConfigError(f"images_BHWC must have rank 4 (B, H, W, C), got shape {images_BHWC.shape}")
  for name, factor in (("zoom", zoom), ("rotation", rotation), ("translation", translation)):
    if not 0.0 <= factor <= 1.0:  # Keras rejects factors outside [-1, 1]; the sign is ours.
      raise ConfigError(f"augment {name} must be a factor in [0, 1] (0 = off), got {factor!r}")
  if flip not in FLIP_MODES:
    raise ConfigError(f"augment flip must be one of {FLIP_MODES}, got {flip!r}")
  if not (isinstance(pad_crop, int) and pad_crop >= 0):
    raise ConfigError(f"augment pad_crop must be an int >= 0 (0 = off), got {pad_crop!r}")


# Jitted here too so that calls outside a jitted step are one dispatch, not hundreds of tiny ops.
@functools.partial(
    jax.jit, static_argnames=("zoom", "rotation", "translation", "flip", "pad_crop"))
def _augment_batch(key, images_BHWC, *, zoom, rotation, translation, flip, pad_crop):
  augment_one = functools.partial(
      _augment_one, zoom=zoom, rotation=rotation, translation=translation, flip=flip,
      pad_crop=pad_crop)
  return jax.vmap(augment_one)(jax.random.split(key, images_BHWC.shape[0]), images_BHWC)


def _augment_one(key, image_HWC, *, zoom, rotation, translation, flip, pad_crop):
  # All of an example's draws come from one threefry call: each split or draw is a threefry
  # kernel of its own to compile (all steps on: 0.94 s -> 0.66 s compile on a 2-core CPU).
  top_u, left_u, zoom_u, angle_u, dx_u, dy_u, flip_x_u, flip_y_u = jax.random.uniform(key, (8,))
  if pad_crop:
    positions = 2 * pad_crop + 1  # crop offsets 0 .. 2 * pad_crop, uniform
    top, left = (jnp.floor(u * positions).astype(jnp.int32) for u in (top_u, left_u))
    image_HWC = pad_and_crop(image_HWC, pad_crop, top, left)
  if zoom or rotation or translation:
    height, width = image_HWC.shape[:2]
    # Keras Sequential order zoom -> rotation -> translation; each layer maps its output pixel to
    # the point it samples in its input, so the stack samples the original at Mz @ Mr @ Mt @ p.
    # A step that is off contributes an exact identity matrix.
    matrix = (
        zoom_matrix(1.0 + _symmetric(zoom_u, zoom), height, width)
        @ rotation_matrix(_symmetric(angle_u, rotation * 2.0 * jnp.pi), height, width)
        @ translation_matrix(_symmetric(dx_u, translation) * width,
                             _symmetric(dy_u, translation) * height))
    image_HWC = affine_resample(image_HWC, matrix)
  if flip in ("horizontal", "horizontal_and_vertical"):
    image_HWC = reverse(image_HWC, axis=1, where=flip_x_u < 0.5)
  if flip in ("vertical", "horizontal_and_vertical"):
    image_HWC = reverse(image_HWC, axis=0, where=flip_y_u < 0.5)
  return image_HWC


def _symmetric(u, bound):
  """Maps u ~ U[0, 1) to U[-bound, bound)."""
  return bound * (2.0 * u - 1.0)


def zoom_matrix(scale: jax.Array | float, height: int, width: int) -> jax.Array:
  """Output->input matrix scaling about the image centre (Keras RandomZoom with 1 + factor).

  scale > 1 samples a larger area, so the content gets smaller (zoom out); the centre stays put.
  """
  cx, cy = (width - 1) / 2, (height - 1) / 2
  return jnp.array([[scale, 0.0, cx * (1 - scale)], [0.0, scale, cy * (1 - scale)], [0, 0, 1]])


def rotation_matrix(angle: jax.Array | float, height: int, width: int) -> jax.Array:
  """Output->input matrix rotating about the image centre by `angle` radians (Keras formula).

  With y pointing down, sampling at R(angle) @ pixel turns the content counter-clockwise on
  screen for angle > 0, as Keras documents.
  """
  cx, cy = (width - 1) / 2, (height - 1) / 2
  cos, sin = jnp.cos(angle), jnp.sin(angle)
  return jnp.array([
      [cos, -sin, cx - cx * cos + cy * sin],
      [sin, cos, cy - cx * sin - cy * cos],
      [0.0, 0.0, 1.0],
  ])


def translation_matrix(dx: jax.Array | float, dy: jax.Array | float) -> jax.Array:
  """Output->input matrix moving content right by dx and down by dy pixels (Keras sign)."""
  return jnp.array([[1.0, 0.0, -dx], [0.0, 1.0, -dy], [0.0, 0.0, 1.0]])


def affine_resample(image_HWC: jax.Array, matrix: jax.Array) -> jax.Array:
  """Output pixel (x, y) = bilinear sample of the input at matrix @ (x, y, 1), reflect fill.

  Same arguments as Keras' JAX backend, but 2-D per channel: the sample points and weights are
  shared by the channels, where Keras interpolates over (row, col, channel) in 3-D.
  """
  height, width = image_HWC.shape[:2]
  y_HW, x_HW = jnp.meshgrid(jnp.arange(height), jnp.arange(width), indexing="ij")
  points_3N = jnp.stack([x_HW.ravel(), y_HW.ravel(), jnp.ones(height * width)])
  source_x, source_y = (matrix[:2] @ points_3N).reshape(2, height, width)

  def sample(channel_HW):
    return jax.scipy.ndimage.map_coordinates(
        channel_HW, [source_y, source_x], order=1, mode="reflect")

  return jax.vmap(sample, in_axes=-1, out_axes=-1)(image_HWC)


def reverse(image_HWC: jax.Array, axis: int, where: jax.Array | bool = True) -> jax.Array:
  """Flips `axis` (0: up-down, 1: left-right) where `where` holds, else returns the image.

  A gather with flipped-or-kept indices, not `jnp.where(where, flipped, image)`: after a
  resample, XLA fused that into computing the resample twice (128 CIFAR images, all steps on,
  CPU: 9.6 ms instead of 1.8 ms).
  """
  index = jnp.arange(image_HWC.shape[axis])
  return jnp.take(image_HWC, jnp.where(where, index[::-1], index), axis=axis)


def pad_and_crop(image_HWC: jax.Array, pad: int, top: jax.Array | int,
                 left: jax.Array | int) -> jax.Array:
  """Zero-pads by `pad` pixels on each side and crops the HxW window at (top, left) of that."""
  padded_HWC = jnp.pad(image_HWC, ((pad, pad), (pad, pad), (0, 0)))
  return jax.lax.dynamic_slice(padded_HWC, (top, left, 0), image_HWC.shape)

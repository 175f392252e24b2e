"""Procedural analogue-clock images for the "tell the time" study (hour 0-11, minute 0-59).

Replaces a course data set we cannot download (18,000 grayscale 150x150 clock photos): the same
task, rendered from a seed. A model has to really read the hands, so the clocks vary in everything
a human reader ignores: dial shape (round, rounded square, ellipse), bezel, size and position,
rotation of the whole clock (up to ±25°; labels follow the dial's own 12), numerals (stroke-font
digits, dots or none), tick marks (none, 12 or 60), hand shapes, widths and lengths, an optional
long thin second hand at a random angle, polarity (dark on light or light on dark), backgrounds
(flat, gradient, smooth noise texture), a lighting gradient, blur and pixel noise. What a human
reads stays true in every image: the hour hand is always clearly shorter than the minute hand
(at most 72% of its length), and the 12 is marked by a numeral or a double tick / double dot.

Conventions:
  * Label hour 0 is twelve o'clock. Hand kinematics are those of a real clock: hour hand at
    30*(h + m/60) degrees, minute hand at 6*m degrees, clockwise from the dial's 12.
  * Image frame: x = column, y = row (down); pixel (row, col) covers [col, col+1) x [row, row+1),
    so its centre is at (col + 0.5, row + 0.5). Image-frame angles are clockwise from straight up,
    and equal the dial angle plus the clock's rotation.
  * Geometry is drawn in "dial units", where 1 is the radius of the ring the ticks end on; a
    style is independent of the image size, so one seed gives the same clocks at 150, 64 or 32 px.
  * Every categorical choice is kept in the style (its family and value: STYLE_FAMILIES), so a
    data set can hold whole families out of training and prove it did.
  * Difficulty d in [0, 1]: every categorical style choice is random with probability d (else the
    canonical one), every continuous one is interpolated from its canonical value toward a
    random value by d, and rotation, jitter, blur, noise and lighting scale with d. d = 0 gives one
    clean canonical clock (round, black on white, digits, 60 ticks, straight hands) for every seed.

Determinism: the style of image i and its time come from numpy generators seeded with
(seed, stream, i // 1024), its pixel noise from a JAX key seeded by its style, and it is drawn by
one compiled program per size (fixed batches of 16, the last one padded), so the same seed gives
bit-identical images however the indices are split into calls. Styles do not depend on the
times, so tests can render chosen times in the styles of a seed.

Rendering is a jitted, vmapped JAX program: every element is an anti-aliased signed-distance
shape, with ticks and numerals found through the nearest of their repeated positions so their
cost does not grow with their count, and numerals sampled from a precomputed distance atlas.
18,000 images take about 33 CPU-seconds at 150x150 and 8 at 64x64, compile included, spread
over the cores (20-50 s wall on two busy shared cores at 150x150).
"""

import concurrent.futures
import functools
import itertools
import math
import os
from typing import NamedTuple

import jax
import jax.numpy as jnp
import numpy as np

from dljax.errors import ConfigError

DEFAULT_COUNT = 18_000
DEFAULT_SIZE = 150
MINUTES_PER_HALF_DAY = 720
MAX_ROTATION_DEG = 25.0

# Style and time draws are made per block of this many images, so chunking never changes them.
_BLOCK = 1024
_BATCH = 16  # images per compiled rendering call
_STYLE_STREAM = 0
_TIME_STREAM = 1

# Categorical style choices.
_ROUND, _SQUARE, _ELLIPSE = 0, 1, 2
_NO_NUMERALS, _DOTS, _DIGITS = 0, 1, 2
_STRAIGHT, _TAPERED, _LANCE = 0, 1, 2
_FLAT, _GRADIENT, _TEXTURE = 0, 1, 2

# The categorical style families a data set can hold out of training (dljax.data.clocks):
# family -> (the ClockStyle field that holds it, {value's name: that field's value}).
STYLE_FAMILIES: dict[str, tuple[str, dict[str, int]]] = {
    "dial": ("dial_shape", {"round": _ROUND, "square": _SQUARE, "ellipse": _ELLIPSE}),
    "numerals": ("numeral_kind", {"none": _NO_NUMERALS, "dots": _DOTS, "digits": _DIGITS}),
    "ticks": ("tick_count", {"none": 0, "12": 12, "60": 60}),
    "hands": ("hand_shape", {"straight": _STRAIGHT, "tapered": _TAPERED, "lance": _LANCE}),
    "background": ("background_kind",
                   {"flat": _FLAT, "gradient": _GRADIENT, "texture": _TEXTURE}),
    "polarity": ("light_on_dark", {"dark_on_light": 0, "light_on_dark": 1}),
    "second_hand": ("has_second_hand", {"no": 0, "yes": 1}),
}

_MARGIN = 0.02  # fraction of the image kept clear around the clock
_MAX_BLUR_PX_AT_150 = 1.0  # blur sigma in pixels of a 150 px image; scales with the size
_MAX_NOISE_SIGMA = 0.05
_ANTIALIAS_PX = 0.7  # half-width of the edge ramp
# Thin strokes are widened to these half-widths so they survive small image sizes.
_MIN_HAND_HALF_WIDTH_PX = 0.6
_MIN_FINE_HALF_WIDTH_PX = 0.35


class ClockStyle(NamedTuple):
  """Everything about N clocks except their times; every field has shape [N].

  Lengths are in dial units (1 = the tick ring's radius) unless said otherwise; levels are gray
  values in [0, 1]. A NamedTuple, so it is a JAX pytree and goes through jit and vmap as is.
  """

  centre_x: np.ndarray  # clock centre minus image centre, fraction of the image size
  centre_y: np.ndarray
  radius: np.ndarray  # the dial unit, fraction of the image size
  rotation_deg: np.ndarray  # clockwise rotation of the whole clock
  dial_shape: np.ndarray  # _ROUND, _SQUARE (rounded boxes) or _ELLIPSE
  face_half_width: np.ndarray
  face_half_height: np.ndarray
  corner_radius: np.ndarray
  bezel_width: np.ndarray
  tick_count: np.ndarray  # 0, 12 or 60
  major_tick_length: np.ndarray
  major_tick_half_width: np.ndarray
  minor_tick_length: np.ndarray
  minor_tick_half_width: np.ndarray
  numeral_kind: np.ndarray  # _NO_NUMERALS, _DOTS or _DIGITS
  numeral_radius: np.ndarray  # distance of the numerals' centres from the clock centre
  numeral_height: np.ndarray
  numeral_half_stroke: np.ndarray
  dot_radius: np.ndarray
  double_twelve: np.ndarray  # mark 12 by a double tick / double dot (when there are no digits)
  minute_length: np.ndarray
  hour_length: np.ndarray
  minute_half_width: np.ndarray
  hour_half_width: np.ndarray
  hand_shape: np.ndarray  # _STRAIGHT, _TAPERED or _LANCE
  hand_tail: np.ndarray  # how far the hands reach back past the centre
  cap_radius: np.ndarray
  has_second_hand: np.ndarray
  second_angle_deg: np.ndarray  # dial frame; random, it carries no label
  second_length: np.ndarray
  second_half_width: np.ndarray
  second_tail: np.ndarray
  background_kind: np.ndarray  # _FLAT, _GRADIENT or _TEXTURE
  light_on_dark: np.ndarray  # the polarity the levels below were flipped to
  background_level: np.ndarray
  background_contrast: np.ndarray
  background_angle: np.ndarray  # radians, direction of the gradient
  bezel_level: np.ndarray
  face_level: np.ndarray
  ink_level: np.ndarray  # hands, ticks, numerals
  second_level: np.ndarray
  light_strength: np.ndarray  # multiplicative lighting gradient across the image
  light_angle: np.ndarray
  blur_sigma: np.ndarray  # fraction of the image size
  noise_sigma: np.ndarray
  noise_seed: np.ndarray  # uint32, seeds the per-image JAX noise


class HandGeometry(NamedTuple):
  """Where the hands of N rendered clocks are, in the image frame (pixels, clockwise degrees)."""

  centre_x_N: np.ndarray  # continuous pixel coordinates: pixel centres are at col + 0.5
  centre_y_N: np.ndarray
  radius_N: np.ndarray  # pixels per dial unit
  rotation_deg_N: np.ndarray
  hour_angle_deg_N: np.ndarray  # clockwise from up, in the image
  minute_angle_deg_N: np.ndarray
  hour_length_N: np.ndarray  # pixels
  minute_length_N: np.ndarray
  hand_tail_N: np.ndarray


def render_clocks(
    seed: int, n: int = DEFAULT_COUNT, size: int = DEFAULT_SIZE, difficulty: float = 1.0,
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
  """Renders the data set of a seed: n clocks at times uniform over the 720 minutes.

  Args:
    seed: non-negative integer; image i depends only on (seed, i, size, difficulty).
    n: number of images.
    size: image height and width in pixels (150 is the course size; 64 or 32 are fast).
    difficulty: in [0, 1]; 0 is a clean canonical clock, 1 the full variety.

  Returns:
    (images_NHW uint8, hours_N int32 in 0..11, minutes_N int32 in 0..59).
  """
  hours_N, minutes_N = sample_times(seed, 0, n)
  return render_times(hours_N, minutes_N, seed, size, difficulty), hours_N, minutes_N


def render_times(
    hours_N: np.ndarray, minutes_N: np.ndarray, seed: int, size: int = DEFAULT_SIZE,
    difficulty: float = 1.0,
) -> np.ndarray:
  """Renders chosen times; image i gets the style of image i of `seed`. Returns uint8 [N, H, W]."""
  style = sample_styles(seed, 0, len(hours_N), difficulty)
  return render(hours_N, minutes_N, style, size)


def render(
    hours_N: np.ndarray, minutes_N: np.ndarray, style: ClockStyle, size: int = DEFAULT_SIZE,
) -> np.ndarray:
  """Renders N clocks with explicit times and styles. Returns uint8 [N, size, size].

  Works through fixed batches of _BATCH images (the last one padded) on one thread per core:
  one compiled program per size, memory bounded by the batches in flight (a few MiB each) plus
  the output, and an image's pixels do not depend on which other images share its call.
  """
  hours_N, minutes_N = _check_times(hours_N, minutes_N)
  if size < 8:
    raise ConfigError(f"size={size}: a clock needs at least 8x8 pixels")
  count = len(hours_N)
  images_NHW = np.empty((count, size, size), np.uint8)

  def render_batch(start: int) -> None:
    index_B = np.arange(start, start + _BATCH).clip(max=count - 1)
    images_BHW = _render_batch(hours_N[index_B], minutes_N[index_B],
                               ClockStyle(*(field[index_B] for field in style)), size)
    images_NHW[start:start + _BATCH] = np.asarray(images_BHW)[:count - start]

  # XLA runs one batch on about one core; JAX releases the GIL while it runs.
  with concurrent.futures.ThreadPoolExecutor(os.cpu_count()) as pool:
    list(pool.map(render_batch, range(0, count, _BATCH)))
  return images_NHW


def sample_times(seed: int, first_index: int, n: int) -> tuple[np.ndarray, np.ndarray]:
  """The times of images first_index .. first_index+n-1 of `seed`: (hours_N, minutes_N), int32."""
  minute_of_half_day_N = _draw_blocks(
      seed, _TIME_STREAM, first_index, n,
      lambda rng: rng.integers(0, MINUTES_PER_HALF_DAY, _BLOCK).astype(np.int32))
  return minute_of_half_day_N // 60, minute_of_half_day_N % 60


def sample_styles(seed: int, first_index: int, n: int, difficulty: float) -> ClockStyle:
  """The styles of images first_index .. first_index+n-1 of `seed` at `difficulty`."""
  if not 0.0 <= difficulty <= 1.0:
    raise ConfigError(f"difficulty={difficulty}: must be in [0, 1]")
  return _draw_blocks(seed, _STYLE_STREAM, first_index, n,
                      lambda rng: _draw_style_block(rng, difficulty))


def dial_angles_deg(hours_N, minutes_N):
  """(hour hand, minute hand) angles in degrees clockwise from the dial's 12: a real clock's."""
  return 30.0 * (hours_N + minutes_N / 60.0), 6.0 * minutes_N


def hand_geometry(
    hours_N: np.ndarray, minutes_N: np.ndarray, style: ClockStyle, size: int,
) -> HandGeometry:
  """The image-frame hand geometry `render` draws for these times and styles at `size`."""
  hour_dial_deg_N, minute_dial_deg_N = dial_angles_deg(
      np.asarray(hours_N, np.float64), np.asarray(minutes_N, np.float64))
  radius_N = style.radius.astype(np.float64) * size
  rotation_deg_N = style.rotation_deg.astype(np.float64)
  return HandGeometry(
      centre_x_N=(0.5 + style.centre_x.astype(np.float64)) * size,
      centre_y_N=(0.5 + style.centre_y.astype(np.float64)) * size,
      radius_N=radius_N,
      rotation_deg_N=rotation_deg_N,
      hour_angle_deg_N=hour_dial_deg_N + rotation_deg_N,
      minute_angle_deg_N=minute_dial_deg_N + rotation_deg_N,
      hour_length_N=style.hour_length * radius_N,
      minute_length_N=style.minute_length * radius_N,
      hand_tail_N=style.hand_tail * radius_N)


def family_values(style: ClockStyle, family: str) -> np.ndarray:
  """The name of each clock's value of a STYLE_FAMILIES family, e.g. 'ellipse': str [N]."""
  field, values = STYLE_FAMILIES[family]
  names_V, codes_V = np.array(list(values)), np.array(list(values.values()))
  return names_V[np.argmax(np.asarray(getattr(style, field))[:, None] == codes_V, axis=1)]


def in_families(style: ClockStyle, families: tuple[tuple[str, str], ...]) -> np.ndarray:
  """Whether each clock has any of the (family, value) pairs, e.g. ('dial', 'ellipse'): bool [N]."""
  member_N = np.zeros(len(style.radius), bool)
  for family, value in families:
    field, values = STYLE_FAMILIES[family]
    member_N |= np.asarray(getattr(style, field)) == values[value]
  return member_N


def save_grid(
    images_NHW: np.ndarray, hours_N: np.ndarray, minutes_N: np.ndarray, path: str, n: int = 32,
    columns: int = 8,
) -> None:
  """Writes the first n images as a PNG grid titled with their labels (hour 0 = 12 o'clock)."""
  from matplotlib.figure import Figure  # here: importing it costs every run ~0.3 s of start-up

  n = min(n, len(images_NHW))
  rows = math.ceil(n / columns)
  # Cells of at least an image's size at 100 dpi, so the PNG shows every pixel.
  cell = max(1.6, 1.1 * images_NHW.shape[-1] / 100)
  figure = Figure(figsize=(cell * columns, (cell + 0.2) * rows))
  axes = figure.subplots(rows, columns, squeeze=False)
  for index, ax in enumerate(axes.flat):
    ax.set_axis_off()
    if index < n:
      ax.imshow(images_NHW[index], cmap="gray", vmin=0, vmax=255, interpolation="nearest")
      ax.set_title(f"{int(hours_N[index])}:{int(minutes_N[index]):02d}", fontsize=9)
  figure.tight_layout()
  figure.savefig(path, dpi=100)


def _check_times(hours_N, minutes_N) -> tuple[np.ndarray, np.ndarray]:
  hours_N = np.asarray(hours_N, np.int32)
  minutes_N = np.asarray(minutes_N, np.int32)
  if hours_N.shape != minutes_N.shape or hours_N.ndim != 1:
    raise ConfigError(f"hours {hours_N.shape} and minutes {minutes_N.shape}: need equal 1-D shapes")
  if hours_N.size and (hours_N.min() < 0 or hours_N.max() > 11):
    raise ConfigError("hours must be in 0..11 (0 = twelve o'clock)")
  if minutes_N.size and (minutes_N.min() < 0 or minutes_N.max() > 59):
    raise ConfigError("minutes must be in 0..59")
  return hours_N, minutes_N


def _draw_blocks(seed: int, stream: int, first_index: int, n: int, draw_block):
  """Concatenates draw_block(rng of block b) over the blocks covering the index range, sliced.

  draw_block returns a pytree of [_BLOCK] arrays (one entry per image); so does this, with [n].
  """
  if seed < 0 or first_index < 0 or n < 0:
    raise ConfigError(f"seed={seed}, first_index={first_index}, n={n}: must be non-negative")
  first_block = first_index // _BLOCK
  last_block = max(first_block, (first_index + n - 1) // _BLOCK)
  blocks = [draw_block(np.random.default_rng([seed, stream, block]))
            for block in range(first_block, last_block + 1)]
  offset = first_index - first_block * _BLOCK
  return jax.tree.map(lambda *parts: np.concatenate(parts)[offset:offset + n], *blocks)


def _draw_style_block(rng: np.random.Generator, difficulty: float) -> ClockStyle:
  """Draws _BLOCK styles. The draws never depend on `difficulty`, only how they are used."""
  n = _BLOCK
  d = difficulty

  def pick(canonical: int, options: tuple[int, ...]) -> np.ndarray:
    return np.where(rng.random(n) < d, rng.choice(options, n), canonical)

  def jitter(canonical: float, low: float, high: float) -> np.ndarray:
    return canonical + d * (rng.uniform(low, high, n) - canonical)

  # Dial: the tick ring has radius 1; the face extends a little beyond it.
  shape = pick(_ROUND, (_ROUND, _SQUARE, _ELLIPSE))
  is_ellipse = shape == _ELLIPSE
  face_extent = jitter(1.06, 1.03, 1.15)
  aspect = rng.uniform(1.12, 1.3, n)
  wide = rng.random(n) < 0.5
  face_half_width = face_extent * np.where(is_ellipse & wide, aspect, 1.0)
  face_half_height = face_extent * np.where(is_ellipse & ~wide, aspect, 1.0)
  corner_radius = np.where(shape == _ROUND, face_extent, face_extent * rng.uniform(0.15, 0.5, n))
  bezel_width = jitter(0.05, 0.0, 0.14)
  rotation_deg = d * MAX_ROTATION_DEG * rng.uniform(-1, 1, n)
  # Half-extents of the rotated outline in dial units, to keep the whole clock in the image.
  cos, sin = np.abs(np.cos(np.deg2rad(rotation_deg))), np.abs(np.sin(np.deg2rad(rotation_deg)))
  straight_width = face_half_width - corner_radius
  straight_height = face_half_height - corner_radius
  half_extent_x = bezel_width + np.where(
      is_ellipse, np.hypot(face_half_width * cos, face_half_height * sin),
      straight_width * cos + straight_height * sin + corner_radius)
  half_extent_y = bezel_width + np.where(
      is_ellipse, np.hypot(face_half_width * sin, face_half_height * cos),
      straight_width * sin + straight_height * cos + corner_radius)
  radius = ((0.5 - _MARGIN) / np.maximum(half_extent_x, half_extent_y)
            * (1 - d * rng.uniform(0, 0.3, n)))
  centre_x = d * (0.5 - _MARGIN - radius * half_extent_x) * rng.uniform(-1, 1, n)
  centre_y = d * (0.5 - _MARGIN - radius * half_extent_y) * rng.uniform(-1, 1, n)

  # Markings; a clock keeps at least 12 ticks when it has no numerals.
  numeral_kind = pick(_DIGITS, (_NO_NUMERALS, _DOTS, _DIGITS))
  tick_count = pick(60, (0, 12, 60))
  tick_count = np.where((tick_count == 0) & (numeral_kind == _NO_NUMERALS), 12, tick_count)
  major_tick_length = jitter(0.12, 0.06, 0.2)
  major_tick_half_width = jitter(0.02, 0.01, 0.04)
  minor_tick_length = major_tick_length * jitter(0.45, 0.3, 0.7)
  minor_tick_half_width = major_tick_half_width * jitter(0.5, 0.3, 0.8)
  numeral_height = jitter(0.17, 0.12, 0.22)
  numeral_half_stroke = numeral_height * jitter(0.07, 0.05, 0.1)
  dot_radius = jitter(0.035, 0.02, 0.06)
  marks_inner = 1 - np.where(tick_count > 0, major_tick_length, 0.0) - jitter(0.05, 0.03, 0.1)
  # Numerals sit inside the ticks: 0.7 numeral heights covers the widest ("10") at any angle;
  # quarter-hour dots are 1.5 dot radii.
  numeral_radius = marks_inner - np.where(
      numeral_kind == _DIGITS, 0.7 * numeral_height, 1.5 * dot_radius)

  # Hands. The hour hand is at most 72% of the minute hand: how a human tells them apart.
  minute_length = jitter(0.8, 0.68, 0.95)
  hour_length = minute_length * jitter(0.62, 0.5, 0.72)
  minute_half_width = jitter(0.028, 0.016, 0.045)
  hour_half_width = minute_half_width * jitter(1.4, 1.0, 1.8)
  hand_shape = pick(_STRAIGHT, (_STRAIGHT, _TAPERED, _LANCE))
  hand_tail = jitter(0.1, 0.0, 0.25)
  cap_radius = jitter(0.05, 0.02, 0.09)
  has_second_hand = rng.random(n) < 0.5 * d
  second_angle_deg = rng.uniform(0, 360, n)
  second_length = rng.uniform(0.85, 0.98, n)
  second_half_width = rng.uniform(0.005, 0.012, n)
  second_tail = rng.uniform(0.1, 0.3, n)

  # Tones, drawn dark-on-light and flipped for light-on-dark; ink stays >= 0.45 from the face.
  light_on_dark = rng.random(n) < 0.35 * d
  face_level = jitter(0.95, 0.6, 1.0)
  ink_level = np.minimum(jitter(0.05, 0.0, 0.3), face_level - 0.45)
  second_level = ink_level + (face_level - ink_level) * rng.uniform(0, 0.4, n)
  face_level, ink_level, second_level = (
      np.where(light_on_dark, 1 - level, level) for level in (face_level, ink_level, second_level))
  bezel_level = jitter(0.2, 0.0, 1.0)
  background_kind = pick(_FLAT, (_FLAT, _GRADIENT, _TEXTURE))
  background_level = jitter(0.6, 0.0, 1.0)
  background_contrast = d * rng.uniform(0.1, 0.5, n)
  background_angle = rng.uniform(0, 2 * math.pi, n)
  light_strength = d * rng.uniform(0, 0.35, n)
  light_angle = rng.uniform(0, 2 * math.pi, n)
  blur_sigma = d * rng.uniform(0, _MAX_BLUR_PX_AT_150 / 150, n)
  noise_sigma = d * rng.uniform(0, _MAX_NOISE_SIGMA, n)
  noise_seed = rng.integers(0, 2**32, n, dtype=np.uint32)

  style = ClockStyle(
      centre_x=centre_x, centre_y=centre_y, radius=radius, rotation_deg=rotation_deg,
      dial_shape=shape.astype(np.int32), face_half_width=face_half_width,
      face_half_height=face_half_height,
      corner_radius=corner_radius, bezel_width=bezel_width, tick_count=tick_count.astype(np.int32),
      major_tick_length=major_tick_length, major_tick_half_width=major_tick_half_width,
      minor_tick_length=minor_tick_length, minor_tick_half_width=minor_tick_half_width,
      numeral_kind=numeral_kind.astype(np.int32), numeral_radius=numeral_radius,
      numeral_height=numeral_height, numeral_half_stroke=numeral_half_stroke,
      dot_radius=dot_radius, double_twelve=numeral_kind != _DIGITS, minute_length=minute_length,
      hour_length=hour_length, minute_half_width=minute_half_width,
      hour_half_width=hour_half_width, hand_shape=hand_shape.astype(np.int32),
      hand_tail=hand_tail, cap_radius=cap_radius, has_second_hand=has_second_hand,
      second_angle_deg=second_angle_deg, second_length=second_length,
      second_half_width=second_half_width, second_tail=second_tail,
      background_kind=background_kind.astype(np.int32), light_on_dark=light_on_dark,
      background_level=background_level,
      background_contrast=background_contrast, background_angle=background_angle,
      bezel_level=bezel_level, face_level=face_level, ink_level=ink_level,
      second_level=second_level, light_strength=light_strength, light_angle=light_angle,
      blur_sigma=blur_sigma, noise_sigma=noise_sigma, noise_seed=noise_seed)
  # float32 is what JAX computes in; counts, kinds, flags and seeds keep their types.
  return ClockStyle(*(field.astype(np.float32) if field.dtype == np.float64 else field
                      for field in style))


# A stroke font for the numerals: polylines in a glyph box x in [-0.3, 0.3], y in [-0.5, 0.5]
# (y down, unit = glyph height). Coarse on purpose: a numeral is 5-30 pixels tall.
_SIX = ((0.22, -0.5), (-0.28, 0.12), (-0.3, 0.35), (0.0, 0.5), (0.3, 0.35), (0.3, 0.1),
        (0.0, -0.05), (-0.28, 0.12))
_DIGIT_POLYLINES = {
    "0": (((-0.12, -0.5), (0.12, -0.5), (0.3, -0.32), (0.3, 0.32), (0.12, 0.5), (-0.12, 0.5),
           (-0.3, 0.32), (-0.3, -0.32), (-0.12, -0.5)),),
    "1": (((-0.15, -0.32), (0.05, -0.5), (0.05, 0.5)),),
    "2": (((-0.3, -0.3), (-0.12, -0.5), (0.12, -0.5), (0.3, -0.3), (0.3, -0.12), (-0.3, 0.5),
           (0.3, 0.5)),),
    "3": (((-0.3, -0.5), (0.3, -0.5), (0.0, -0.06), (0.15, -0.06), (0.3, 0.1), (0.3, 0.32),
           (0.12, 0.5), (-0.12, 0.5), (-0.3, 0.35)),),
    "4": (((0.12, 0.5), (0.12, -0.5), (-0.3, 0.2), (0.3, 0.2)),),
    "5": (((0.3, -0.5), (-0.25, -0.5), (-0.3, -0.04), (0.12, -0.08), (0.3, 0.1), (0.3, 0.32),
           (0.12, 0.5), (-0.12, 0.5), (-0.3, 0.35)),),
    "6": (_SIX,),
    "7": (((-0.3, -0.5), (0.3, -0.5), (-0.08, 0.5)),),
    "8": (((0.0, -0.5), (0.25, -0.38), (0.25, -0.16), (0.0, -0.04), (-0.25, -0.16), (-0.25, -0.38),
           (0.0, -0.5)),
          ((0.0, -0.04), (0.3, 0.1), (0.3, 0.35), (0.0, 0.5), (-0.3, 0.35), (-0.3, 0.1),
           (0.0, -0.04))),
    "9": (tuple((-x, -y) for x, y in _SIX),),
}
_DIGIT_ADVANCE = 0.72  # distance between the two digits of 10, 11, 12
# The numerals are drawn from a precomputed distance atlas: a bilinear sample per pixel is far
# cheaper than the distance to each of a numeral's up to 12 strokes.
_ATLAS_TEXEL = 0.02  # glyph units
_ATLAS_HALF_WIDTH = 0.76  # "10" spans ±0.66
_ATLAS_HALF_HEIGHT = 0.6


def _numeral_atlas() -> np.ndarray:
  """[12, H, W] float32: distance to the stroke centre lines of numeral k (0 = "12").

  Sampled every _ATLAS_TEXEL glyph units over the box ±_ATLAS_HALF_WIDTH x ±_ATLAS_HALF_HEIGHT.
  """
  xs_W = np.linspace(-_ATLAS_HALF_WIDTH, _ATLAS_HALF_WIDTH,
                     round(2 * _ATLAS_HALF_WIDTH / _ATLAS_TEXEL) + 1)
  ys_H = np.linspace(-_ATLAS_HALF_HEIGHT, _ATLAS_HALF_HEIGHT,
                     round(2 * _ATLAS_HALF_HEIGHT / _ATLAS_TEXEL) + 1)
  x_HW1, y_HW1 = xs_W[None, :, None], ys_H[:, None, None]
  atlas = []
  for position in range(12):
    text = str(position or 12)
    segments = []
    for place, digit in enumerate(text):
      shift = (place - (len(text) - 1) / 2) * _DIGIT_ADVANCE
      for polyline in _DIGIT_POLYLINES[digit]:
        segments += [(ax + shift, ay, bx + shift, by)
                     for (ax, ay), (bx, by) in itertools.pairwise(polyline)]
    ax_S, ay_S, bx_S, by_S = np.array(segments).T
    along_HWS = np.clip(((x_HW1 - ax_S) * (bx_S - ax_S) + (y_HW1 - ay_S) * (by_S - ay_S))
                        / ((bx_S - ax_S)**2 + (by_S - ay_S)**2), 0.0, 1.0)
    distance_HWS = np.hypot(x_HW1 - ax_S - along_HWS * (bx_S - ax_S),
                            y_HW1 - ay_S - along_HWS * (by_S - ay_S))
    atlas.append(distance_HWS.min(axis=-1))
  return np.array(atlas, np.float32)


_NUMERAL_ATLAS_KHW = _numeral_atlas()


def _norm(x, y):
  """sqrt(x² + y²); jnp.hypot also guards against overflow, at several times the cost."""
  return jnp.sqrt(x * x + y * y)


def _coverage(distance_px: jax.Array) -> jax.Array:
  """Anti-aliased coverage of a shape from its signed distance in pixels (negative inside)."""
  t = jnp.clip(0.5 - distance_px / (2 * _ANTIALIAS_PX), 0.0, 1.0)
  return t * t * (3 - 2 * t)  # smoothstep


def _rounded_box_distance(x, y, half_width, half_height, corner):
  qx = jnp.abs(x) - half_width + corner
  qy = jnp.abs(y) - half_height + corner
  outside = _norm(jnp.maximum(qx, 0.0), jnp.maximum(qy, 0.0))
  return outside + jnp.minimum(jnp.maximum(qx, qy), 0.0) - corner


def _ellipse_distance(x, y, half_width, half_height):
  """Approximate signed distance to an ellipse (|p/r| - 1 scaled by the gradient), exact enough
  for anti-aliasing when the axes differ by less than a third."""
  k0 = _norm(x / half_width, y / half_height)
  k1 = _norm(x / half_width**2, y / half_height**2)
  return k0 * (k0 - 1.0) / jnp.maximum(k1, 1e-6)


def _nearest_ray(radius, theta, step):
  """For rays every `step` radians from 12: the nearest ray's index, and the pixel's coordinates
  along and across it.

  |theta - ray| <= step / 2 <= π/12, where short Taylor series give sin and cos to float32
  precision for a fraction of the cost of jnp.sin and jnp.cos.
  """
  index = jnp.round(theta / step)
  delta = theta - index * step
  delta2 = delta * delta
  sin = delta * (1 - delta2 / 6 * (1 - delta2 / 20 * (1 - delta2 / 42)))
  cos = 1 - delta2 / 2 * (1 - delta2 / 12 * (1 - delta2 / 30 * (1 - delta2 / 56)))
  return index, radius * cos, radius * sin


def _hand_distance(x, y, angle, length, tail, half_width, shape):
  """Signed distance to a hand from -tail to +length along `angle`, with a width profile.

  The profile varies slowly along the hand, so a capsule whose radius follows it is a good
  enough distance for anti-aliasing.
  """
  sin, cos = jnp.sin(angle), jnp.cos(angle)
  along, across = x * sin - y * cos, x * cos + y * sin
  nearest = jnp.clip(along, -tail, length)
  f = jnp.clip(nearest / length, 0.0, 1.0)
  lance = jnp.where(f < 0.7, 0.55 + 0.65 * f / 0.7, 1.2 * (1.0 - f) / 0.3)
  profile = jnp.select([shape == _TAPERED, shape == _LANCE], [1.0 - 0.85 * f, lance], 1.0)
  return _norm(along - nearest, across) - half_width * profile


def _tick_distance(radius, theta, style: ClockStyle):
  """Signed distance to the nearest tick mark (the one whose angle is nearest the pixel's)."""
  count = jnp.maximum(style.tick_count, 12)
  index, along, across = _nearest_ray(radius, theta, 2 * jnp.pi / count)
  is_major = jnp.mod(index, count // 12) == 0
  length = jnp.where(is_major, style.major_tick_length, style.minor_tick_length)
  half_width = jnp.where(is_major, style.major_tick_half_width, style.minor_tick_half_width)
  # A double tick at 12: the distance to two bars either side of the ray.
  double = style.double_twelve & (jnp.mod(index, count) == 0)
  across = jnp.where(double, jnp.abs(across) - 1.6 * half_width, across)
  return _rounded_box_distance(along - (1.0 - length / 2), across, length / 2, half_width, 0.0)


def _atlas_distance(position, glyph_x, glyph_y):
  """Distance to the centre lines of numeral `position` at glyph coordinates: a bilinear sample
  of the atlas, plus the distance to the atlas box for points outside it."""
  _, rows, columns = _NUMERAL_ATLAS_KHW.shape
  inside_x = jnp.clip(glyph_x, -_ATLAS_HALF_WIDTH, _ATLAS_HALF_WIDTH)
  inside_y = jnp.clip(glyph_y, -_ATLAS_HALF_HEIGHT, _ATLAS_HALF_HEIGHT)
  u = (inside_x + _ATLAS_HALF_WIDTH) / _ATLAS_TEXEL
  v = (inside_y + _ATLAS_HALF_HEIGHT) / _ATLAS_TEXEL
  u0 = jnp.clip(jnp.floor(u), 0, columns - 2)
  v0 = jnp.clip(jnp.floor(v), 0, rows - 2)
  fu, fv = u - u0, v - v0
  corner = (position * rows + v0.astype(jnp.int32)) * columns + u0.astype(jnp.int32)
  atlas = jnp.asarray(_NUMERAL_ATLAS_KHW.ravel())
  top = atlas[corner] + (atlas[corner + 1] - atlas[corner]) * fu
  bottom = atlas[corner + columns] + (atlas[corner + columns + 1] - atlas[corner + columns]) * fu
  return top + (bottom - top) * fv + _norm(glyph_x - inside_x, glyph_y - inside_y)


def _numeral_distance(x, y, radius, theta, style: ClockStyle):
  """Signed distance to the nearest numeral (digits) or hour dot, both upright on the dial."""
  index, along, across = _nearest_ray(radius, theta, 2 * jnp.pi / 12)
  position = jnp.mod(index, 12).astype(jnp.int32)
  # The ray's direction (sin, -cos) from the pixel's: rotate (x, y) / radius back by delta.
  inverse_radius = 1 / jnp.maximum(radius, 1e-6)
  ray_sin = (x * along + y * across) * inverse_radius**2
  ray_cos = (x * across - y * along) * inverse_radius**2
  local_x = x - style.numeral_radius * ray_sin
  local_y = y + style.numeral_radius * ray_cos
  digits = (_atlas_distance(position, local_x / style.numeral_height,
                            local_y / style.numeral_height) * style.numeral_height
            - style.numeral_half_stroke)
  # Dots: larger at the quarter hours, doubled at 12 unless digits mark it.
  dot_radius = jnp.where(jnp.mod(position, 3) == 0, 1.5, 1.0) * style.dot_radius
  dot_x = jnp.where(style.double_twelve & (position == 0),
                    jnp.abs(local_x) - 1.1 * dot_radius, local_x)
  dots = _norm(dot_x, local_y) - dot_radius
  return jnp.where(style.numeral_kind == _DIGITS, digits, dots)


def _blur(image_HW, sigma_px):
  """Separable Gaussian blur as two matrix products (measured twice as fast here as summing
  shifted copies). Rows of the kernel matrix are normalised, so borders average only the pixels
  inside the image; sigma 0 is the identity."""
  coords = jnp.arange(image_HW.shape[0], dtype=jnp.float32)
  kernel_HH = jnp.exp(-(coords[:, None] - coords[None, :])**2 / (2 * sigma_px**2 + 1e-6))
  kernel_HH = kernel_HH / kernel_HH.sum(axis=1, keepdims=True)
  return kernel_HH @ image_HW @ kernel_HH.T


def _render_one(hour, minute, style: ClockStyle, size: int) -> jax.Array:
  """One clock as a [size, size] uint8 image; every style field is a scalar here."""
  radius_px = style.radius * size
  coords = jnp.arange(size, dtype=jnp.float32) + 0.5
  image_x = (coords[None, :] - (0.5 + style.centre_x) * size) / radius_px
  image_y = (coords[:, None] - (0.5 + style.centre_y) * size) / radius_px
  # Into the dial frame: undo the clock's clockwise rotation.
  rotation = jnp.deg2rad(style.rotation_deg)
  x = jnp.cos(rotation) * image_x + jnp.sin(rotation) * image_y
  y = jnp.cos(rotation) * image_y - jnp.sin(rotation) * image_x
  radius = _norm(x, y)
  theta = jnp.arctan2(x, -y)  # clockwise from the dial's 12

  def cover(distance):
    return _coverage(distance * radius_px)

  def paint(image, level, coverage):
    return image + (level - image) * coverage

  # Thin strokes are widened to a minimum pixel width, in dial units.
  min_hand = _MIN_HAND_HALF_WIDTH_PX / radius_px
  min_fine = _MIN_FINE_HALF_WIDTH_PX / radius_px
  style = style._replace(
      minute_half_width=jnp.maximum(style.minute_half_width, min_hand),
      hour_half_width=jnp.maximum(style.hour_half_width, min_hand),
      second_half_width=jnp.maximum(style.second_half_width, min_fine),
      major_tick_half_width=jnp.maximum(style.major_tick_half_width, min_fine),
      minor_tick_half_width=jnp.maximum(style.minor_tick_half_width, min_fine),
      numeral_half_stroke=jnp.maximum(style.numeral_half_stroke, min_fine))

  # Background: flat, a linear gradient, or smooth value noise; all over [-1, 1] x [-1, 1].
  texture_key, noise_key = jax.random.split(jax.random.key(style.noise_seed))
  unit_x = coords[None, :] / size * 2 - 1
  unit_y = coords[:, None] / size * 2 - 1
  gradient = unit_x * jnp.cos(style.background_angle) + unit_y * jnp.sin(style.background_angle)
  texture = jax.image.resize(jax.random.uniform(texture_key, (5, 5)) * 2 - 1, (size, size),
                             "cubic")
  variation = jnp.select([style.background_kind == _GRADIENT, style.background_kind == _TEXTURE],
                         [gradient, texture], jnp.zeros_like(gradient))
  image = jnp.broadcast_to(style.background_level + style.background_contrast * variation,
                           (size, size))

  # Dial: bezel, face, ticks, numerals.
  face = jnp.where(
      style.dial_shape == _ELLIPSE,
      _ellipse_distance(x, y, style.face_half_width, style.face_half_height),
      _rounded_box_distance(x, y, style.face_half_width, style.face_half_height,
                            style.corner_radius))
  image = paint(image, style.bezel_level, cover(face - style.bezel_width))
  image = paint(image, style.face_level, cover(face))
  ticks = cover(_tick_distance(radius, theta, style)) * (style.tick_count > 0)
  image = paint(image, style.ink_level, ticks)
  numerals = cover(_numeral_distance(x, y, radius, theta, style))
  image = paint(image, style.ink_level, numerals * (style.numeral_kind != _NO_NUMERALS))

  # Hands, hour under minute under second, then the cap over their roots.
  hour_deg, minute_deg = dial_angles_deg(hour, minute)
  for angle_deg, length, half_width, tail in (
      (hour_deg, style.hour_length, style.hour_half_width, 0.8 * style.hand_tail),
      (minute_deg, style.minute_length, style.minute_half_width, style.hand_tail)):
    distance = _hand_distance(x, y, jnp.deg2rad(angle_deg), length, tail, half_width,
                              style.hand_shape)
    image = paint(image, style.ink_level, cover(distance))
  second = _hand_distance(x, y, jnp.deg2rad(style.second_angle_deg), style.second_length,
                          style.second_tail, style.second_half_width, _STRAIGHT)
  image = paint(image, style.second_level, cover(second) * style.has_second_hand)
  cap_level = jnp.where(style.has_second_hand, style.second_level, style.ink_level)
  image = paint(image, cap_level, cover(radius - style.cap_radius))

  # Camera: lighting gradient, blur, sensor noise.
  light = unit_x * jnp.cos(style.light_angle) + unit_y * jnp.sin(style.light_angle)
  image = image * (1 + style.light_strength * light)
  image = _blur(image, style.blur_sigma * size)
  image = image + style.noise_sigma * jax.random.normal(noise_key, (size, size))
  return jnp.round(jnp.clip(image, 0.0, 1.0) * 255).astype(jnp.uint8)


@functools.partial(jax.jit, static_argnames="size")
def _render_batch(hours_N, minutes_N, style: ClockStyle, size: int) -> jax.Array:
  return jax.vmap(functools.partial(_render_one, size=size))(hours_N, minutes_N, style)

"""Tests for dljax.data.clock_render: determinism, chunking, hands that match labels, coverage."""

import numpy as np
import pytest
from PIL import Image

from dljax.data import clock_render as cr
from dljax.errors import ConfigError

SIZE = 64  # one small size for most tests, so they share one compiled program


def _signed_degrees(angle_deg):
  """Wraps an angle difference into [-180, 180)."""
  return (np.asarray(angle_deg) + 180.0) % 360.0 - 180.0


def _style_rows(style: cr.ClockStyle, rows) -> cr.ClockStyle:
  return cr.ClockStyle(*(field[rows] for field in style))


def test_shapes_dtypes_and_label_ranges():
  images_NHW, hours_N, minutes_N = cr.render_clocks(seed=3, n=20, size=SIZE)
  assert images_NHW.shape == (20, SIZE, SIZE)
  assert images_NHW.dtype == np.uint8
  assert np.issubdtype(hours_N.dtype, np.integer) and np.issubdtype(minutes_N.dtype, np.integer)
  assert hours_N.min() >= 0 and hours_N.max() <= 11
  assert minutes_N.min() >= 0 and minutes_N.max() <= 59
  # Every image holds a clock, not a flat or saturated field.
  assert (images_NHW.reshape(20, -1).std(axis=1) > 10).all()
  np.testing.assert_array_equal((hours_N, minutes_N), cr.sample_times(3, 0, 20))


def test_same_seed_is_bit_identical_and_other_seeds_differ():
  first, hours, minutes = cr.render_clocks(seed=5, n=6, size=SIZE)
  again, hours_again, minutes_again = cr.render_clocks(seed=5, n=6, size=SIZE)
  np.testing.assert_array_equal(first, again)
  np.testing.assert_array_equal(hours, hours_again)
  np.testing.assert_array_equal(minutes, minutes_again)
  other = cr.render_clocks(seed=6, n=6, size=SIZE)[0]
  assert all((first[i] != other[i]).any() for i in range(6))


def test_chunking_does_not_change_pixels():
  # 20 images: a full batch of 16 and a padded one; then the same images in odd pieces, which
  # puts every image at another place in its batch and in differently padded batches.
  whole_NHW, hours_N, minutes_N = cr.render_clocks(seed=9, n=20, size=SIZE)
  pieces = []
  for start, stop in ((0, 3), (3, 4), (4, 20)):
    style = cr.sample_styles(9, start, stop - start, difficulty=1.0)
    pieces.append(cr.render(hours_N[start:stop], minutes_N[start:stop], style, SIZE))
  np.testing.assert_array_equal(np.concatenate(pieces), whole_NHW)
  np.testing.assert_array_equal(cr.render_clocks(seed=9, n=5, size=SIZE)[0], whole_NHW[:5])


def test_draws_do_not_depend_on_block_boundaries():
  whole = cr.sample_styles(2, 0, 2100, difficulty=0.7)
  part = cr.sample_styles(2, 1000, 1100, difficulty=0.7)  # spans three draw blocks
  for whole_field, part_field in zip(whole, part, strict=True):
    np.testing.assert_array_equal(whole_field[1000:], part_field)
  np.testing.assert_array_equal(cr.sample_times(2, 1000, 1100), np.array(cr.sample_times(
      2, 0, 2100))[:, 1000:])


def test_difficulty_zero_is_one_canonical_clock():
  times = dict(hours_N=np.array([4, 4]), minutes_N=np.array([50, 50]))
  canonical = [cr.render_times(**times, seed=seed, size=SIZE, difficulty=0.0) for seed in (0, 1)]
  np.testing.assert_array_equal(canonical[0][0], canonical[0][1])
  np.testing.assert_array_equal(canonical[0], canonical[1])


def test_two_times_in_one_style_give_different_images():
  style = _style_rows(cr.sample_styles(4, 0, 1, difficulty=1.0), [0, 0])
  images_NHW = cr.render(np.array([2, 7]), np.array([10, 43]), style, SIZE)
  changed = np.abs(images_NHW[0].astype(int) - images_NHW[1].astype(int)) > 40
  assert changed.sum() > 20


def test_geometry_follows_the_label_and_hour_hand_is_shorter():
  styles = cr.sample_styles(11, 0, 2000, difficulty=1.0)
  hours_N, minutes_N = cr.sample_times(11, 0, 2000)
  geometry = cr.hand_geometry(hours_N, minutes_N, styles, size=150)
  np.testing.assert_allclose(
      _signed_degrees(geometry.minute_angle_deg_N - 6 * minutes_N - geometry.rotation_deg_N),
      0, atol=1e-4)
  np.testing.assert_allclose(
      _signed_degrees(geometry.hour_angle_deg_N - 30 * (hours_N + minutes_N / 60)
                      - geometry.rotation_deg_N), 0, atol=1e-4)
  assert (np.abs(geometry.rotation_deg_N) <= cr.MAX_ROTATION_DEG).all()
  assert np.abs(geometry.rotation_deg_N).max() > 20  # the full range is used
  assert (geometry.hour_length_N <= 0.72 * geometry.minute_length_N + 1e-6).all()
  # The clock, rotated, stays inside the image.
  assert (geometry.centre_x_N - geometry.radius_N > 0).all()
  assert (geometry.centre_x_N + geometry.radius_N < 150).all()
  assert (geometry.centre_y_N - geometry.radius_N > 0).all()
  assert (geometry.centre_y_N + geometry.radius_N < 150).all()


def _darkest_near(image_HW, x_R, y_R):
  """For points in continuous pixel coordinates: the darkest of the 2x2 pixels whose centres
  surround each point (one of them is within half a pixel of any line through the point)."""
  col_R = np.floor(x_R - 0.5).astype(int)
  row_R = np.floor(y_R - 0.5).astype(int)
  blocks_R22 = np.stack([image_HW[row:row + 2, col:col + 2] for row, col in zip(
      row_R, col_R, strict=True)])
  return blocks_R22.min(axis=(1, 2))


@pytest.mark.parametrize("size", [SIZE, 32])
def test_hands_point_where_the_label_says_in_pixels(size):
  # Canonical clocks without numerals (so only hands lie inside the tick ring), rotated and
  # shifted, at times where the hands are well apart and not opposite each other.
  hours_N, minutes_N = cr.sample_times(7, 0, 200)
  hour_deg_N, minute_deg_N = cr.dial_angles_deg(hours_N, minutes_N)
  apart = ((np.abs(_signed_degrees(hour_deg_N - minute_deg_N)) > 35)
           & (np.abs(_signed_degrees(hour_deg_N - minute_deg_N - 180)) > 35))
  hours_N, minutes_N = hours_N[apart][:16], minutes_N[apart][:16]
  count = len(hours_N)
  style = cr.sample_styles(0, 0, count, difficulty=0.0)._replace(
      numeral_kind=np.zeros(count, np.int32),
      rotation_deg=np.linspace(-25, 25, count, dtype=np.float32),
      centre_x=np.linspace(-0.03, 0.03, count, dtype=np.float32),
      centre_y=np.linspace(0.03, -0.03, count, dtype=np.float32))
  images_NHW = cr.render(hours_N, minutes_N, style, size)
  geometry = cr.hand_geometry(hours_N, minutes_N, style, size)
  ink, face = style.ink_level[0] * 255, style.face_level[0] * 255
  halfway = (ink + face) / 2
  for i in range(count):

    def along(angle_deg, start_px, stop_px, i=i):
      radii_R = np.linspace(start_px, stop_px, 12)
      angle = np.deg2rad(angle_deg)
      return _darkest_near(
          images_NHW[i], geometry.centre_x_N[i] + radii_R * np.sin(angle),
          geometry.centre_y_N[i] - radii_R * np.cos(angle))

    minute_px, hour_px = geometry.minute_length_N[i], geometry.hour_length_N[i]
    # Some pixel next to each point along a hand, up to near its tip, is mostly ink...
    assert (along(geometry.minute_angle_deg_N[i], 2.0, minute_px - 1.5) < halfway).all()
    assert (along(geometry.hour_angle_deg_N[i], 2.0, hour_px - 1.5) < halfway).all()
    # ...while all are mostly face beyond the hour hand's tip, where only the minute hand
    # reaches, and on the far side of the centre from the minute hand (past its tail).
    assert (along(geometry.hour_angle_deg_N[i], hour_px + 2.5, minute_px - 1.0) > halfway).all()
    opposite_deg = geometry.minute_angle_deg_N[i] + 180
    start_px = geometry.hand_tail_N[i] + 2.5
    assert (along(opposite_deg, start_px, minute_px - 1.0) > halfway).all()


def test_times_cover_the_half_day_uniformly():
  hours_N, minutes_N = cr.sample_times(0, 0, 7200)
  counts = np.bincount(hours_N * 60 + minutes_N, minlength=cr.MINUTES_PER_HALF_DAY)
  assert len(counts) == cr.MINUTES_PER_HALF_DAY
  assert counts.min() >= 1
  # Chi-square with 719 degrees of freedom: mean 719, sd 38; fixed seed, so it cannot flake.
  expected = 7200 / cr.MINUTES_PER_HALF_DAY
  assert ((counts - expected)**2 / expected).sum() < 719 + 5 * 38


def test_save_grid_writes_a_png(tmp_path):
  images_NHW, hours_N, minutes_N = cr.render_clocks(seed=1, n=5, size=SIZE)
  path = tmp_path / "grid.png"
  cr.save_grid(images_NHW, hours_N, minutes_N, str(path), n=5, columns=3)
  with Image.open(path) as grid:
    assert grid.format == "PNG"
    assert grid.width > 3 * SIZE and grid.height > 2 * SIZE


@pytest.mark.parametrize("call", [
    lambda: cr.render_clocks(seed=0, n=2, size=SIZE, difficulty=1.5),
    lambda: cr.render_clocks(seed=-1, n=2, size=SIZE),
    lambda: cr.render_times(np.array([12]), np.array([0]), seed=0, size=SIZE),
    lambda: cr.render_times(np.array([1]), np.array([60]), seed=0, size=SIZE),
    lambda: cr.render_clocks(seed=0, n=2, size=4),
])
def test_bad_arguments_raise_config_errors(call):
  with pytest.raises(ConfigError):
    call()


def test_recorded_style_families_are_what_is_drawn():
  style = cr.sample_styles(4, 0, 2000, difficulty=1.0)
  dial_N = cr.family_values(style, "dial")
  assert set(dial_N) == {"round", "square", "ellipse"}
  np.testing.assert_array_equal(dial_N == "ellipse",
                                style.face_half_width != style.face_half_height)
  np.testing.assert_array_equal(dial_N == "round", style.corner_radius == style.face_half_width)
  np.testing.assert_array_equal(cr.family_values(style, "polarity") == "light_on_dark",
                                style.face_level < style.ink_level)
  np.testing.assert_array_equal(cr.family_values(style, "ticks") == "none", style.tick_count == 0)
  np.testing.assert_array_equal(cr.in_families(style, (("dial", "ellipse"), ("ticks", "none"))),
                                (dial_N == "ellipse") | (style.tick_count == 0))

"""The clock task: encodings round-trip, the common-sense error, cos_only's documented flaw,
config checks, and a smoke run of every clock config through the trainer."""

import glob
import json
import math
import os

import jax.numpy as jnp
import numpy as np
import pytest

from dljax import config_lib, train
from dljax.errors import ConfigError
from dljax.tasks import clock
from tests.conftest import REPO

ALL_TIMES = jnp.arange(clock.MINUTES)
CLASS_COUNTS = (24, 48, 72, 96, 192, 360, 720)
ENCODINGS = [clock.task_config(name) for name in sorted(clock.ENCODINGS)
             if name != "classification"] + [
                 clock.task_config("classification", classes=n) for n in CLASS_COUNTS] + [
                 clock.task_config("classification", classes=n, soft_minutes=20.0)
                 for n in (48, 192)]


def _decode(code: clock.Encoding, targets_BK) -> np.ndarray:
  return np.asarray(clock.decoded_minutes(code, targets_BK))


def _minutes(hour: int, minute: int) -> int:
  return 60 * hour + minute


@pytest.mark.parametrize("config", ENCODINGS, ids=lambda c: f"{c.encoding}" + (
    f"{c.classes}{'_soft' if c.soft_minutes else ''}" if "class" in c.encoding else ""))
def test_every_time_round_trips_exactly_or_within_half_a_bin(config):
  code = clock.encoding(config)
  targets_BK = code.encode(ALL_TIMES)
  assert targets_BK.shape == (clock.MINUTES, code.width)
  decoded_N = _decode(code, targets_BK)
  assert decoded_N.min() >= 0 and decoded_N.max() < clock.MINUTES
  # A bin of 720 / N minutes decodes to the middle of its whole minutes, rounded to a minute.
  is_binned = config.encoding == "classification"
  bound = math.ceil(clock.MINUTES / config.classes / 2) if is_binned else 0
  assert np.asarray(clock.common_sense_minutes(decoded_N, ALL_TIMES)).max() <= bound


@pytest.mark.parametrize("name", ["regression", "regression_wrap", "periodic", "cos_only"])
def test_the_perfect_output_has_zero_loss(name):
  code = clock.encoding(clock.task_config(name))
  targets_BK = code.encode(ALL_TIMES)
  np.testing.assert_allclose(code.loss(targets_BK, targets_BK), 0, atol=1e-10)


@pytest.mark.parametrize("a, b, minutes", [
    ((11, 55), (0, 5), 10), ((6, 0), (0, 0), 360), ((0, 0), (0, 0), 0), ((11, 50), (0, 10), 20),
    ((3, 0), (9, 1), 359), ((0, 1), (11, 59), 2),
])
def test_common_sense_error_of_known_pairs(a, b, minutes):
  for first, second in ((a, b), (b, a)):
    assert clock.common_sense_minutes(_minutes(*first), _minutes(*second)) == minutes


def test_regression_wrap_loss_measures_the_short_way_round():
  code = clock.encoding(clock.task_config("regression_wrap"))
  targets_B1 = code.encode(jnp.array([_minutes(0, 6)]))  # 0.1 hours
  np.testing.assert_allclose(code.loss(jnp.array([[11.9]]), targets_B1), [0.04], rtol=1e-4)
  plain = clock.encoding(clock.task_config("regression"))
  np.testing.assert_allclose(plain.loss(jnp.array([[11.9]]), targets_B1), [11.8**2], rtol=1e-4)


def test_periodic_takes_the_hour_from_the_hour_hand_less_the_minutes():
  code = clock.encoding(clock.task_config("periodic"))
  # 2:59: the hour hand points almost at 3; the decoded minute says it has moved 59 minutes.
  outputs_B4 = code.encode(jnp.array([_minutes(2, 59)]))
  assert _decode(code, outputs_B4)[0] == _minutes(2, 59)
  # A minute hand read a little early (2:58.6 instead of 3:00.0) keeps the hour of the hand.
  hour_sin_cos = code.encode(jnp.array([_minutes(3, 0)]))[:, :2]
  minute_sin_cos = code.encode(jnp.array([_minutes(2, 59)]))[:, 2:]
  assert _decode(code, jnp.concatenate([hour_sin_cos, minute_sin_cos], -1))[0] == _minutes(2, 59)


def test_soft_classes_are_a_circular_gaussian_around_the_time():
  hard = clock.encoding(clock.task_config("classification", classes=48))
  soft = clock.encoding(clock.task_config("classification", classes=48, soft_minutes=15.0))
  times_B = jnp.array([_minutes(0, 7), _minutes(11, 52), _minutes(6, 0)])
  targets_BK = np.asarray(soft.encode(times_B))
  np.testing.assert_allclose(targets_BK.sum(-1), 1, rtol=1e-6)
  # The true bin gets the most, its neighbours (15 minutes on) e^-1/2 of it, round the 12 too.
  np.testing.assert_array_equal(targets_BK.argmax(-1), np.asarray(hard.encode(times_B)).argmax(-1))
  np.testing.assert_allclose(targets_BK[0, [47, 1]] / targets_BK[0, 0], np.exp(-0.5), rtol=1e-5)
  np.testing.assert_allclose(targets_BK[1, [46, 0]] / targets_BK[1, 47], np.exp(-0.5), rtol=1e-5)


def test_multihead_periodic_minute_knows_59_and_0_are_neighbours():
  code = clock.encoding(clock.task_config("multihead_periodic"))
  targets_BK = code.encode(jnp.array([_minutes(3, 59), _minutes(3, 0), _minutes(3, 30)]))
  # A minute off round the 12 costs what a minute off anywhere else does.
  one_minute_off = code.loss(targets_BK[:1], targets_BK[1:2]) - code.loss(targets_BK[1:2],
                                                                         targets_BK[1:2])
  half_an_hour_off = code.loss(targets_BK[2:], targets_BK[1:2]) - code.loss(targets_BK[1:2],
                                                                           targets_BK[1:2])
  assert 0 < one_minute_off[0] < 0.02 and half_an_hour_off[0] == pytest.approx(4.0)


def test_cos_only_puts_12_and_1_closest_and_11_59_far_from_0_00():
  """The reports' periodic variant, Y = cos(pi h / 12), cos(pi m / 60): invertible on [0, 12)
  (every time round-trips, above), but its hours crowd together near 12 o'clock."""
  code = clock.encoding(clock.task_config("cos_only"))
  hour_targets_H = np.asarray(code.encode(jnp.arange(12) * 60)[:, 0])
  gaps_H = np.abs(np.diff(hour_targets_H))  # between hours h and h + 1
  assert gaps_H.argmin() == 0 and gaps_H[0] == pytest.approx(1 - np.cos(np.pi / 12))
  assert gaps_H.max() / gaps_H[0] > 7  # 5 <-> 6 is 7.6 times further apart than 12 <-> 1
  # So the same small output error (0.02) turns 12:00 into 1:00, but leaves 6:00 at 6:00.
  for hour, expected in ((0, 1), (6, 6)):
    outputs_B2 = code.encode(jnp.array([_minutes(hour, 0)])) - jnp.array([[0.02, 0.0]])
    assert _decode(code, outputs_B2)[0] == _minutes(expected, 0)
  # And 11:59, a minute before 0:00 on the dial, is at the other end of both targets.
  far_apart = code.encode(jnp.array([_minutes(11, 59)])) - code.encode(jnp.array([0]))
  assert (np.abs(np.asarray(far_apart)) > 1.9).all()


@pytest.mark.parametrize("key, value, message", [
    ("model.num_classes", 24, r"^config.model.num_classes=24: encoding "
                              r"config.clock.encoding='periodic' needs 4 outputs$"),
    ("clock.encoding", "angles", r"^config.clock.encoding='angles': unknown encoding; allowed: "),
    ("data.augment.flip", "horizontal", r"a mirrored clock shows another time$"),
    ("clock.soft_minutes", -1.0, r"^config.clock.soft_minutes=-1.0: must be >= 0 \(0 = one-hot\)$"),
])
def test_config_mistakes_are_one_line_errors_before_any_data(key, value, message):
  config = config_lib.load(os.path.join(REPO, "configs/clock_periodic.py:smoke"))
  config_lib.override(config, key, value)
  with pytest.raises(ConfigError, match=message):
    clock.build(config, data=None, total_steps=1)


# Every clock config once; the encodings their arguments select (classes=N, cos_only) share the
# task's code path and are checked above, so they do not each pay for a run. clock_quick (the
# periodic encoding, as clock_periodic) trains in tests/test_predict.py, which reads its clocks.
SMOKE_SPECS = [f"{os.path.relpath(path, REPO)}:smoke" for path in
               sorted(glob.glob(f"{REPO}/configs/clock_*.py")) if "clock_quick" not in path]


@pytest.fixture(scope="module")
def smoke_data_dir(tmp_path_factory) -> str:
  """One data dir for every smoke run: the smoke clocks are generated once."""
  return str(tmp_path_factory.mktemp("tfds"))


@pytest.mark.parametrize("spec", SMOKE_SPECS)
def test_smoke_config_trains_and_writes_error_analysis(spec, smoke_data_dir, tmp_path):
  """Each smoke run also holds a style out and tests on it, as a second test split."""
  config = config_lib.load(os.path.join(REPO, spec))
  config.data.dir = smoke_data_dir
  config_lib.override(config, "data.clocks.held_out", ("dial=ellipse",))
  config_lib.override(config, "data.extra_tests", ("test_styles",))
  results = train.run(config, str(tmp_path))
  with open(tmp_path / "results.json") as f:
    assert json.load(f) == json.loads(json.dumps(results))
  for split, analysis_dir in (("test", tmp_path), ("test_styles", tmp_path / "test_styles")):
    test = results[split]
    for key in ("error_minutes", "error_minutes_median", "error_minutes_p90"):
      assert 0 <= test[key] <= 360
    # Per-example predictions feed the analysis; their means are no metric.
    assert "predicted_minutes" not in test
    for name in ("error_histogram.png", "worst_predictions.png"):
      assert os.path.getsize(analysis_dir / name) > 1000
  assert results["test_styles"] != results["test"]
  assert results["best_validation"]["metric"] == "error_minutes"
  assert "predicted_minutes" not in results["best_validation"]["metrics"]

"""Telling the time from an analogue clock: one CNN, the label encoding chosen by config.

The study (experiments.md H) compares ways of turning a time into network outputs. Each is an
`Encoding`: how many outputs it needs, how a time becomes targets (the outputs a perfect network
would give), how outputs become a time again, and the loss between outputs and targets:

    encoding         outputs  targets                             decoded by
    regression       1        hours h + m/60 in [0, 12)           60 * output; plain MSE
    regression_wrap  1        the same                            the same; squared distance
                                                                  around the 12-hour circle
    classification   N        one-hot of bin floor(t N / 720)     the bin's centre; cross-entropy
    multihead        12 + 1   one-hot of h, and m / 60            argmax, and 60 * output
    multihead_periodic 12 + 2 one-hot of h, and sin, cos of the   argmax, and atan2; cross-
                              minute hand's angle                 entropy + squared error
    periodic         4        sin, cos of the hour and minute     atan2; the hour from the hour
                              hands' angles                       hand and the decoded minute
    cos_only         2        cos(pi h / 12), cos(pi m / 60)      arccos (the reports' variant)

Times are minutes t = 60 h + m in [0, 720) (hour 0 is twelve o'clock); a decoded time is
rounded to a whole minute and wrapped into [0, 720). Every encoding is scored the same way:
the common-sense error min(|dt|, 720 - |dt|) in minutes, 11:55 against 0:05 being 10 minutes.

`cos_only` is half a period on purpose: cos is invertible on [0, pi), so every time decodes
back, but 12 o'clock (h = 0) and 1 o'clock lie closest together of all hours in target space
(1 - cos(pi/12) = 0.034 apart, against 0.26 for 5 and 6), so a small output error turns 12 into
1 (the reports' "12 <-> 1 confusion bump"); and 11:59 and 0:00, a minute apart on the dial, get
targets at opposite ends of the range.

The model, the step and the preprocessing are `supervised`'s, as for classification; of the
augmentations, zoom, rotation and translation keep the time (the labels follow the dial), a flip
never does.
"""

import math
import os
from collections.abc import Callable
from typing import NamedTuple

import jax
import jax.numpy as jnp
import ml_collections
import numpy as np
import optax

from dljax.data import Splits
from dljax.errors import ConfigError
from dljax.tasks import supervised
from dljax.tasks.task import Task

MINUTES = 720  # in 12 hours: times are t = 60 h + m in [0, MINUTES)
WORST_SHOWN = 16  # test images in worst_predictions.png


class Encoding(NamedTuple):
  """A label encoding: every function works on a batch (leading axis B)."""

  width: int  # model outputs per example
  encode: Callable[[jax.Array], jax.Array]  # minutes_B (integers) -> targets_BK
  decode: Callable[[jax.Array], jax.Array]  # outputs_BK -> minutes_B (real, any range)
  loss: Callable[[jax.Array, jax.Array], jax.Array]  # outputs_BK, targets_BK -> loss_B


def task_config(encoding: str = "periodic", **overrides) -> ml_collections.ConfigDict:
  """`config.clock`: the label encoding and its knobs, all with their defaults."""
  config = ml_collections.ConfigDict(dict(
      encoding=encoding,  # a key of ENCODINGS
      classes=24,  # classification: bins of 720 / classes minutes
      # classification: soft targets, a circular Gaussian of this standard deviation in minutes
      # over the bins' centres (0 = one-hot): a bin next to the true one earns part of the credit.
      soft_minutes=0.0,
  ))
  config.update(overrides)
  return config


def common_sense_minutes(minutes_a: jax.Array, minutes_b: jax.Array) -> jax.Array:
  """Minutes between two times on a 12-hour dial, the short way round: in [0, 360]."""
  difference = jnp.abs(minutes_a - minutes_b) % MINUTES
  return jnp.minimum(difference, MINUTES - difference)


def time_minutes(hours: jax.Array, minutes: jax.Array) -> jax.Array:
  return 60 * hours + minutes


def decoded_minutes(encoding: Encoding, outputs_BK: jax.Array) -> jax.Array:
  """The decoded time, rounded to the nearest whole minute, in [0, 720)."""
  return jnp.floor(encoding.decode(outputs_BK) + 0.5) % MINUTES


# Encodings. ------------------------------------------------------------------------------------

def _squared_error(outputs_BK, targets_BK):
  return jnp.sum(jnp.square(outputs_BK - targets_BK), axis=-1)


def _encode_hours(minutes_B):
  return (minutes_B / 60.0)[:, None]


def _decode_hours(outputs_B1):
  return 60.0 * outputs_B1[:, 0]


def _squared_circular_hours(outputs_B1, targets_B1):
  """The squared common-sense error in hours: the loss does not punish 11.9 for 0.1."""
  difference_B = (outputs_B1[:, 0] - targets_B1[:, 0] + 6.0) % 12.0 - 6.0
  return jnp.square(difference_B)


def _classification(num_classes: int, soft_minutes: float) -> Encoding:
  """N bins of 720 / N minutes; a bin decodes to the middle of the whole minutes it holds.

  (For 720 bins that is the minute itself, not the bin's geometric centre half a minute later.)
  With `soft_minutes` > 0 the targets are a circular Gaussian over the bins' centres around the
  true time instead of one-hot, so the loss knows which wrong bins are nearly right.
  """
  first_K = -(-np.arange(num_classes + 1) * MINUTES // num_classes)  # ceil(k * 720 / N)
  centre_K = jnp.asarray((first_K[:-1] + first_K[1:] - 1) / 2.0, jnp.float32)

  def encode(minutes_B):
    if not soft_minutes:
      return jax.nn.one_hot(minutes_B * num_classes // MINUTES, num_classes)
    distance_BK = common_sense_minutes(minutes_B[:, None], centre_K)
    return jax.nn.softmax(-0.5 * jnp.square(distance_BK / soft_minutes), axis=-1)

  return Encoding(width=num_classes, encode=encode,
                  decode=lambda logits_BK: centre_K[jnp.argmax(logits_BK, axis=-1)],
                  loss=optax.softmax_cross_entropy)


def _encode_multihead(minutes_B):
  return jnp.concatenate([jax.nn.one_hot(minutes_B // 60, 12),
                          (minutes_B % 60 / 60.0)[:, None]], axis=-1)


def _decode_multihead(outputs_B13):
  minute_B = jnp.clip(60.0 * outputs_B13[:, 12], 0.0, 59.0)
  return 60.0 * jnp.argmax(outputs_B13[:, :12], axis=-1) + minute_B


def _multihead_loss(outputs_B13, targets_B13):
  return (optax.softmax_cross_entropy(outputs_B13[:, :12], targets_B13[:, :12])
          + jnp.square(outputs_B13[:, 12] - targets_B13[:, 12]))


def _minute_hand(minutes_B):
  """(sin, cos) of the minute hand's angle, clockwise from 12: [B, 2]."""
  angle_B = 2 * jnp.pi * (minutes_B % 60) / 60.0
  return jnp.stack([jnp.sin(angle_B), jnp.cos(angle_B)], axis=-1)


def _minute_from_hand(sin_cos_B2):
  """The minute in [0, 60) that a minute hand's (sin, cos) points at."""
  return jnp.arctan2(sin_cos_B2[:, 0], sin_cos_B2[:, 1]) * 60 / (2 * jnp.pi) % 60.0


def _encode_multihead_periodic(minutes_B):
  return jnp.concatenate([jax.nn.one_hot(minutes_B // 60, 12), _minute_hand(minutes_B)], axis=-1)


def _decode_multihead_periodic(outputs_B14):
  return 60.0 * jnp.argmax(outputs_B14[:, :12], axis=-1) + _minute_from_hand(outputs_B14[:, 12:])


def _multihead_periodic_loss(outputs_B14, targets_B14):
  """The hour as a class (the net sees both hands: 2:59 is 2, its hour hand almost at 3), the
  minute hand's angle as a point on the circle (59 and 0 are neighbours, unlike for m / 60)."""
  return (optax.softmax_cross_entropy(outputs_B14[:, :12], targets_B14[:, :12])
          + _squared_error(outputs_B14[:, 12:], targets_B14[:, 12:]))


def _encode_periodic(minutes_B):
  """(sin, cos) of the hour hand's and the minute hand's angles, clockwise from 12."""
  hour_angle_B = 2 * jnp.pi * minutes_B / MINUTES
  return jnp.concatenate([jnp.stack([jnp.sin(hour_angle_B), jnp.cos(hour_angle_B)], axis=-1),
                          _minute_hand(minutes_B)], axis=-1)


def _decode_periodic(outputs_B4):
  """The minute from the minute hand; the hour from where the hour hand would be at h:00.

  The hour hand at 2:59 points almost at 3; less the 59 minutes' worth it has moved, it points
  at 2, so 2:59 does not become 3:59.
  """
  hand_B = jnp.arctan2(outputs_B4[:, 0], outputs_B4[:, 1]) * 12 / (2 * jnp.pi)  # in hours
  minute_B = _minute_from_hand(outputs_B4[:, 2:])
  hour_B = jnp.round(hand_B - minute_B / 60.0) % 12
  return 60.0 * hour_B + minute_B


def _encode_cos_only(minutes_B):
  hour_B, minute_B = minutes_B // 60, minutes_B % 60
  return jnp.stack([jnp.cos(jnp.pi * hour_B / 12.0), jnp.cos(jnp.pi * minute_B / 60.0)], axis=-1)


def _decode_cos_only(outputs_B2):
  """arccos back into [0, pi): the nearest whole hour in 0..11, the minute in [0, 59]."""
  angle_B2 = jnp.arccos(jnp.clip(outputs_B2, -1.0, 1.0))
  hour_B = jnp.clip(jnp.round(angle_B2[:, 0] * 12 / jnp.pi), 0, 11)
  minute_B = jnp.clip(angle_B2[:, 1] * 60 / jnp.pi, 0.0, 59.0)
  return 60.0 * hour_B + minute_B


# name -> build(config.clock) -> Encoding
ENCODINGS: dict[str, Callable[[ml_collections.ConfigDict], Encoding]] = {
    "regression": lambda _: Encoding(1, _encode_hours, _decode_hours, _squared_error),
    "regression_wrap": lambda _: Encoding(1, _encode_hours, _decode_hours,
                                          _squared_circular_hours),
    # (.get: a run's config.json from before soft targets has none)
    "classification": lambda clock: _classification(clock.classes, clock.get("soft_minutes", 0.0)),
    "multihead": lambda _: Encoding(13, _encode_multihead, _decode_multihead, _multihead_loss),
    "multihead_periodic": lambda _: Encoding(14, _encode_multihead_periodic,
                                             _decode_multihead_periodic, _multihead_periodic_loss),
    "periodic": lambda _: Encoding(4, _encode_periodic, _decode_periodic, _squared_error),
    "cos_only": lambda _: Encoding(2, _encode_cos_only, _decode_cos_only, _squared_error),
}


def encoding(clock: ml_collections.ConfigDict) -> Encoding:
  """The encoding `config.clock` names; raises ConfigError for an unknown one or a bad knob."""
  if clock.encoding not in ENCODINGS:
    raise ConfigError(f"config.clock.encoding={clock.encoding!r}: unknown encoding; allowed: "
                      f"{', '.join(sorted(ENCODINGS))}")
  if clock.encoding == "classification" and not 2 <= clock.classes <= MINUTES:
    raise ConfigError(f"config.clock.classes={clock.classes}: must be in [2, {MINUTES}]")
  if clock.get("soft_minutes", 0.0) < 0:
    raise ConfigError(f"config.clock.soft_minutes={clock.soft_minutes}: must be >= 0 (0 = one-hot)")
  return ENCODINGS[clock.encoding](clock)


# The task. ---------------------------------------------------------------------------------

def validate(config: ml_collections.ConfigDict) -> None:
  """The encoding and its knobs, the model's output width, no flip."""
  code = encoding(config.clock)
  if config.model.num_classes != code.width:
    raise ConfigError(f"config.model.num_classes={config.model.num_classes}: encoding "
                      f"config.clock.encoding={config.clock.encoding!r} needs {code.width} outputs")
  if config.data.augment.flip:
    raise ConfigError(f"config.data.augment.flip={config.data.augment.flip!r}: a mirrored clock "
                      "shows another time")


def build(config: ml_collections.ConfigDict, data: Splits, total_steps: int) -> Task:
  """The Task of `config.model` reading clocks under `config.clock`."""
  validate(config)
  code = encoding(config.clock)

  def error_minutes(outputs_BK, batch):
    error_B = common_sense_minutes(decoded_minutes(code, outputs_BK), true_minutes(batch))
    return {"error_minutes": error_B.astype(jnp.float32)}

  return supervised.build(
      config, data, total_steps,
      loss=lambda outputs_BK, batch: code.loss(outputs_BK, code.encode(true_minutes(batch))),
      metrics=error_minutes,
      predictions=lambda outputs_BK, batch: {
          "predicted_minutes": decoded_minutes(code, outputs_BK).astype(jnp.float32)},
      describe=describe, analyze=analyze)


def true_minutes(batch) -> jax.Array:
  return time_minutes(batch["hour"], batch["minute"])


def describe(outputs: dict[str, np.ndarray]) -> list[dict[str, str]]:
  """The time each clock shows, as h:mm."""
  return [{"time": format_time(minutes)} for minutes in outputs["predicted_minutes"]]


# After training. -------------------------------------------------------------------------------

def analyze(state, outputs: dict[str, np.ndarray], examples: dict[str, np.ndarray],
            workdir: str) -> dict[str, float]:
  """Median and 90th-percentile test error; writes error_histogram.png, worst_predictions.png.

  The mean, which the trainer reports, hides how errors are spread: a few 12 <-> 1 or hour-hand
  confusions of 60 minutes or more weigh as much as many small misreadings.
  """
  del state  # the outputs say it all
  error_N = outputs["error_minutes"]
  true_N = np.asarray(true_minutes(examples), np.float32)
  summary = {"error_minutes_median": float(np.median(error_N)),
             "error_minutes_p90": float(np.percentile(error_N, 90))}
  _plot_errors(error_N, true_N, summary,
               os.path.join(workdir, "error_histogram.png"))
  worst_N = np.argsort(-error_N, kind="stable")[:WORST_SHOWN]
  _plot_worst(examples["image"][worst_N], true_N[worst_N],
              outputs["predicted_minutes"][worst_N], error_N[worst_N],
              os.path.join(workdir, "worst_predictions.png"))
  return summary


def format_time(minutes: float) -> str:
  """h:mm with hour 0 for twelve o'clock, as the labels are."""
  hour, minute = divmod(int(minutes), 60)
  return f"{hour}:{minute:02d}"


def _plot_errors(error_N: np.ndarray, true_N: np.ndarray, summary: dict[str, float],
                 path: str) -> None:
  """The error histogram (log counts: the tail is the story) and the mean error by true hour."""
  from matplotlib.figure import Figure  # here: at import it costs every run's start-up

  figure = Figure(figsize=(11, 3.8))
  histogram, by_hour = figure.subplots(1, 2, gridspec_kw=dict(width_ratios=(2, 1)))
  histogram.hist(error_N, bins=np.arange(0, max(float(error_N.max()), 1.0) + 2) - 0.5, log=True)
  for name, style in (("median", "--"), ("p90", ":")):
    value = summary[f"error_minutes_{name}"]
    histogram.axvline(value, color="k", linestyle=style, label=f"{name} {value:g} min")
  histogram.set_title(f"{len(error_N)} test clocks, mean error {error_N.mean():.2f} min")
  histogram.set_xlabel("common-sense error (minutes)")
  histogram.set_ylabel("clocks")
  histogram.legend()
  hour_N = (true_N // 60).astype(int)
  mean_H = [error_N[hour_N == hour].mean() if (hour_N == hour).any() else 0.0
            for hour in range(12)]
  by_hour.bar(range(12), mean_H)
  by_hour.set_xticks(range(12), ["12", *map(str, range(1, 12))])
  by_hour.set_xlabel("true hour")
  by_hour.set_ylabel("mean error (minutes)")
  figure.tight_layout()
  figure.savefig(path, dpi=100)


def plot_errors_by_style(error_N: np.ndarray, families: dict[str, np.ndarray],
                         held_out: tuple[tuple[str, str], ...], path: str) -> None:
  """Error histograms split by style family: a panel per family, a curve per value.

  `families` maps a family (clock_render.STYLE_FAMILIES) to each clock's value name, aligned
  with `error_N`; values in `held_out` (never trained on) are marked so in the legend.
  """
  columns = min(len(families), 4)
  rows = math.ceil(len(families) / columns)
  from matplotlib.figure import Figure

  figure = Figure(figsize=(4.2 * columns, 3.2 * rows))
  bins = np.linspace(0, MINUTES // 2, 37)  # 10-minute bins: a curve per value stays readable
  for ax, (family, value_N) in zip(figure.subplots(rows, columns, squeeze=False).flat,
                                   families.items(), strict=False):
    for value in sorted(set(value_N)):
      error_V = error_N[value_N == value]
      mark = " HELD OUT" if (family, value) in held_out else ""
      ax.hist(error_V, bins=bins, histtype="step", log=True,
              label=f"{value}{mark}: {len(error_V)}, mean {error_V.mean():.1f}")
    ax.set_title(family)
    ax.set_xlabel("common-sense error (minutes)")
    ax.set_ylabel("clocks")
    ax.legend(fontsize=7)
  for ax in figure.axes[len(families):]:
    ax.set_axis_off()
  figure.tight_layout()
  figure.savefig(path, dpi=100)


def _plot_worst(images_NHWC: np.ndarray, true_N: np.ndarray, predicted_N: np.ndarray,
                error_N: np.ndarray, path: str, columns: int = 8) -> None:
  rows = math.ceil(len(images_NHWC) / columns)
  cell = max(1.8, 1.1 * images_NHWC.shape[1] / 100)  # show every pixel at 100 dpi
  from matplotlib.figure import Figure

  figure = Figure(figsize=(cell * columns, (cell + 0.45) * rows))
  for index, ax in enumerate(figure.subplots(rows, columns, squeeze=False).flat):
    ax.set_axis_off()
    if index < len(images_NHWC):
      ax.imshow(images_NHWC[index, :, :, 0], cmap="gray", vmin=0, vmax=255,
                interpolation="nearest")
      ax.set_title(f"true {format_time(true_N[index])}\npredicted "
                   f"{format_time(predicted_N[index])} ({error_N[index]:.0f})", fontsize=8)
  figure.tight_layout()
  figure.savefig(path, dpi=100)

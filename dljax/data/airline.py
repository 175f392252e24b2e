"""The airline passengers series as windows (`data.name='airline_passengers'`, family C).

The CSV (`"Month","Passengers"`, 144 months 1949-1960, thousands of passengers) is split in
time: the first `1 - test_fraction` of the months train, the rest test (the course: first 70%
= 100 months, last 44). Values are MinMax-scaled to [0, 1] with the train part's minimum and
maximum only (the course fitted the scaler on all data, which lets the test set's range leak
into training). Each part is cut into windows, as the Keras tutorial's `create_dataset`: the
`window` previous months (`window` [W]) predict the next (`target`), every start within the
part (the tutorial's loop also dropped each part's last window, `range(len - W - 1)`).

Read into memory: 144 numbers. Examples: {'window': float32 [W], 'target': float32, 'month':
int32, the index of the target month in the series}.
"""

import csv
import functools

import ml_collections
import numpy as np

from dljax.errors import ConfigError, DataError

NAME = "airline_passengers"

# `config.data.airline`: which file, which window, which split.
OPTIONS = dict(
    path="../shared/data/airline-passengers/airline-passengers.csv",
    window=10,  # previous months per prediction
    test_fraction=0.3,  # the last fraction of the months, held out
)


def options(config: ml_collections.ConfigDict) -> dict:
  """`config.data.airline` with its defaults; a one-line ConfigError for a bad value."""
  given = dict(config.get("airline", {}))
  unknown = set(given) - set(OPTIONS)
  if unknown:
    raise ConfigError(f"config.data.airline.{sorted(unknown)[0]}: unknown key; allowed: "
                      f"{', '.join(sorted(OPTIONS))}")
  values = {**OPTIONS, **given}
  if values["window"] < 1:
    raise ConfigError(f"config.data.airline.window={values['window']}: must be >= 1")
  if not 0 < values["test_fraction"] < 1:
    raise ConfigError(f"config.data.airline.test_fraction={values['test_fraction']}: must be "
                      "in (0, 1)")
  return values


@functools.lru_cache(maxsize=4)
def read_series(path: str) -> np.ndarray:
  """The passengers column of the CSV, in file order, as float64."""
  try:
    with open(path, newline="") as f:
      rows = list(csv.reader(f))
  except OSError as e:
    raise DataError(f"{path}: cannot read the series: {e.strerror}") from e
  try:
    values = np.array([float(row[1]) for row in rows[1:] if row], np.float64)
  except (IndexError, ValueError) as e:
    raise DataError(f"{path}: not a 'Month,Passengers' CSV: {e}") from e
  if not len(values):
    raise DataError(f"{path}: the series is empty")
  return values


def parts(values: dict) -> tuple[np.ndarray, np.ndarray, int]:
  """(train months, test months, index of the first test month) of the series."""
  series = read_series(values["path"])
  cut = len(series) - round(values["test_fraction"] * len(series))
  train, test = series[:cut], series[cut:]
  shortest = min(len(train), len(test))
  if values["window"] >= shortest:
    raise ConfigError(f"config.data.airline.window={values['window']}: longer than the series "
                      f"allows: the {'train' if len(train) == shortest else 'test'} part has "
                      f"{shortest} months, a window needs at least one more")
  return train, test, cut


def scaling(values: dict) -> tuple[float, float]:
  """(minimum, maximum) of the train part: x -> (x - minimum) / (maximum - minimum)."""
  train, _, _ = parts(values)
  return float(train.min()), float(train.max())


def windows(part: np.ndarray, window: int, first_month: int,
            scale: tuple[float, float]) -> dict[str, np.ndarray]:
  """Every `window` consecutive scaled months of `part` and the month after them."""
  low, high = scale
  scaled = ((part - low) / (high - low)).astype(np.float32)
  starts = np.arange(len(part) - window)
  return {"window": np.stack([scaled[s: s + window] for s in starts]),
          "target": scaled[starts + window],
          "month": (first_month + starts + window).astype(np.int32)}


def load(config: ml_collections.ConfigDict) -> dict[str, dict[str, np.ndarray]]:
  """`DATASETS` loader: the train and test windows, scaled by the train part."""
  values = options(config)
  train, test, cut = parts(values)
  scale = scaling(values)
  return {"train": windows(train, values["window"], 0, scale),
          "test": windows(test, values["window"], cut, scale)}

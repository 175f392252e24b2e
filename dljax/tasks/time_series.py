"""One-step-ahead regression of a series from its previous months (the airline tutorial, family C).

The model (`lstm_regressor`) reads a window of W scaled months and predicts the next one; the
loss is the MSE in scaled units (the tutorial's). Metrics over a split: `loss`, and `rmse`, the
root of the mean squared error back in the CSV's unit (thousands of passengers), counted as a
ratio of sums (sqrt(sum of squares / count), not a mean of batch RMSEs). After testing,
`analyze` predicts every train and test window and writes predictions.png (the series and both
parts' predictions against the month) and predictions.json, and adds the train RMSE to the test
metrics.
"""

import json
import os

import jax
import ml_collections
import numpy as np

from dljax import models
from dljax.data import Splits, airline
from dljax.tasks import sequence
from dljax.tasks.task import Task


def validate(config: ml_collections.ConfigDict) -> None:
  airline.options(config.data)


def finalize(totals: dict, count) -> dict:
  return {"loss": totals["squared_error"] / count,
          "rmse": (totals["squared_error_passengers"] / count) ** 0.5}


def build(config: ml_collections.ConfigDict, data: Splits, total_steps: int) -> Task:
  """The Task of `config.model` on `config.data.airline`'s windows."""
  del data
  values = airline.options(config.data)
  train, test, cut = airline.parts(values)
  low, high = airline.scaling(values)
  model = models.build(config.model)

  def squared_errors(outputs_B1, batch):
    error_B = outputs_B1[:, 0] - batch["target"]
    return {"squared_error": error_B ** 2,
            "squared_error_passengers": (error_B * (high - low)) ** 2}

  def predict(state, batch, rng):
    del rng
    outputs_B1 = model.apply({"params": state.params}, batch["window"])
    return {"passengers": outputs_B1[:, 0] * (high - low) + low}

  def analyze(state, outputs, examples, workdir):
    del outputs, examples
    series = np.concatenate([train, test])
    predicted = {}
    for name, part, first in (("train", train, 0), ("test", test, cut)):
      part_windows = airline.windows(part, values["window"], first, (low, high))
      passengers = np.asarray(jax.jit(predict)(state, part_windows, None)["passengers"])
      predicted[name] = (part_windows["month"], passengers)
    rmse = {f"{name}_rmse": float(np.sqrt(np.mean((passengers - series[months]) ** 2)))
            for name, (months, passengers) in predicted.items()}
    plot_predictions(series, predicted, values["window"], rmse,
                     os.path.join(workdir, "predictions.png"))
    with open(os.path.join(workdir, "predictions.json"), "w") as f:
      json.dump({**rmse, **{name: {"month": months.tolist(), "passengers": p.tolist()}
                            for name, (months, p) in predicted.items()}}, f)
    return {"train_rmse": rmse["train_rmse"]}

  return sequence.build(config, total_steps, inputs=lambda batch: batch["window"],
                        values=squared_errors, finalize=finalize, predict=predict,
                        analyze=analyze)


def plot_predictions(series: np.ndarray, predicted: dict, window: int, rmse: dict,
                     path: str) -> None:
  """The series and each part's predictions against the month."""
  from matplotlib.figure import Figure  # here: not in every run's start-up

  figure = Figure(figsize=(8, 3.5))
  axis = figure.subplots()
  axis.plot(np.arange(len(series)), series, color="black", label="truth")
  for name, (months, passengers) in predicted.items():
    axis.plot(months, passengers, label=f"{name} prediction (RMSE {rmse[f'{name}_rmse']:.1f})")
  axis.set_xlabel("month (0 = January 1949)")
  axis.set_ylabel("passengers (thousands)")
  axis.set_title(f"window {window}")
  axis.grid(alpha=0.3)
  axis.legend()
  figure.tight_layout()
  figure.savefig(path, dpi=100)

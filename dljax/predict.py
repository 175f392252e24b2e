"""Predictions of a trained run: `python -m dljax.predict --workdir=DIR INPUT... [--out FILE]`.

INPUT is an image file (PNG, JPEG, anything Pillow reads), a folder (its image files, sorted by
name) or a .npy array of images: [N, H, W, C], [N, H, W] (grey) or one image [H, W, C] (C = 1, 3
or 4); uint8, or floats in [0, 1], which are scaled to uint8. Every image is converted the way
the run's training images were: to their channels (grey or RGB) and, where its size differs,
resized to theirs (Pillow, bilinear, antialiased when shrinking).

Prints one CSV row per image: its name (the path, or `file.npy[i]` for an array's i-th image),
then the task's columns (classification: the class, its probability and each class's
probability; clock reading: the time as h:mm). `--out FILE` writes FILE instead: CSV, or JSON
(a list of row objects) for a .json name.

An input that cannot be read, a workdir without a run or a bad flag prints one line and exits
with status 2.
"""

import argparse
import csv
import json
import os
import sys
from collections.abc import Iterable, Iterator
from typing import Any, TextIO

import numpy as np
from absl import logging
from PIL import Image

from dljax import inference
from dljax.errors import ConfigError, DataError, exit_status

MODES = {1: "L", 3: "RGB"}  # the channels of a run's images -> the Pillow mode they are read in
ARRAY_CHANNELS = (1, 3, 4)  # of images in a .npy: grey, RGB, RGBA
OUTPUT_FORMATS = (".csv", ".json")
Shape = tuple[int, int, int]  # height, width, channels


def input_files(inputs: Iterable[str]) -> list[str]:
  """The files the command line names: files as given, folders as their image files by name.

  Raises:
    DataError: an input does not exist, or is a folder without image files.
  """
  image_extensions = Image.registered_extensions()
  files = []
  for path in inputs:
    if os.path.isdir(path):
      found = sorted(name for name in os.listdir(path)
                     if _extension(name) in image_extensions
                     and os.path.isfile(os.path.join(path, name)))
      if not found:
        raise DataError(f"{path}: a folder without image files")
      files.extend(os.path.join(path, name) for name in found)
    elif os.path.isfile(path):
      files.append(path)
    else:
      raise DataError(f"{path}: no such file or folder")
  return files


def read_images(files: Iterable[str], shape: Shape) -> Iterator[tuple[str, np.ndarray]]:
  """(name, uint8 image of `shape`) for each image of `files`, read as they are asked for.

  Raises:
    DataError: a file is neither an image Pillow reads nor a .npy array of images.
  """
  for path in files:
    if path.endswith(".npy"):
      for index, image in enumerate(_array_images(path)):
        yield f"{path}[{index}]", image if image.shape == shape else _conform(
            Image.fromarray(image[..., 0] if image.shape[-1] == 1 else image), shape)
    else:
      yield path, _read_image(path, shape)


def _read_image(path: str, shape: Shape) -> np.ndarray:
  try:
    with Image.open(path) as image:
      return _conform(image, shape)
  except (OSError, ValueError, Image.DecompressionBombError) as error:
    raise DataError(f"{path}: not an image Pillow can read ({type(error).__name__}); inputs are "
                    "image files, folders of them or .npy arrays") from None


def _conform(image: Image.Image, shape: Shape) -> np.ndarray:
  """`image` in the mode and size of the run's images, as a uint8 array [H, W, C]."""
  height, width, channels = shape
  image = image.convert(MODES[channels])
  if image.size != (width, height):
    image = image.resize((width, height), Image.Resampling.BILINEAR)
  return np.asarray(image, np.uint8).reshape(shape)


def _array_images(path: str) -> np.ndarray:
  """The images of a .npy file as uint8 [N, H, W, C].

  A 3-D array is one image [H, W, C] when its last axis is 1, 3 or 4 long, else N grey images.
  """
  try:
    array = np.load(path)
  except (OSError, ValueError) as error:
    raise DataError(f"{path}: not a readable .npy array ({type(error).__name__})") from None
  if array.ndim == 3:
    array = array[None] if array.shape[-1] in ARRAY_CHANNELS else array[..., None]
  if array.ndim != 4 or array.shape[-1] not in ARRAY_CHANNELS:
    raise DataError(f"{path}: an array of shape {list(array.shape)}; allowed: [N, H, W, C], "
                    f"[N, H, W] or one image [H, W, C], C in {ARRAY_CHANNELS}")
  if np.issubdtype(array.dtype, np.floating):
    if not np.all((array >= 0) & (array <= 1)):  # NaN fails both
      raise DataError(f"{path}: float images must lie in [0, 1]; these span "
                      f"[{np.min(array)}, {np.max(array)}]")
    return np.round(array * 255).astype(np.uint8)
  if array.dtype != np.uint8:
    raise DataError(f"{path}: images of dtype {array.dtype}; allowed: uint8, or floats in [0, 1]")
  return array


def image_shape(run: inference.TrainedRun) -> Shape:
  """The (height, width, channels) of the images `run` was trained on."""
  spec = run.example_spec.get("image")
  if spec is None:
    raise ConfigError(f"{run.workdir}: task {run.config.task!r} takes no images")
  shape = tuple(spec["shape"])
  if len(shape) != 3 or shape[-1] not in MODES:
    raise ConfigError(f"{run.workdir}: its images are {list(shape)}; dljax.predict reads images "
                      f"into [H, W, C] with C in {tuple(MODES)}")
  return shape


def predictions(run: inference.TrainedRun, named_images: Iterable[tuple[str, np.ndarray]],
                batch_size: int) -> list[dict[str, Any]]:
  """One row per image: its name under 'input', then the task's description of its outputs."""
  rows = []
  for batch in _batches(named_images, batch_size):
    names, images = zip(*batch, strict=True)
    described = run.describe(run.predict(np.stack(images)))
    rows.extend({"input": name, **row} for name, row in zip(names, described, strict=True))
  return rows


def _batches(items: Iterable[Any], size: int) -> Iterator[list[Any]]:
  batch = []
  for item in items:
    batch.append(item)
    if len(batch) == size:
      yield batch
      batch = []
  if batch:
    yield batch


def write_csv(rows: list[dict[str, Any]], stream: TextIO) -> None:
  """`rows` as CSV, floats to 6 significant digits (float32 outputs hold about 7)."""
  writer = csv.DictWriter(stream, fieldnames=list(rows[0]) if rows else ["input"])
  writer.writeheader()
  writer.writerows({name: f"{value:.6g}" if isinstance(value, float) else value
                    for name, value in row.items()} for row in rows)


def write(rows: list[dict[str, Any]], out: str | None) -> None:
  """`rows` to stdout as CSV, or to `out`: JSON for a .json name, else CSV."""
  if out is None:
    write_csv(rows, sys.stdout)
    return
  try:
    with open(out, "w", newline="") as f:
      if _extension(out) == ".json":
        json.dump(rows, f, indent=2)
      else:
        write_csv(rows, f)
  except OSError as error:
    raise ConfigError(f"--out={out}: cannot be written ({error.strerror})") from None


def _extension(path: str) -> str:
  return os.path.splitext(path)[1].lower()


def main(argv: list[str] | None = None) -> int:
  """Predicts for the inputs `argv` names (default: sys.argv[1:]); returns the exit status."""
  parser = argparse.ArgumentParser(prog="python -m dljax.predict", description=__doc__,
                                   formatter_class=argparse.RawDescriptionHelpFormatter)
  parser.add_argument("inputs", nargs="+", metavar="INPUT",
                      help="image files, folders of image files, .npy arrays of images")
  parser.add_argument("--workdir", required=True, help="the workdir of a trained run")
  parser.add_argument("--out", metavar="FILE", help="write FILE (.csv or .json) instead of "
                                                    "printing CSV")
  parser.add_argument("--batch_size", type=int, default=256, help="images predicted at once")
  args = parser.parse_args(argv)
  # Orbax warns through absl about metadata it then finds elsewhere; errors still show.
  logging.set_verbosity(logging.ERROR)

  def work() -> None:
    if args.batch_size <= 0:
      raise ConfigError(f"--batch_size={args.batch_size}: must be > 0")
    if args.out is not None and _extension(args.out) not in OUTPUT_FORMATS:
      raise ConfigError(f"--out={args.out}: allowed: a {' or '.join(OUTPUT_FORMATS)} file")
    files = input_files(args.inputs)
    run = inference.load(args.workdir)
    rows = predictions(run, read_images(files, image_shape(run)), args.batch_size)
    write(rows, args.out)

  return exit_status("dljax", work)


if __name__ == "__main__":
  sys.exit(main())

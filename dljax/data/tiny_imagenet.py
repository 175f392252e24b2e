"""Tiny ImageNet (200 classes, 64x64 RGB) as a TFDS data set, prepared offline from its files.

`python -m dljax.data prepare tiny_imagenet --from PATH` reads the official `tiny-imagenet-200`
layout, a folder or its zip (wnids.txt, words.txt, train/<wnid>/images/<wnid>_<k>.JPEG,
val/images/*.JPEG with val/val_annotations.txt), decodes the JPEGs with Pillow (no tensorflow;
grayscale ones made RGB) and writes three splits, as the Imperial coursework split it:

    train       per class, the images before the last tenth by number k: 0..449 of 500
    validation  per class, the last tenth: 450..499 (the subset's 57 a class: 51..56)
    test        the official val images, labelled by val_annotations.txt

Counts come from the files present, so a subset (../shared/data/tiny-imagenet: 57 train images
a class, 2,000 val images) prepares the same way. Label i is wnids.txt's i-th class; its name is
that wnid's line in words.txt. Images are stored as raw bytes (as `clocks`: no PNG encoding,
which TFDS would need tensorflow for), in the order above (TFDS's shuffle is off). A JPEG that
does not decode stops the preparation with one line naming it. Use `data.validation='dataset'`
to validate on the validation split.
"""

import io
import os
import re
import time
import types
import zipfile
from collections.abc import Iterator
from typing import Any, ClassVar

import ml_collections
import numpy as np
import tensorflow_datasets as tfds
from PIL import Image

from dljax.data import prepare as prepare_lib
from dljax.data import tfds_io
from dljax.errors import DataError

NAME = "tiny_imagenet"
SIZE = 64
SPLITS = ("train", "validation", "test")
VALIDATION_FRACTION = 0.1  # the last tenth of each class's train images
_TRAIN_IMAGE = re.compile(r"train/(n\d+)/images/\1_(\d+)\.JPEG$")


class Files:
  """The files of a tiny-imagenet-200 folder or zip, by their path under its top folder."""

  def __init__(self, path: str):
    self.path = path
    if zipfile.is_zipfile(path):
      self._zip = zipfile.ZipFile(path)
      names = self._zip.namelist()
    elif os.path.isdir(path):
      self._zip = None
      names = [os.path.relpath(os.path.join(root, name), path)
               for root, _, files in os.walk(path) for name in files]
    else:
      raise DataError(f"{path}: neither a folder nor a zip of tiny-imagenet-200")
    tops = [name[:-len("wnids.txt")] for name in names if name.endswith("wnids.txt")]
    if not tops:
      raise DataError(f"{path}: no wnids.txt: not the tiny-imagenet-200 layout")
    self._top = min(tops, key=len)  # e.g. 'tiny-imagenet-200/'
    self.names = [name[len(self._top):] for name in names if name.startswith(self._top)]

  def read(self, name: str) -> bytes:
    try:
      if self._zip is not None:
        return self._zip.read(self._top + name)
      with open(os.path.join(self.path, self._top, name), "rb") as f:
        return f.read()
    except (KeyError, FileNotFoundError):
      raise DataError(f"{self.where(name)}: missing (the tiny-imagenet-200 layout needs it)"
                      ) from None

  def text(self, name: str) -> list[str]:
    return self.read(name).decode("utf8").splitlines()

  def where(self, name: str) -> str:
    return os.path.join(self.path, self._top, name)


def decode(files: Files, name: str) -> np.ndarray:
  """The JPEG `name` as a 64x64x3 uint8 array (grayscale made RGB); one line if it is corrupt."""
  try:
    with Image.open(io.BytesIO(files.read(name))) as image:
      array = np.asarray(image.convert("RGB"))
  except (OSError, ValueError, SyntaxError) as error:
    raise DataError(f"{files.where(name)}: corrupt JPEG ({error})") from None
  if array.shape != (SIZE, SIZE, 3):
    raise DataError(f"{files.where(name)}: {array.shape[1]}x{array.shape[0]} pixels, Tiny "
                    f"ImageNet's are {SIZE}x{SIZE}")
  return array


def split_files(files: Files) -> tuple[list[str], dict[str, list[tuple[str, int]]]]:
  """(wnids, {split: [(file, label)]}): the classes in wnids.txt's order and each split's files,
  as the module docstring says."""
  wnids = [line.strip() for line in files.text("wnids.txt") if line.strip()]
  label_of = {wnid: label for label, wnid in enumerate(wnids)}
  per_class: dict[str, list[tuple[int, str]]] = {wnid: [] for wnid in wnids}
  for name in files.names:
    match = _TRAIN_IMAGE.match(name)
    if match and match[1] in per_class:
      per_class[match[1]].append((int(match[2]), name))
  splits: dict[str, list[tuple[str, int]]] = {split: [] for split in SPLITS}
  for wnid, numbered in per_class.items():
    if not numbered:
      raise DataError(f"{files.where('train/' + wnid)}: no images of class {wnid}")
    numbered.sort()
    num_train = len(numbered) - max(1, round(VALIDATION_FRACTION * len(numbered)))
    for position, (_, name) in enumerate(numbered):
      splits["train" if position < num_train else "validation"].append((name, label_of[wnid]))
  for line in files.text("val/val_annotations.txt"):
    fields = line.split("\t")
    if len(fields) < 2 or fields[1] not in label_of:
      raise DataError(f"{files.where('val/val_annotations.txt')}: bad line {line!r}")
    splits["test"].append((f"val/images/{fields[0]}", label_of[fields[1]]))
  return wnids, splits


def class_names(files: Files, wnids: list[str]) -> list[str]:
  """words.txt's line of each wnid ('goldfish, Carassius auratus'); the wnid where it has none."""
  words = dict(line.split("\t", 1) for line in files.text("words.txt") if "\t" in line)
  return [words.get(wnid, wnid).strip() for wnid in wnids]


class TinyImagenet(tfds.core.GeneratorBasedBuilder):
  """Tiny ImageNet, 64x64 RGB, 200 classes: train, validation and test (the official val)."""

  VERSION = tfds.core.Version("1.0.0")
  RELEASE_NOTES: ClassVar = {"1.0.0": "Prepared offline from the tiny-imagenet-200 files."}

  def __init__(self, *, source: str | None = None, **kwargs):
    """`source` is the tiny-imagenet-200 folder or zip; only preparing reads it."""
    self._files = Files(source) if source else None
    self._wnids, self._splits = split_files(self._files) if self._files else ([], {})
    super().__init__(**kwargs)

  def _info(self) -> tfds.core.DatasetInfo:
    names = class_names(self._files, self._wnids) if self._files else None
    return tfds.core.DatasetInfo(
        builder=self,
        description=__doc__.split("\n", 1)[0],
        features=tfds.features.FeaturesDict({
            "image": tfds.features.Tensor(shape=(SIZE, SIZE, 3), dtype=np.uint8,
                                          encoding=tfds.features.Encoding.BYTES),
            "label": tfds.features.ClassLabel(names=names) if names
            else tfds.features.ClassLabel(num_classes=200),
        }),
        disable_shuffling=True,
    )

  def _make_download_manager(self, download_dir, download_config):
    del download_dir, download_config  # nothing is downloaded
    return types.SimpleNamespace(downloaded_size=0)

  def _split_generators(self, dl_manager) -> dict[str, Iterator[tuple[int, dict]]]:
    del dl_manager
    return {split: self._generate_examples(split) for split in SPLITS}

  def _generate_examples(self, split: str) -> Iterator[tuple[int, dict]]:
    for index, (name, label) in enumerate(self._splits[split]):
      yield index, {"image": decode(self._files, name), "label": label}


def directory(data_dir: str | None = None) -> str:
  return os.path.join(tfds_io.data_dir(data_dir), NAME, str(TinyImagenet.VERSION))


def prepare(source: str, data_dir: str | None = None, *, force: bool = False) -> str:
  """Writes tiny_imagenet from the tiny-imagenet-200 folder or zip `source`; returns its
  directory. A prepared copy is left alone unless `force` (then replaced once the new one is
  complete).

  Raises:
    DataError: a file is missing or a JPEG is corrupt, naming it.
  """
  path = directory(data_dir)
  if prepare_lib.is_prepared(NAME, path, force):
    return path
  with prepare_lib.replacing(path):
    builder = TinyImagenet(source=source, data_dir=tfds_io.data_dir(data_dir),
                           file_format="array_record")
    print(f"Preparing {NAME} from {source} into {path}")
    start = time.perf_counter()
    builder.download_and_prepare(download_config=tfds.download.DownloadConfig(
        try_download_gcs=False))
  sizes = ", ".join(f"{split} {info.num_examples}" for split, info in builder.info.splits.items())
  print(f"Prepared {NAME} ({sizes} examples) in {time.perf_counter() - start:.1f} s: {path}")
  return path


def load(config: ml_collections.ConfigDict) -> dict[str, Any]:
  """`DATASETS` loader: the three splits as TFDS data sources."""
  path = directory(config.dir or None)
  if not os.path.isfile(os.path.join(path, "dataset_info.json")):
    raise DataError(f"{NAME} not found in {path}: prepare it from the tiny-imagenet-200 folder "
                    f"or zip: python -m dljax.data prepare {NAME} --from PATH")
  try:
    reader = tfds.builder_from_directory(path)
  except Exception as e:  # TFDS raises many kinds for an unparsable dataset_info.json
    raise tfds_io.unreadable(NAME, tfds_io.data_dir(config.dir or None), e) from e
  return {split: reader.as_data_source(split=split) for split in SPLITS}

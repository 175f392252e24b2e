"""Prepares MNIST, Fashion-MNIST and CIFAR-10 from their original files: no internet, no tensorflow.

The result is the data set a TFDS download gives (`tfds build NAME --file_format array_record`):
the catalogue builder itself does the writing, with only its download replaced by reading local
files. So name, version, features, label names, split sizes, example keys (hence the order TFDS
shuffles the examples into) and dataset_info.json are the catalogue's, and `tfds.data_source` and
`tfds_io.read_split` read the result as if it had been downloaded. Images are stored as PNG like
the catalogue's, encoded with Pillow because TFDS needs tensorflow to encode numpy arrays.

TFDS writes into a temporary directory that it renames to NAME/VERSION when, and only when,
everything is written: an interrupted preparation leaves nothing that looks prepared. Preparing
again over a prepared copy (`force`) keeps the old copy aside until the new one is complete.
"""

import contextlib
import io
import os
import shutil
import time
import types
from collections.abc import Iterator

import numpy as np
import tensorflow_datasets as tfds
from PIL import Image

from dljax.data import raw, tfds_io
from dljax.errors import DataError


def prepare(name: str, source_dir: str, data_dir: str | None = None, *, force: bool = False,
            partial: bool = False) -> str:
  """Writes TFDS data set `name` from the original files in `source_dir`; returns its directory.

  `data_dir` is resolved like every reader resolves it (`tfds_io.data_dir`). A data set that is
  already prepared there is left alone, unless `force`: then it is prepared again, the old copy
  kept until the new one is complete (`replacing`). Splits of a size other than the TFDS
  catalogue's are refused unless `partial` (tiny test data sets): training would take them for
  `name`.

  Raises:
    DataError: the original files are missing or corrupt, do not fit `name`'s features, or hold
      a split of another size than the catalogue's (without `partial`).
  """
  if name not in raw.ORIGINALS:
    raise DataError(f"cannot prepare {name!r} offline: only {', '.join(raw.ORIGINALS)}")
  data_dir = tfds_io.data_dir(data_dir)
  version = tfds.builder_cls(name).VERSION
  path = os.path.join(data_dir, name, str(version))
  if is_prepared(f"{name} {version}", path, force):
    return path
  with replacing(path):
    builder = _offline_builder(name, source_dir, data_dir, partial)
    print(f"Preparing {name} {version} from {source_dir} into {path}")
    start = time.perf_counter()
    # Without a download, asking GCS for a prepared copy would only wait for the network.
    builder.download_and_prepare(download_config=tfds.download.DownloadConfig(
        try_download_gcs=False))
  sizes = ", ".join(f"{split} {info.num_examples}" for split, info in builder.info.splits.items())
  print(f"Prepared {name} {version} ({sizes} examples) in "
        f"{time.perf_counter() - start:.1f} s: {path}")
  return path


def is_prepared(label: str, path: str, force: bool) -> bool:
  """Whether the data set `label` is prepared at `path` and stays (not `force`): then says so."""
  if force or not os.path.exists(path):
    return False
  print(f"{label} is already prepared in {path}: nothing to do (--force prepares it again)")
  return True


@contextlib.contextmanager
def replacing(path: str) -> Iterator[None]:
  """Moves a prepared data set at `path` aside while the body prepares it anew there: deleted
  when the body succeeds, put back when it fails, so that a failed forced preparation leaves the
  old copy. (TFDS's own overwrite deletes the old copy first.) A copy left aside by a killed
  preparation is put back by the next failing one, or deleted by the next succeeding one.
  """
  aside = path + ".replaced"
  if os.path.exists(path):
    shutil.rmtree(aside, ignore_errors=True)
    os.rename(path, aside)
  try:
    yield
  except BaseException:
    if os.path.exists(aside) and not os.path.exists(path):
      os.rename(aside, path)
    raise
  shutil.rmtree(aside, ignore_errors=True)


def _offline_builder(name: str, source_dir: str, data_dir: str,
                     partial: bool) -> tfds.core.GeneratorBasedBuilder:
  """Returns the catalogue builder of `name`, changed to read the original files in `source_dir`
  (splits of other sizes than the catalogue's only if `partial`)."""
  catalogue_cls = tfds.builder_cls(name)
  originals = raw.ORIGINALS[name]

  class OfflineBuilder(catalogue_cls, skip_registration=True):
    # The catalogue's name and module: dataset_info.json records both, and readers find the
    # data set by name.
    __module__ = catalogue_cls.__module__
    name = catalogue_cls.name

    def _make_download_manager(self, download_dir, download_config):
      # Nothing is downloaded. TFDS records the manager's `downloaded_size` in dataset_info.json:
      # report the catalogue's download. (The real manager would also look up url checksums,
      # which fails in TFDS 4.9.10 when `importlib_resources` is not installed.)
      del download_dir, download_config
      return types.SimpleNamespace(downloaded_size=originals.download_size)

    def _split_generators(self, dl_manager):
      del dl_manager
      splits = originals.read(source_dir)
      if originals.label_names:
        self.info.features["label"].names = list(originals.label_names)
      with_id = "id" in self.info.features
      for split, (images, labels) in splits.items():
        _check_split(name, split, images, labels, self.info.features,
                     originals.num_examples[split], partial)
      return {split: _examples(split, images, labels, with_id)
              for split, (images, labels) in splits.items()}

  return OfflineBuilder(data_dir=data_dir, file_format="array_record")


def _examples(split: str, images: np.ndarray, labels: np.ndarray,
              with_id: bool) -> Iterator[tuple[int, dict]]:
  """Yields what the catalogue builders yield: the index as key (TFDS shuffles by key) and, for
  CIFAR-10, an 'id' like 'train_00042'."""
  for index, (image, label) in enumerate(zip(images, labels, strict=True)):
    example = {"image": _encode_png(image), "label": int(label)}
    if with_id:
      example["id"] = f"{split}_{index:05d}"
    yield index, example


def _encode_png(image: np.ndarray) -> bytes:
  buffer = io.BytesIO()
  Image.fromarray(image).save(buffer, format="png")
  return buffer.getvalue()


def _check_split(name: str, split: str, images: np.ndarray, labels: np.ndarray,
                 features: tfds.features.FeaturesDict, catalogue_size: int, partial: bool) -> None:
  """Raises DataError unless the images and labels fit the catalogue's features, and the split
  has the catalogue's size or `partial` allows another (then warns: tiny test data sets are
  fine, but are not `name`)."""
  shape = (*images.shape[1:], 1) if images.ndim == 3 else images.shape[1:]
  if shape != features["image"].shape:
    raise DataError(f"{name} {split}: images are {'x'.join(map(str, shape))}, {name} needs "
                    f"{'x'.join(map(str, features['image'].shape))}")
  num_classes = features["label"].num_classes
  if len(labels) and labels.max() >= num_classes:
    raise DataError(f"{name} {split}: label {labels.max()} found, {name} has {num_classes} classes")
  if len(labels) != catalogue_size:
    sizes = (f"{name} {split} has {len(labels)} examples, the TFDS catalogue's has "
             f"{catalogue_size}")
    if not partial:
      raise DataError(f"{sizes}: not {name}; --partial prepares it anyway (e.g. a test subset)")
    print(f"Warning: {sizes} (--partial)")

"""Prepares MNIST, Fashion-MNIST and CIFAR-10 from their original files: no internet, no tensorflow.

The result is the data set a TFDS download gives (`tfds build NAME --file_format array_record`):
the catalogue builder itself does the writing, with only its download replaced by reading local
files. So name, version, features, label names, split sizes, example keys (hence the order TFDS
shuffles the examples into) and dataset_info.json are the catalogue's, and `tfds.data_source` and
`tfds_io.read_split` read the result as if it had been downloaded. Images are stored as PNG like
the catalogue's, encoded with Pillow because TFDS needs tensorflow to encode numpy arrays.

TFDS writes into a temporary directory that it renames to NAME/VERSION when, and only when,
everything is written: an interrupted preparation leaves nothing that looks prepared.
"""

import io
import time
import types
from collections.abc import Iterator

import numpy as np
import tensorflow_datasets as tfds
from PIL import Image

from dljax.data import raw, tfds_io
from dljax.errors import DataError


def prepare(name: str, source_dir: str, data_dir: str | None = None) -> str:
  """Writes TFDS data set `name` from the original files in `source_dir`; returns its directory.

  `data_dir` is resolved like every reader resolves it (`tfds_io.data_dir`). A data set that is
  already prepared there is left alone.

  Raises:
    DataError: the original files are missing or corrupt, or do not fit `name`'s features.
  """
  if name not in raw.ORIGINALS:
    raise DataError(f"cannot prepare {name!r} offline: only {', '.join(raw.ORIGINALS)}")
  builder = _offline_builder(name, source_dir, tfds_io.data_dir(data_dir))
  if builder.is_prepared():
    print(f"{name} {builder.version} is already prepared in {builder.data_dir}: nothing to do")
    return builder.data_dir
  print(f"Preparing {name} {builder.version} from {source_dir} into {builder.data_dir}")
  start = time.perf_counter()
  # Without a download, asking GCS for a prepared copy would only wait for the network.
  builder.download_and_prepare(download_config=tfds.download.DownloadConfig(
      try_download_gcs=False))
  sizes = ", ".join(f"{split} {info.num_examples}" for split, info in builder.info.splits.items())
  print(f"Prepared {name} {builder.version} ({sizes} examples) in "
        f"{time.perf_counter() - start:.1f} s: {builder.data_dir}")
  return builder.data_dir


def _offline_builder(name: str, source_dir: str,
                     data_dir: str) -> tfds.core.GeneratorBasedBuilder:
  """Returns the catalogue builder of `name`, changed to read the original files in `source_dir`."""
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
                     originals.num_examples[split])
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
                 features: tfds.features.FeaturesDict, catalogue_size: int) -> None:
  """Raises DataError unless the images and labels fit the catalogue's features; warns if the
  split's size is not the catalogue's (tiny test data sets are fine, but are not `name`)."""
  shape = (*images.shape[1:], 1) if images.ndim == 3 else images.shape[1:]
  if shape != features["image"].shape:
    raise DataError(f"{name} {split}: images are {'x'.join(map(str, shape))}, {name} needs "
                    f"{'x'.join(map(str, features['image'].shape))}")
  num_classes = features["label"].num_classes
  if len(labels) and labels.max() >= num_classes:
    raise DataError(f"{name} {split}: label {labels.max()} found, {name} has {num_classes} classes")
  if len(labels) != catalogue_size:
    print(f"Warning: {name} {split} has {len(labels)} examples, the TFDS catalogue's has "
          f"{catalogue_size}")

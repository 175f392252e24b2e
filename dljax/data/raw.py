"""Readers of the original files of MNIST, Fashion-MNIST and CIFAR-10, and what else they imply.

`python -m dljax.data prepare` turns these files into TFDS data sets without internet. The readers
check every header and byte count, so that a truncated or corrupt file stops the preparation with
a message naming the file instead of producing a data set with missing or shifted examples.
"""

import dataclasses
import gzip
import lzma
import math
import os
import zipfile
import zlib
from collections.abc import Callable, Iterable

import numpy as np

from dljax.errors import DataError

Split = tuple[np.ndarray, np.ndarray]  # (images, labels) of one split, in the original order

_GZIP_MAGIC = b"\x1f\x8b"
_IDX_UINT8 = 0x08
_IDX_MAGIC = {2049: "labels", 2051: "images"}  # uint8 with 1 dim, uint8 with 3 dims
_IDX_FILES = {  # split: (images, labels), as MNIST and Fashion-MNIST distribute them
    "train": ("train-images-idx3-ubyte.gz", "train-labels-idx1-ubyte.gz"),
    "test": ("t10k-images-idx3-ubyte.gz", "t10k-labels-idx1-ubyte.gz"),
}
_CIFAR10_FILES = {  # split: parts, concatenated in this order (train parts = data_batch_1..5)
    "train": tuple(f"cifar10-train-{part}.npz" for part in range(1, 6)),
    "test": ("cifar10-test.npz",),
}


def read_idx(path: str) -> np.ndarray:
  """Returns the uint8 array in an IDX file (MNIST's format), gzip-compressed or plain.

  Only what MNIST-like data sets use is accepted: dtype code 0x08 (unsigned byte) with 1 dim
  (labels, magic number 2049) or 3 dims (images, magic number 2051). The array is a read-only
  view of the file's bytes.

  Raises:
    DataError: naming the file and what is wrong with it (truncated, bad magic number, ...).
  """
  data = _read_maybe_gzip(path)
  if len(data) < 4:
    raise DataError(f"{path}: truncated: {len(data)} bytes, too short for an IDX header")
  if data[:2] == b"\0\0" and data[2] != _IDX_UINT8:
    raise DataError(f"{path}: IDX dtype code 0x{data[2]:02x}: only 0x08 (unsigned byte) is "
                    "supported")
  magic = int.from_bytes(data[:4], "big")
  if magic not in _IDX_MAGIC:
    raise DataError(f"{path}: not an IDX file of bytes: magic number {magic} (0x{magic:08x}), "
                    "expected 2049 (labels) or 2051 (images)")
  ndim = data[3]
  header_size = 4 + 4 * ndim
  if len(data) < header_size:
    raise DataError(f"{path}: truncated: the IDX header needs {header_size} bytes, found "
                    f"{len(data)}")
  dims = tuple(int(d) for d in np.frombuffer(data, ">u4", count=ndim, offset=4))
  expected, found = math.prod(dims), len(data) - header_size
  if found != expected:
    problem = "truncated" if found < expected else "corrupt"
    raise DataError(f"{path}: {problem}: header says {'x'.join(map(str, dims))} = {expected} "
                    f"bytes, found {found}")
  return np.frombuffer(data, np.uint8, offset=header_size).reshape(dims)


def read_idx_splits(directory: str) -> dict[str, Split]:
  """Returns {split: (images, labels)} from the four IDX files of MNIST or Fashion-MNIST."""
  paths = _locate(directory, [name for pair in _IDX_FILES.values() for name in pair])
  splits = {}
  for split, (images_name, labels_name) in _IDX_FILES.items():
    images_path, labels_path = paths[images_name], paths[labels_name]
    images, labels = read_idx(images_path), read_idx(labels_path)
    for path, array, ndim in ((images_path, images, 3), (labels_path, labels, 1)):
      if array.ndim != ndim:  # e.g. the images and labels files swapped
        raise DataError(f"{path}: holds {_IDX_MAGIC[0x800 + array.ndim]}, expected "
                        f"{_IDX_MAGIC[0x800 + ndim]}")
    _check_counts(f"{images_path} and {labels_path}", images, labels)
    splits[split] = images, labels
  return splits


def read_cifar10_npz(directory: str) -> dict[str, Split]:
  """Returns {split: (images, labels)} from cifar10-train-1..5.npz and cifar10-test.npz.

  Each part holds `images` uint8 (N, 32, 32, 3) and `labels` uint8 (N,); the train parts are the
  original data_batch_1..5, so concatenating them in order keeps the original order.
  """
  paths = _locate(directory, [name for parts in _CIFAR10_FILES.values() for name in parts])
  splits = {}
  for split, names in _CIFAR10_FILES.items():
    parts = [_read_npz_part(paths[name]) for name in names]
    splits[split] = (np.concatenate([images for images, _ in parts]),
                     np.concatenate([labels for _, labels in parts]))
  return splits


@dataclasses.dataclass(frozen=True)
class Originals:
  """What the original files of one TFDS catalogue data set are, and what they imply."""

  read: Callable[[str], dict[str, Split]]  # directory -> {split: (images, labels)}
  files_hint: str  # stands for the --from directory in the prepare command errors suggest
  num_examples: dict[str, int]  # per split, as in the TFDS catalogue
  # Bytes the catalogue builder downloads (the sizes in its url_checksums). TFDS records this in
  # dataset_info.json; an offline preparation records the same so that the files match.
  download_size: int
  # Label names the catalogue builder reads from its download; () when they are in its code.
  label_names: tuple[str, ...] = ()


_MNIST_SIZES = {"train": 60_000, "test": 10_000}
_CIFAR10_LABEL_NAMES = ("airplane", "automobile", "bird", "cat", "deer", "dog", "frog", "horse",
                        "ship", "truck")  # batches.meta.txt of the catalogue's download
ORIGINALS = {
    "mnist": Originals(read=read_idx_splits, files_hint="DIR_WITH_IDX_FILES",
                       num_examples=_MNIST_SIZES, download_size=11_594_722),
    "fashion_mnist": Originals(read=read_idx_splits, files_hint="DIR_WITH_IDX_FILES",
                               num_examples=_MNIST_SIZES, download_size=30_878_645),
    "cifar10": Originals(read=read_cifar10_npz, files_hint="DIR_WITH_CIFAR10_NPZ_FILES",
                         num_examples={"train": 50_000, "test": 10_000},
                         download_size=170_052_171, label_names=_CIFAR10_LABEL_NAMES),
}


def _read_maybe_gzip(path: str) -> bytes:
  """Returns the bytes of `path`, decompressed if it is gzip (told by content, not by name)."""
  try:
    with open(path, "rb") as f:
      data = f.read()
  except FileNotFoundError as e:
    raise DataError(f"{path}: no such file") from e
  if data[:2] != _GZIP_MAGIC:
    return data
  try:
    return gzip.decompress(data)
  except (EOFError, OSError, zlib.error) as e:
    raise DataError(f"{path}: truncated or corrupt gzip data: {e}") from e


def _locate(directory: str, names: Iterable[str]) -> dict[str, str]:
  """Returns {name: path} for files in `directory`; a gunzipped copy `name` minus .gz will do."""
  if not os.path.isdir(directory):
    raise DataError(f"{directory}: no such directory")
  paths, missing = {}, []
  for name in names:
    candidates = [os.path.join(directory, n) for n in (name, name.removesuffix(".gz"))]
    found = [path for path in candidates if os.path.isfile(path)]
    if found:
      paths[name] = found[0]
    else:
      missing.append(name)
  if missing:
    raise DataError(f"{directory}: missing {', '.join(missing)} (the original files are needed)")
  return paths


def _read_npz_part(path: str) -> Split:
  try:
    with np.load(path) as npz:
      images, labels = npz["images"], npz["labels"]
  except KeyError as e:
    raise DataError(f"{path}: no array {e}: expected 'images' and 'labels'") from e
  except (OSError, EOFError, ValueError, zipfile.BadZipFile, zlib.error, lzma.LZMAError) as e:
    raise DataError(f"{path}: truncated or corrupt npz file: {e}") from e
  for key, array in (("images", images), ("labels", labels)):
    if array.dtype != np.uint8:
      raise DataError(f"{path}: {key} are {array.dtype}, expected uint8")
  _check_counts(path, images, labels)
  return images, labels


def _check_counts(source: str, images: np.ndarray, labels: np.ndarray) -> None:
  if labels.ndim != 1 or len(images) != len(labels):
    raise DataError(f"{source}: {len(images)} images but labels of shape {labels.shape}")

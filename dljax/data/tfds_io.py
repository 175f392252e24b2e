"""Reads TFDS data sets (prepared by a download or by `python -m dljax.data prepare`) into memory.

Reading goes through `tfds.data_source` (array_record files, no tensorflow) and decodes a whole
split at once: the image data sets used here fit in memory, and training then indexes plain
arrays. Decoding costs seconds per split (on 2 CPU cores about 5 s for the 60,000 PNGs of
MNIST's train split and 7 s for CIFAR-10's, mostly Pillow's per-image overhead), which every
run paid before its first step: more than the whole training of `mnist_speedrun`. So the first
read of a whole split keeps its decoded arrays beside the data set (`dljax_decoded/`, .npy
files, written atomically) and later reads load those, keyed by the split files' names, sizes
and modification times: data prepared again is decoded again. A data dir that is not writable
just decodes every time.
"""

import json
import os
import shlex
import tempfile

import numpy as np
import tensorflow_datasets as tfds

from dljax.data import raw
from dljax.errors import DataError

DATA_DIR_ENV = "DLJAX_DATA_DIR"


def data_dir(explicit: str | None) -> str:
  """Returns the TFDS data directory: `explicit`, else $DLJAX_DATA_DIR, else TFDS's default.

  Training and `python -m dljax.data prepare` both resolve it here, so that data prepared without
  --data_dir is where training looks for it. TFDS's default is ~/tensorflow_datasets, or
  $TFDS_DATA_DIR if set.
  """
  chosen = explicit or os.environ.get(DATA_DIR_ENV) or tfds.core.constants.DATA_DIR
  return os.path.abspath(os.path.expanduser(chosen))


_data_dir = data_dir  # the functions below have a parameter of the same name


def open_split(name: str, split: str, data_dir: str | None):
  """The random-access TFDS data source of `name[split]`: examples are decoded when read.

  The examples come in the order TFDS stored them: a fixed shuffle of the original order, the
  same after a download and after `python -m dljax.data prepare`.

  Raises:
    DataError: the data set is not in the data directory (the message says how to get it), or
      it cannot be read (damaged files, unknown split, a format that needs tensorflow, no
      examples, ...).
  """
  directory = _data_dir(data_dir)
  try:
    builder = tfds.builder(name, data_dir=directory)
  except Exception as e:  # TFDS raises many kinds for an unparsable dataset_info.json
    raise unreadable(name, directory, e) from e
  try:
    source = builder.as_data_source(split=split)
  except (ValueError, NotImplementedError) as e:
    # Asked only after a failure: `tfds.testing.mock_data` serves data sets that are not on disk.
    if not builder.is_prepared():
      raise _not_found(name, directory, builder.data_dir) from e
    raise DataError(f"cannot read {name}[{split}] from {builder.data_dir}: "
                    f"{' '.join(str(e).split())}") from e
  if not len(source):
    raise DataError(f"{name}[{split}] in {builder.data_dir} has no examples")
  return source


def read(source, keys: list[int]) -> dict[str, np.ndarray]:
  """Examples `keys` of a TFDS data source, decoded and stacked into arrays.

  Only numeric features are kept: strings (e.g. CIFAR-10's `id`) cannot live on an accelerator
  and no task uses them. A read of at least half a split (a validation hold-out takes the rest)
  goes through the split's decoded copy, made by the first such read; smaller ones decode.

  Raises:
    DataError: the data set's files are damaged (array_record raises RuntimeError for truncated,
      garbled or missing files).
  """
  # A small part (a streamed batch, a smoke run's few examples) is decoded alone, before any
  # look for a decoded copy: streaming calls this every batch and must not pay for file I/O.
  fingerprint = None if 2 * len(keys) < len(source) else _split_fingerprint(source)
  if fingerprint is None:
    return _decode(source, keys)
  cache_dir, split, files = fingerprint
  arrays = _load_decoded(cache_dir, split, files)
  if arrays is None:
    arrays = _decode(source, list(range(len(source))))
    _save_decoded(cache_dir, split, files, arrays)
  return {name: array[keys] for name, array in arrays.items()}


_DECODED_DIR = "dljax_decoded"


def _split_fingerprint(source) -> tuple[str, str, list] | None:
  """(cache folder, split, [[file name, size, mtime_ns], ...]) of a TFDS source's split files;
  None where there are none to key on (mock data, a sliced split)."""
  info = getattr(source, "dataset_info", None)
  split = getattr(source, "split", None)
  if info is None or not isinstance(split, str) or split not in info.splits:
    return None
  try:
    stats = [(os.path.basename(str(path)), os.stat(str(path)))
             for path in info.splits[split].filepaths]
  except OSError:
    return None
  files = [[name, stat.st_size, stat.st_mtime_ns] for name, stat in stats]
  return os.path.join(str(info.data_dir), _DECODED_DIR), split, files


def _load_decoded(cache_dir: str, split: str, files: list) -> dict[str, np.ndarray] | None:
  try:
    with open(os.path.join(cache_dir, f"{split}.json")) as f:
      index = json.load(f)
    if index["files"] != files:
      return None
    return {name: np.load(os.path.join(cache_dir, file_name), mmap_mode="r")
            for name, file_name in index["arrays"].items()}
  except (OSError, ValueError, KeyError):  # none yet, or unreadable: decode again
    return None


def _save_decoded(cache_dir: str, split: str, files: list,
                  arrays: dict[str, np.ndarray]) -> None:
  """Writes the arrays, then the index naming them: a reader sees the old files or the new."""
  try:
    os.makedirs(cache_dir, exist_ok=True)
    names = {}
    for name, array in arrays.items():
      names[name] = f"{split}.{name}.npy"
      _atomic_write(cache_dir, names[name], lambda f, array=array: np.save(f, array))
    _atomic_write(cache_dir, f"{split}.json", lambda f: f.write(
        json.dumps({"files": files, "arrays": names}).encode()))
  except OSError:
    pass  # a read-only data dir: the next run decodes again


def _atomic_write(directory: str, name: str, write) -> None:
  with tempfile.NamedTemporaryFile(dir=directory, prefix=f".{name}.", delete=False) as f:
    write(f)
  os.chmod(f.name, 0o644)  # as the data set's own files, not a temporary file's 0600
  os.replace(f.name, os.path.join(directory, name))


def _decode(source, keys: list[int]) -> dict[str, np.ndarray]:
  try:
    # One batched read is ~3x faster than one record at a time (5 s instead of 16 s for MNIST).
    examples = source.__getitems__(keys)
  except TypeError:  # `tfds.testing.mock_data` (TFDS 4.9.10) mocks only single-record reads
    examples = [source[key] for key in keys]
  except RuntimeError as e:
    info = source.dataset_info  # data_dir is DIRECTORY/full_name: NAME[/CONFIG]/VERSION
    raise unreadable(info.full_name.rsplit("/", 1)[0],
                     info.data_dir.removesuffix("/" + info.full_name), e) from e
  return {name: np.stack([example[name] for example in examples]) for name in examples[0]
          if is_numeric(examples[0][name])}


def is_numeric(value) -> bool:
  return np.asarray(value).dtype.kind in "biuf"


def read_split(name: str, split: str, data_dir: str | None) -> dict[str, np.ndarray]:
  """Every example of `name[split]` as numpy arrays with a leading example axis (see `read`)."""
  source = open_split(name, split, data_dir)
  return read(source, list(range(len(source))))


def unreadable(name: str, directory: str, error: Exception) -> DataError:
  """The error for data set `name` (NAME or NAME/CONFIG) in data dir `directory` whose files
  cannot be read (`error`): damaged, e.g. by a full disk or an interrupted copy. The fix is to
  make it again: by `prepare --force` for a catalogue data set, else by deleting it (the next
  run renders rendered clocks again, or says how to prepare the course's).
  """
  quoted = shlex.quote(directory)
  base = name.split("/")[0]
  if base in raw.ORIGINALS:
    fix = (f"prepare it again: python -m dljax.data prepare {base} "
           f"--from {raw.ORIGINALS[base].files_hint} --data_dir {quoted} --force")
  else:
    fix = f"delete {shlex.quote(os.path.join(directory, name))} and make it again"
  return DataError(f"{name} in {directory} cannot be read, its files may be damaged "
                   f"({type(error).__name__}: {' '.join(str(error).split())}); {fix}")


def _not_found(name: str, directory: str, looked_for: str) -> DataError:
  quoted = shlex.quote(directory)
  message = (f"{name} not found in {directory} (looked for {looked_for}). Download it with TFDS "
             f"(needs internet and tensorflow: tfds build {name} --file_format array_record "
             f"--data_dir {quoted})")
  if name in raw.ORIGINALS:
    message += (f" or prepare it offline: python -m dljax.data prepare {name} "
                f"--from {raw.ORIGINALS[name].files_hint} --data_dir {quoted}")
  return DataError(message)

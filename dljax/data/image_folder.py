"""The `image_folder` data set: a folder of images a user has (CelebA, FFHQ, butterflies, ...).

    python -m dljax.data prepare image_folder --from DIR --size 64 [--channels 3]

reads every image Pillow can open in DIR, or, where DIR holds sub-folders of images, in each
sub-folder (one class each, named after it, in sorted order; then loose images in DIR are an
error, as their class is unknown). Each image is converted to RGB (`channels` 3) or grey (1),
scaled so that its shorter side is `size` and centre-cropped to size x size (Pillow's
`ImageOps.fit`, bicubic), as face data sets are usually cut. A fixed random tenth (at least one
image) is the `test` split, the rest `train`; each split is stored in the sorted order of the
files' paths, so the same folder always gives the same data set.

Features: `image` uint8 (size, size, channels), `label` (the class; 0 for a flat folder, whose
one class is named after the folder). Stored as raw bytes, as the clocks are (clocks.py: no
tensorflow needed, fast to decode).

The data set is `image_folder/NAME_SIZEpx_Cc` in the data directory, NAME being the folder's
name (`--name` to choose another): a config reads it with

    config.data = data_config("image_folder", image_folder=dict(name="faces", size=64,
                                                                 channels=3))
"""

import dataclasses
import os
import time
import types
from collections.abc import Iterator
from typing import Any, ClassVar

import ml_collections
import numpy as np
import tensorflow_datasets as tfds
from PIL import Image, ImageOps, UnidentifiedImageError

from dljax.data import prepare, tfds_io
from dljax.errors import ConfigError, DataError

NAME = "image_folder"
SPLITS = ("train", "test")
TEST_FRACTION = 0.1
CHANNELS = {1: "L", 3: "RGB"}  # -> Pillow's mode

# `config.data.image_folder` of a config reading a prepared folder.
OPTIONS = dict(
    name="",  # the data set's name: the prepared folder's name, unless --name gave another
    size=64,  # image height and width in pixels
    channels=3,  # 3 = RGB, 1 = grey
)


@dataclasses.dataclass(eq=False)
class ImageFolderConfig(tfds.core.BuilderConfig):
  size: int = 64
  channels: int = 3
  class_names: tuple[str, ...] = ()


def config_name(options: ml_collections.ConfigDict | dict[str, Any]) -> str:
  """The builder config's name of `options`: NAME_SIZEpx_Cc; a one-line ConfigError for bad
  options."""
  unknown = sorted(set(options) - set(OPTIONS))
  if unknown:
    raise ConfigError(f"config.data.image_folder.{unknown[0]}: unknown key; allowed: "
                      f"{', '.join(OPTIONS)}")
  name, size, channels = (options.get(key, OPTIONS[key]) for key in OPTIONS)
  if not name or not all(c.isalnum() or c in "-_." for c in name):
    raise ConfigError(f"config.data.image_folder.name={name!r}: the prepared folder's name "
                      "(letters, digits, '-', '_', '.')")
  if not isinstance(size, int) or size < 8:
    raise ConfigError(f"config.data.image_folder.size={size!r}: an int >= 8")
  if channels not in CHANNELS:
    raise ConfigError(f"config.data.image_folder.channels={channels!r}: allowed: 1, 3")
  return f"{name}_{size}px_{channels}c"


class ImageFolder(tfds.core.GeneratorBasedBuilder):
  """Images of a folder, resized and centre-cropped, with their sub-folders as classes."""

  VERSION = tfds.core.Version("1.0.0")
  RELEASE_NOTES: ClassVar = {"1.0.0": "Images of a local folder, resized and centre-cropped."}

  def __init__(self, *, source_dir: str, **kwargs):
    self._source_dir = source_dir
    super().__init__(**kwargs)

  def _info(self) -> tfds.core.DatasetInfo:
    config = self.builder_config
    return tfds.core.DatasetInfo(
        builder=self,
        description=__doc__.split("\n", 1)[0],
        features=tfds.features.FeaturesDict({
            "image": tfds.features.Tensor(shape=(config.size, config.size, config.channels),
                                          dtype=np.uint8, encoding=tfds.features.Encoding.BYTES),
            "label": tfds.features.ClassLabel(names=list(config.class_names)),
        }),
        disable_shuffling=True,  # stored in the files' sorted order
    )

  def _make_download_manager(self, download_dir, download_config):
    del download_dir, download_config  # nothing is downloaded
    return types.SimpleNamespace(downloaded_size=0)

  def _split_generators(self, dl_manager) -> dict[str, Iterator[tuple[int, dict]]]:
    del dl_manager
    files = image_files(self._source_dir)[0]
    order_N = np.random.default_rng(0).permutation(len(files))
    num_test = max(round(TEST_FRACTION * len(files)), 1)
    return {"train": self._generate_examples(files, np.sort(order_N[num_test:])),
            "test": self._generate_examples(files, np.sort(order_N[:num_test]))}

  def _generate_examples(self, files: list[tuple[str, int]],
                index_N: np.ndarray) -> Iterator[tuple[int, dict]]:
    config = self.builder_config
    for index in index_N:
      path, label = files[index]
      yield int(index), {"image": read_image(path, config.size, config.channels), "label": label}


def image_files(source_dir: str) -> tuple[list[tuple[str, int]], tuple[str, ...]]:
  """([(path, class index)] sorted by path, class names) of the images under `source_dir`.

  Raises:
    DataError: no such folder, no images, or images beside class sub-folders.
  """
  if not os.path.isdir(source_dir):
    raise DataError(f"{source_dir}: no such folder")
  extensions = Image.registered_extensions()
  entries = sorted(os.listdir(source_dir))
  is_image = lambda folder, name: (os.path.splitext(name)[1].lower() in extensions
                                   and os.path.isfile(os.path.join(folder, name)))
  loose = [name for name in entries if is_image(source_dir, name)]
  classes = [name for name in entries if os.path.isdir(os.path.join(source_dir, name))
             and any(is_image(os.path.join(source_dir, name), f)
                     for f in os.listdir(os.path.join(source_dir, name)))]
  if loose and classes:
    raise DataError(f"{source_dir}: holds both images ({loose[0]}, ...) and class sub-folders "
                    f"({classes[0]}, ...); move the images into a sub-folder")
  if classes:
    files = [(os.path.join(source_dir, name, f), label)
             for label, name in enumerate(classes)
             for f in sorted(os.listdir(os.path.join(source_dir, name)))
             if is_image(os.path.join(source_dir, name), f)]
  else:
    files = [(os.path.join(source_dir, name), 0) for name in loose]
    classes = [os.path.basename(os.path.normpath(source_dir))]
  if len(files) < 2:
    raise DataError(f"{source_dir}: {len(files)} image files; need a train and a test image")
  return files, tuple(classes)


def read_image(path: str, size: int, channels: int) -> np.ndarray:
  """The image at `path` in `channels` channels, its shorter side scaled to `size` and centre-
  cropped to size x size: uint8 [size, size, channels]."""
  try:
    with Image.open(path) as image:
      image = ImageOps.fit(image.convert(CHANNELS[channels]), (size, size),
                           method=Image.Resampling.BICUBIC)
  except (OSError, UnidentifiedImageError) as error:
    raise DataError(f"{path}: not a readable image ({error})") from None
  return np.asarray(image, np.uint8).reshape(size, size, channels)


def directory(options: ml_collections.ConfigDict | dict[str, Any],
              data_dir: str | None = None) -> str:
  """Where `options`' data set lives: DATA_DIR/image_folder/CONFIG_NAME/VERSION."""
  return os.path.join(tfds_io.data_dir(data_dir), NAME, config_name(options),
                      str(ImageFolder.VERSION))


def prepare_folder(source_dir: str, data_dir: str | None = None, *, size: int = 64,
                   channels: int = 3, name: str = "", force: bool = False) -> str:
  """Writes the data set of the images in `source_dir`; returns its directory. A prepared one is
  left alone unless `force` (then the old copy is kept until the new one is complete).

  Raises:
    ConfigError: a bad size, channels or name.
    DataError: the folder holds no images, or an unreadable one.
  """
  options = dict(name=name or os.path.basename(os.path.normpath(source_dir)), size=size,
                 channels=channels)
  path = directory(options, data_dir)
  label = f"{NAME}/{config_name(options)}"
  if prepare.is_prepared(label, path, force):
    return path
  files, class_names = image_files(source_dir)
  builder_config = ImageFolderConfig(name=config_name(options), size=size, channels=channels,
                                     class_names=class_names,
                                     description=f"{len(files)} images of {source_dir}")
  with prepare.replacing(path):
    builder = ImageFolder(config=builder_config, data_dir=tfds_io.data_dir(data_dir),
                          file_format="array_record", source_dir=source_dir)
    print(f"Preparing {label} from {len(files)} images in {source_dir} into {path}")
    start = time.perf_counter()
    builder.download_and_prepare(download_config=tfds.download.DownloadConfig(
        try_download_gcs=False))
  sizes = ", ".join(f"{split} {info.num_examples}" for split, info in builder.info.splits.items())
  print(f"Prepared {label} ({sizes} examples, {len(class_names)} classes) in "
        f"{time.perf_counter() - start:.1f} s: {path}")
  return path


def load(config: ml_collections.ConfigDict) -> dict[str, Any]:
  """`DATASETS` loader: the train and test splits of `config.image_folder`'s prepared folder."""
  if "image_folder" not in config:
    raise ConfigError(f"config.data.image_folder: missing; an {NAME} data config needs "
                      f"image_folder=dict({', '.join(f'{k}={v!r}' for k, v in OPTIONS.items())})")
  path = directory(config.image_folder, config.dir or None)
  if not os.path.isfile(os.path.join(path, "dataset_info.json")):
    options = config.image_folder
    raise DataError(f"{NAME}/{config_name(options)} not found in {os.path.dirname(path)}: "
                    f"prepare it: python -m dljax.data prepare {NAME} --from DIR --size "
                    f"{options.size} --channels {options.channels} --name {options.name}")
  try:
    reader = tfds.builder_from_directory(path)
  except Exception as e:  # TFDS raises many kinds for an unparsable dataset_info.json
    raise tfds_io.unreadable(f"{NAME}/{config_name(config.image_folder)}",
                             tfds_io.data_dir(config.dir or None), e) from e
  return {split: reader.as_data_source(split=split) for split in SPLITS}

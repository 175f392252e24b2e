"""The `clocks` data set: analogue clocks and their times, as a TFDS data set (no tensorflow).

Two sources give the same features and splits:
  * 'render' (the default): clocks rendered from a seed by `clock_render`, generated on first use
    into the data directory and read from there afterwards (18,000 clocks: 21 s and 315 MB at
    150 px, 5 s at 64 px on 2 idle CPU cores, up to 4x that on busy ones; reading a 150 px
    train split into memory takes ~3 s). Image i of the data set is image i of
    `clock_render.render_clocks(seed, num_examples, size, difficulty)`.
  * 'course': the course's original files (`images.npy` (N, 150, 150) uint8, `labels.npy` (N, 2)
    int hour, minute), prepared once with `python -m dljax.data prepare clocks --from DIR`.

Features: `image` uint8 (size, size, 1), `hour` 0-11 (0 is twelve o'clock), `minute` 0-59.
Splits: `train` holds 80% of the examples and `test` the other 20%, held out: for rendered
clocks the first 80% and the last 20% of the indices (their times are independent draws); for
the course files a fixed random 20% (their order is not documented, and a contiguous tail of a
file sorted by time would test on times train never saw). Examples are stored in that order
(TFDS's shuffle is off), so test example j of a rendered data set is image 0.8 N + j.

Held-out styles (`held_out`, render only): whole style families of clock_render.STYLE_FAMILIES
(e.g. 'dial=ellipse', 'hands=lance', 'numerals=dots', 'background=texture',
'polarity=light_on_dark') never seen in training. A clock is held out if it has any of them.
Train and test then hold only the other clocks (the first N of the seed's, in index order, 80 /
20 as above, so validation has none either), and a third split, `test_styles`, as many
held-out-style clocks as test has, rendered from the same seed. Which images a split holds,
and so the style each was drawn with, follows from the seed (`split_indices`, `split_styles`):
tests prove from it that no train image has a held-out family. With nothing held out the data
set, its name and its files are exactly those of before. A run scores `test_styles` beside
`test` with `config.data.extra_tests=('test_styles',)` (the loader serves it under its name).

Images are stored as raw bytes (`tfds.features.Tensor`, encoding 'bytes'), not as PNG
(`tfds.features.Image`): TFDS needs tensorflow to encode PNGs, and encoding them with Pillow
costs ~3 ms a 150 px image, more than rendering it (~2 ms), while array_record's own compression
already stores the noisy clocks in ~78% of their raw size (PNG: 65%), and raw bytes decode 2.5x
faster than zlib-encoded tensors. ('none', TFDS's default, would store each pixel as an int64.)

Each combination of source, size, number of examples, difficulty and seed is its own builder
config (e.g. `clocks/render_64px_n18000_d1_seed0`), so data sets of different parameters never
mix. TFDS writes into a temporary directory and renames it when, and only when, everything is
written: an interrupted generation leaves nothing that looks complete. A change to what the
renderer draws must come with a new VERSION, or old data sets are reused.
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

from dljax.data import clock_render, prepare, tfds_io
from dljax.errors import ConfigError, DataError

NAME = "clocks"
TEST_SPLITS = ("test", "test_styles")
TEST_FRACTION = 0.2
SOURCES = ("render", "course")
COURSE_FILES = ("images.npy", "labels.npy")
COURSE_SIZE = 150
HOUR_NAMES = ("12", *(str(hour) for hour in range(1, 12)))  # label 0 is twelve o'clock

# `config.data.clocks` of a clock config: which clocks data set to read (or generate).
OPTIONS = dict(
    source="render",  # 'render': generated from `seed`; 'course': the prepared course files
    size=clock_render.DEFAULT_SIZE,  # image height and width in pixels (render only)
    num_examples=clock_render.DEFAULT_COUNT,  # train + test (render only)
    difficulty=1.0,  # 0 = one clean canonical clock style, 1 = the full variety (render only)
    seed=0,  # which clocks and times (render only)
    # Style families never trained on (render only), e.g. ('dial=ellipse', 'hands=lance'):
    # 'family=value' of clock_render.STYLE_FAMILIES. See "Held-out styles" above.
    held_out=(),
    # Which stored split the loader serves as 'test': 'test', or 'test_styles' (the held-out
    # styles; for `--mode=evaluate`). A run that trains scores both at once with
    # `config.data.extra_tests=('test_styles',)`.
    test_split="test",
)

# Rendered examples are generated in chunks of this many: memory stays bounded (a chunk of
# 150 px images is 23 MB) and images do not depend on the chunking.
_CHUNK = 1024
# Held-out styles: clocks searched for both kinds, at most this many per example, before the
# held-out families are declared too rare (or too common) at the difficulty.
_HELD_OUT_SEARCH = 100


@dataclasses.dataclass(eq=False)
class ClocksConfig(tfds.core.BuilderConfig):
  """One clocks data set; `config_for` names it after its parameters."""

  source: str = "render"
  size: int = clock_render.DEFAULT_SIZE
  num_examples: int = clock_render.DEFAULT_COUNT
  difficulty: float = 1.0
  seed: int = 0
  held_out: tuple[tuple[str, str], ...] = ()  # sorted (family, value) pairs


def config_for(options: ml_collections.ConfigDict | dict[str, Any]) -> ClocksConfig:
  """The builder config of `config.data.clocks`-like options; raises ConfigError if invalid."""
  unknown = set(options) - set(OPTIONS)
  if unknown:
    raise ConfigError(f"config.data.clocks.{sorted(unknown)[0]}: unknown key; allowed: "
                      f"{', '.join(sorted(OPTIONS))}")
  options = {**OPTIONS, **dict(options)}
  source = options["source"]
  if source not in SOURCES:
    raise ConfigError(f"config.data.clocks.source={source!r}: allowed: {', '.join(SOURCES)}")
  held_out = parse_held_out(options["held_out"])
  if options["test_split"] not in TEST_SPLITS:
    raise ConfigError(f"config.data.clocks.test_split={options['test_split']!r}: allowed: "
                      f"{', '.join(TEST_SPLITS)}")
  if options["test_split"] == "test_styles" and not held_out:
    raise ConfigError("config.data.clocks.test_split='test_styles': holds the held-out styles; "
                      "name them in config.data.clocks.held_out")
  if source == "course":
    if held_out:
      raise ConfigError(f"config.data.clocks.held_out={tuple(options['held_out'])!r}: only "
                        "rendered clocks have style families; the course's have none")
    return ClocksConfig(name="course", source="course", size=COURSE_SIZE,
                        description="The course's images.npy and labels.npy.")
  size, num_examples = options["size"], options["num_examples"]
  difficulty, seed = options["difficulty"], options["seed"]
  rules = ((size >= 8, "size", "must be >= 8"),
           (num_examples >= 2, "num_examples", "must be >= 2 (a train and a test example)"),
           (0 <= difficulty <= 1, "difficulty", "must be in [0, 1]"),
           (seed >= 0, "seed", "must be >= 0"))
  for holds, key, rule in rules:
    if not holds:
      raise ConfigError(f"config.data.clocks.{key}={options[key]!r}: {rule}")
  without = "+".join(f"{family}.{value}" for family, value in held_out)
  return ClocksConfig(
      name=f"render_{size}px_n{num_examples}_d{difficulty:g}_seed{seed}"
           + (f"_heldout-{without}" if held_out else ""),
      source="render", size=size, num_examples=num_examples, difficulty=float(difficulty),
      seed=seed, held_out=held_out,
      description=f"{num_examples} clocks rendered at {size} px, difficulty {difficulty:g}, "
                  f"seed {seed}" + (f", without {without}." if held_out else "."))


def parse_held_out(held_out) -> tuple[tuple[str, str], ...]:
  """`config.data.clocks.held_out` ('family=value' strings) as sorted, distinct (family, value)
  pairs of clock_render.STYLE_FAMILIES; raises a one-line ConfigError naming a bad entry."""
  allowed = ", ".join(f"{family}={value}" for family, (_, values)
                      in clock_render.STYLE_FAMILIES.items() for value in values)
  if isinstance(held_out, str) or not isinstance(held_out, tuple | list):
    raise ConfigError(f"config.data.clocks.held_out={held_out!r}: must be a tuple of "
                      f"'family=value' strings, e.g. ('dial=ellipse',); allowed: {allowed}")
  pairs = set()
  for entry in held_out:
    family, _, value = str(entry).partition("=")
    if value not in clock_render.STYLE_FAMILIES.get(family, ("", {}))[1]:
      raise ConfigError(f"config.data.clocks.held_out: {entry!r} is not a style family; "
                        f"allowed: {allowed}")
    pairs.add((family, value))
  return tuple(sorted(pairs))


class Clocks(tfds.core.GeneratorBasedBuilder):
  """Analogue clocks (image, hour, minute): rendered, or read from the course's files."""

  VERSION = tfds.core.Version("1.0.0")
  RELEASE_NOTES: ClassVar = {
      "1.0.0": "Rendered clocks (dljax.data.clock_render) and the course files."}
  BUILDER_CONFIGS: ClassVar = [config_for(OPTIONS), config_for(dict(OPTIONS, size=64)),
                               config_for(dict(source="course"))]

  def __init__(self, *, course_dir: str | None = None, **kwargs):
    """`course_dir` holds the course files; only preparing the 'course' config reads it."""
    self._course_dir = course_dir
    super().__init__(**kwargs)

  def _info(self) -> tfds.core.DatasetInfo:
    size = self.builder_config.size
    return tfds.core.DatasetInfo(
        builder=self,
        description=__doc__.split("\n", 1)[0],
        features=tfds.features.FeaturesDict({
            "image": tfds.features.Tensor(shape=(size, size, 1), dtype=np.uint8,
                                          encoding=tfds.features.Encoding.BYTES),
            "hour": tfds.features.ClassLabel(names=HOUR_NAMES),
            "minute": tfds.features.ClassLabel(num_classes=60),
        }),
        disable_shuffling=True,  # stored in index order: see the module docstring
    )

  def _make_download_manager(self, download_dir, download_config):
    # Nothing is downloaded: the real manager would only make an empty downloads directory.
    del download_dir, download_config
    return types.SimpleNamespace(downloaded_size=0)

  def _split_generators(self, dl_manager) -> dict[str, Iterator[tuple[int, dict]]]:
    del dl_manager
    config = self.builder_config
    if config.source == "course":
      if self._course_dir is None:
        raise _course_not_prepared(self.data_dir)
      images_NHW, hours_N, minutes_N = read_course(self._course_dir)
      test_N, train_N = _course_split(len(images_NHW))
      return {split: _course_examples(images_NHW, hours_N, minutes_N, index_N)
              for split, index_N in (("train", train_N), ("test", test_N))}
    return {split: self._generate_examples(index_N)
            for split, index_N in split_indices(config).items()}

  def _generate_examples(self, index_N: np.ndarray) -> Iterator[tuple[int, dict]]:
    """Renders images `index_N` (increasing) of the config's seed, a chunk at a time."""
    config = self.builder_config
    for chunk_start in range(0, len(index_N), _CHUNK):
      chunk_N = index_N[chunk_start:chunk_start + _CHUNK]
      hours_N, minutes_N, style = _times_and_styles(config, chunk_N)
      images_NHW = clock_render.render(hours_N, minutes_N, style, config.size)
      for index, image_HW, hour, minute in zip(chunk_N, images_NHW, hours_N, minutes_N,
                                               strict=True):
        yield int(index), _example(image_HW, hour, minute)


def split_indices(config: ClocksConfig) -> dict[str, np.ndarray]:
  """Which images of `render_clocks(config.seed, ...)` each stored split holds, in stored order.

  Nothing held out: train is images 0 .. 0.8 N - 1, test the rest. Styles held out: the images
  are taken in order and those of a held-out family set aside: train is the first 80% of the
  first N others, test the next 20%, and test_styles the first as many set-aside ones as test
  has. Only styles are drawn (~1 ms per 1024 clocks), nothing is rendered.

  Raises:
    ConfigError: at this difficulty, too few clocks fall in (or outside) the held-out families.
  """
  num_train = train_size(config.num_examples)
  if not config.held_out:
    return {"train": np.arange(num_train), "test": np.arange(num_train, config.num_examples)}
  num_test = config.num_examples - num_train
  kept, set_aside = [], []
  start = num_kept = num_set_aside = 0
  while num_kept < config.num_examples or num_set_aside < num_test:
    if start >= _HELD_OUT_SEARCH * config.num_examples:
      raise ConfigError(
          f"config.data.clocks.held_out={_held_out_text(config.held_out)}: at difficulty "
          f"{config.difficulty:g}, {num_set_aside} of the first {start} clocks have a held-out "
          f"style and {num_kept} not; {num_test} and {config.num_examples} are needed")
    style = clock_render.sample_styles(config.seed, start, _CHUNK, config.difficulty)
    held_N = clock_render.in_families(style, config.held_out)
    index_N = np.arange(start, start + _CHUNK)
    kept.append(index_N[~held_N])
    set_aside.append(index_N[held_N])
    num_kept, num_set_aside = num_kept + len(kept[-1]), num_set_aside + len(set_aside[-1])
    start += _CHUNK
  kept_N = np.concatenate(kept)[:config.num_examples]
  return {"train": kept_N[:num_train], "test": kept_N[num_train:],
          "test_styles": np.concatenate(set_aside)[:num_test]}


def split_styles(options: ml_collections.ConfigDict | dict[str, Any],
                 split: str) -> clock_render.ClockStyle:
  """The styles of a rendered data set's stored `split` ('train', 'test', 'test_styles'), one
  per example in stored order: what each image was drawn with, from the seed."""
  config = config_for(options)
  if config.source != "render":
    raise ConfigError(f"config.data.clocks.source={config.source!r}: only rendered clocks have "
                      "styles")
  indices = split_indices(config)
  if split not in indices:
    raise ConfigError(f"split {split!r}: {NAME}/{config.name} has {', '.join(indices)}")
  return _times_and_styles(config, indices[split])[2]


def train_size(num_examples: int) -> int:
  """Examples in the train split: all but the held-out TEST_FRACTION (at least one each)."""
  return min(max(round((1 - TEST_FRACTION) * num_examples), 1), num_examples - 1)


def builder(options: ml_collections.ConfigDict | dict[str, Any], data_dir: str | None = None,
            course_dir: str | None = None) -> Clocks:
  """The builder that writes `options`' data set into `data_dir` (resolved by tfds_io)."""
  config = config_for(options)
  # TFDS takes one of BUILDER_CONFIGS by name only, any other config as an object.
  return Clocks(config=config.name if config.name in Clocks.builder_configs else config,
                data_dir=tfds_io.data_dir(data_dir), file_format="array_record",
                course_dir=course_dir)


def directory(options: ml_collections.ConfigDict | dict[str, Any],
              data_dir: str | None = None) -> str:
  """Where `options`' data set lives: DATA_DIR/clocks/CONFIG_NAME/VERSION."""
  return os.path.join(tfds_io.data_dir(data_dir), NAME, config_for(options).name,
                      str(Clocks.VERSION))


def prepared(options: ml_collections.ConfigDict | dict[str, Any],
             data_dir: str | None = None) -> tfds.core.DatasetBuilder:
  """A reader of `options`' data set, which is generated first if it is not there yet.

  Raises:
    ConfigError: the options are invalid.
    DataError: the course files were asked for but have not been prepared, or the data set's
      files are damaged.
  """
  path = directory(options, data_dir)
  # TFDS renames the complete data set into place: once its info file is there, all of it is.
  if not os.path.isfile(os.path.join(path, "dataset_info.json")):
    clocks = builder(options, data_dir)
    config = clocks.builder_config
    if config.source == "course":
      raise _course_not_prepared(clocks.data_dir)
    print(f"Generating {NAME}/{config.name} ({config.num_examples} clocks) into {path}")
    start = time.perf_counter()
    _download_and_prepare(clocks)
    print(f"Generated {NAME}/{config.name} in {time.perf_counter() - start:.1f} s")
  # Read from the files: the code builder would warn of a custom config on every read.
  try:
    return tfds.builder_from_directory(path)
  except Exception as e:  # TFDS raises many kinds for an unparsable dataset_info.json
    raise tfds_io.unreadable(f"{NAME}/{config_for(options).name}", tfds_io.data_dir(data_dir),
                             e) from e


def load(config: ml_collections.ConfigDict) -> dict[str, Any]:
  """`DATASETS` loader: the train and test splits of `config.clocks` as TFDS data sources."""
  if "clocks" not in config:
    raise ConfigError(f"config.data.clocks: missing; a {NAME} data config needs "
                      f"clocks=dict({', '.join(f'{k}={v!r}' for k, v in OPTIONS.items())})")
  test_split = config.clocks.get("test_split", "test")
  if test_split != "test" and config.validation == "test":
    raise ConfigError(f"config.data.validation='test' with config.data.clocks.test_split="
                      f"{test_split!r}: would pick the model on the held-out styles")
  if "test_styles" in config.get("extra_tests", ()) and not config.clocks.get("held_out"):
    raise ConfigError("config.data.extra_tests: 'test_styles' holds the held-out styles; name "
                      "them in config.data.clocks.held_out")
  reader = prepared(config.clocks, config.dir or None)
  # The stored splits besides train and the one served as 'test', under their own names, for
  # `data.extra_tests`: with styles held out, 'test_styles'.
  return {"train": reader.as_data_source(split="train"),
          "test": reader.as_data_source(split=test_split),
          **{split: reader.as_data_source(split=split) for split in reader.info.splits
             if split not in ("train", "test", test_split)}}


def prepare_course(source_dir: str, data_dir: str | None = None, *, force: bool = False) -> str:
  """Writes `clocks/course` from the course files in `source_dir`; returns its directory.

  A course data set already prepared in `data_dir` is left alone, unless `force`: then it is
  prepared again, the old copy kept until the new one is complete.

  Raises:
    DataError: the files are missing, corrupt or do not hold clocks.
  """
  path = directory(dict(source="course"), data_dir)
  if prepare.is_prepared(f"{NAME}/course", path, force):
    return path
  with prepare.replacing(path):
    clocks = builder(dict(source="course"), data_dir, course_dir=source_dir)
    print(f"Preparing {NAME}/course from {source_dir} into {path}")
    start = time.perf_counter()
    _download_and_prepare(clocks)
  sizes = ", ".join(f"{split} {info.num_examples}" for split, info in clocks.info.splits.items())
  print(f"Prepared {NAME}/course ({sizes} examples) in {time.perf_counter() - start:.1f} s: "
        f"{path}")
  return path


def read_course(directory: str) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
  """Returns (images_NHW uint8, hours_N, minutes_N) from the course's images.npy and labels.npy.

  Raises:
    DataError: naming the file and what is wrong with it.
  """
  images_path, labels_path = (os.path.join(directory, name) for name in COURSE_FILES)
  images_NHW, labels_N2 = _read_npy(images_path), _read_npy(labels_path)
  expected = (COURSE_SIZE, COURSE_SIZE)
  if images_NHW.dtype != np.uint8 or images_NHW.ndim != 3 or images_NHW.shape[1:] != expected:
    raise DataError(f"{images_path}: {images_NHW.dtype} {images_NHW.shape}, expected uint8 "
                    f"(N, {COURSE_SIZE}, {COURSE_SIZE})")
  if not np.issubdtype(labels_N2.dtype, np.integer) or labels_N2.shape != (len(images_NHW), 2):
    raise DataError(f"{labels_path}: {labels_N2.dtype} {labels_N2.shape}, expected integer "
                    f"({len(images_NHW)}, 2): hour, minute of each image")
  if len(images_NHW) < 2:
    raise DataError(f"{images_path}: {len(images_NHW)} images: need a train and a test example")
  hours_N, minutes_N = labels_N2[:, 0], labels_N2[:, 1]
  for name, values, high in (("hours", hours_N, 11), ("minutes", minutes_N, 59)):
    if values.min() < 0 or values.max() > high:
      raise DataError(f"{labels_path}: {name} in {values.min()}..{values.max()}, expected "
                      f"0..{high}")
  return images_NHW, hours_N, minutes_N


def show(path: str, size: int = clock_render.DEFAULT_SIZE, difficulty: float = 1.0,
         seed: int = 0, count: int = 32) -> None:
  """Writes a PNG grid of the first `count` clocks of the data set of `seed`, titled h:mm.

  They are rendered, not read: image i depends only on (seed, i, size, difficulty), so these
  are exactly the first train examples of that data set, whatever its number of examples.
  """
  images_NHW, hours_N, minutes_N = clock_render.render_clocks(seed, count, size, difficulty)
  clock_render.save_grid(images_NHW, hours_N, minutes_N, path, n=count)
  print(f"Wrote {count} clocks ({size} px, difficulty {difficulty:g}, seed {seed}) to {path}")


def _download_and_prepare(clocks: Clocks) -> None:
  try:
    clocks.download_and_prepare(
        download_config=tfds.download.DownloadConfig(try_download_gcs=False))
  except OSError:
    # Another process finished the same data set first: its rename of the temporary directory
    # won, and ours found the place taken. The data are the same.
    if not clocks.is_prepared():
      raise


def _times_and_styles(config: ClocksConfig, index_N: np.ndarray
                      ) -> tuple[np.ndarray, np.ndarray, clock_render.ClockStyle]:
  """The times and styles of images `index_N` (increasing) of the config's seed."""
  first, count = int(index_N[0]), int(index_N[-1]) + 1 - int(index_N[0])
  hours_N, minutes_N = clock_render.sample_times(config.seed, first, count)
  style = clock_render.sample_styles(config.seed, first, count, config.difficulty)
  at_N = index_N - first
  return hours_N[at_N], minutes_N[at_N], clock_render.ClockStyle(*(field[at_N] for field in style))


def _held_out_text(held_out: tuple[tuple[str, str], ...]) -> str:
  return repr(tuple(f"{family}={value}" for family, value in held_out))


def _course_not_prepared(path: str) -> DataError:
  return DataError(f"{NAME}/course not found in {path}: prepare it from the course files: "
                   "python -m dljax.data prepare clocks --from DIR")


def _example(image_HW: np.ndarray, hour: int, minute: int) -> dict[str, Any]:
  return {"image": image_HW[:, :, None], "hour": int(hour), "minute": int(minute)}


def _course_split(num_examples: int) -> tuple[np.ndarray, np.ndarray]:
  """(test, train) indices of the course files: a fixed random held-out part, each sorted."""
  order_N = np.random.default_rng(0).permutation(num_examples)
  num_test = num_examples - train_size(num_examples)
  return np.sort(order_N[:num_test]), np.sort(order_N[num_test:])


def _course_examples(images_NHW: np.ndarray, hours_N: np.ndarray, minutes_N: np.ndarray,
                     index_N: np.ndarray) -> Iterator[tuple[int, dict]]:
  for index in index_N:
    yield int(index), _example(images_NHW[index], hours_N[index], minutes_N[index])


def _read_npy(path: str) -> np.ndarray:
  try:
    return np.load(path, mmap_mode="r", allow_pickle=False)
  except FileNotFoundError as e:
    raise DataError(f"{path}: no such file (the course files are {' and '.join(COURSE_FILES)})"
                    ) from e
  except (OSError, ValueError) as e:
    raise DataError(f"{path}: not a readable .npy array: {e}") from e

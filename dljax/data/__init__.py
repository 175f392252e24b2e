"""Data sets as random-access sources, the train / validation / test split, and where each lives.

A config's `data.name` picks a loader from `DATASETS`; a loader returns the data set's own splits
('train', 'test') as sources. A source is a random-access TFDS data source (array_record files,
examples decoded when read) or a dict of numpy arrays with a leading example axis (data made in
memory). `load` carves out the validation split as `data.validation` says, as index sets over
the sources (`split_sources`), then either reads a split into arrays, for `pipeline.OnDevice`,
or leaves it as a `Subset` of its source, for `pipeline.Streaming`, as `data.pipeline` says.

A loader may return more of the data set's own splits under their names (the clocks' held-out
styles, 'test_styles'); `data.extra_tests` names those a run also tests on, after 'test'.
"""

import dataclasses
import functools
from typing import Any

import jax
import ml_collections
import numpy as np

from dljax.data import airline, clocks, image_folder, imdb, text, tfds_io, tiny_imagenet
from dljax.errors import ConfigError, DataError
from dljax.registry import lookup

Arrays = dict[str, np.ndarray]
Source = Any  # Arrays, or a TFDS data source: len(source), source[i] -> an example's dict


def _tfds_loader(name: str, config: ml_collections.ConfigDict) -> dict[str, Source]:
  return {split: tfds_io.open_split(name, split, config.dir or None) for split in ("train", "test")}


DATASETS = {
    "mnist": functools.partial(_tfds_loader, "mnist"),
    "fashion_mnist": functools.partial(_tfds_loader, "fashion_mnist"),
    "cifar10": functools.partial(_tfds_loader, "cifar10"),
    "clocks": clocks.load,
    "tiny_imagenet": tiny_imagenet.load,
    "text_file": text.load,
    imdb.NAME: imdb.load,
    airline.NAME: airline.load,
    "image_folder": image_folder.load,
}

VALIDATION_MODES = ("test", "first", "last", "random", "none", "dataset")
NORMALIZATIONS = ("none", "per_channel", "per_pixel")
PIPELINES = ("auto", "device", "streaming")


def data_config(name: str, **overrides) -> ml_collections.ConfigDict:
  """Every data knob with its default, so any of them can be overridden from the command line."""
  config = ml_collections.ConfigDict(dict(
      name=name,
      dir="",  # '' = $DLJAX_DATA_DIR, else the TFDS default (~/tensorflow_datasets)
      # Where validation examples come from: 'test' validates on the test set (as several
      # reports did), 'first' / 'last' / 'random' hold out `validation_size` train examples
      # (a count, or a fraction when < 1), 'none' skips validation, 'dataset' takes the data
      # set's own 'validation' split (tiny_imagenet).
      validation="test",
      validation_size=0.0,
      # More of the data set's own splits to test on, each scored after 'test' with the same
      # tested state and reported under its name (results.json, metrics.jsonl, the task's
      # analysis in WORKDIR/NAME/): e.g. ('test_styles',), clocks of styles never trained on.
      extra_tests=(),
      train_limit=0,  # keep only the first N train examples (0 = all): smoke runs
      eval_limit=0,  # keep only the first N validation and test examples (0 = all)
      # 'per_channel': standardise with the train split's mean/std of each channel (Keras'
      # Normalization()); 'per_pixel': of each pixel and channel, std + 1e-7 (Géron's
      # `(X - X_train.mean(axis=0)) / (X_train.std(axis=0) + 1e-7)`).
      normalize="none",
      augment=dict(zoom=0.0, rotation=0.0, translation=0.0, flip="", pad_crop=0),
      # Permuted MNIST: one fixed permutation of the pixels, drawn from `permutation_seed` (not
      # the run's seed: every trial of a sweep sees the same one), for every image of every split.
      permute_pixels=False,
      permutation_seed=0,
      # 'device': each split is read whole and kept on every device; 'streaming': batches are
      # read from the data set as they are needed (the same batches); 'auto': 'device' for the
      # splits that fit (`fits_on_device`), else 'streaming'.
      pipeline="auto",
      workers=0,  # streaming: reader processes (0 = threads of the training process)
  ))
  config.update(overrides)
  return config


@dataclasses.dataclass(frozen=True, eq=False)
class Subset:
  """Examples `index_N` of `source`, in that order: a split that is read only as it is used."""
  source: Source
  index_N: np.ndarray

  def __len__(self) -> int:
    return len(self.index_N)


Split = Arrays | Subset  # read into memory, or left in its source


@dataclasses.dataclass(frozen=True)
class Splits:
  train: Split
  validation: Split | None
  test: Split
  label_names: tuple[str, ...] | None = None  # the data set's class names, where it has them
  extra_tests: dict[str, Split] = dataclasses.field(default_factory=dict)  # `data.extra_tests`
  # `train_stats` results: a task built several times from these splits (trials trained
  # together build theirs inside each trace) reads the train split once.
  _train_stats: dict = dataclasses.field(default_factory=dict, init=False, repr=False,
                                         compare=False)

  def train_stats(self, key: str, per_pixel: bool = False) -> tuple[np.ndarray, np.ndarray]:
    """`channel_stats` of the train split, computed on first use."""
    if (key, per_pixel) not in self._train_stats:
      self._train_stats[key, per_pixel] = channel_stats(self.train, key, per_pixel=per_pixel)
    return self._train_stats[key, per_pixel]


def _num_examples(source: Source) -> int:
  return len(next(iter(source.values()))) if isinstance(source, dict) else len(source)


def validate(config: ml_collections.ConfigDict) -> None:
  lookup(DATASETS, config.name, "config.data.name", "data set")
  if config.validation not in VALIDATION_MODES:
    raise ConfigError(f"config.data.validation={config.validation!r}: allowed: "
                      f"{', '.join(VALIDATION_MODES)}")
  if config.validation in ("first", "last", "random") and config.validation_size <= 0:
    raise ConfigError(f"config.data.validation_size={config.validation_size}: must be > 0 "
                      f"when validation={config.validation!r}")
  if config.normalize not in NORMALIZATIONS:
    raise ConfigError(f"config.data.normalize={config.normalize!r}: allowed: "
                      f"{', '.join(NORMALIZATIONS)}")
  if config.pipeline not in PIPELINES:
    raise ConfigError(f"config.data.pipeline={config.pipeline!r}: allowed: "
                      f"{', '.join(PIPELINES)}")
  for key in ("train_limit", "eval_limit"):
    if config[key] < 0:
      raise ConfigError(f"config.data.{key}={config[key]}: must be >= 0 (0 = all)")
  if config.workers < 0:
    raise ConfigError(f"config.data.workers={config.workers}: must be >= 0")
  extra = config.extra_tests
  if (not isinstance(extra, tuple | list) or not all(isinstance(name, str) for name in extra)
      or len(set(extra)) < len(extra) or set(extra) & {"train", "validation", "test"}):
    raise ConfigError(f"config.data.extra_tests={extra!r}: must be a tuple of distinct split "
                      "names other than train, validation and test, e.g. ('test_styles',)")
  if config.permute_pixels and any(config.augment.values()):
    raise ConfigError(f"config.data.permute_pixels=True: augmenting permuted images is "
                      f"meaningless; turn config.data.augment={config.augment.to_dict()} off")


def split_sources(config: ml_collections.ConfigDict, seed: int,
                  sources: dict[str, Source]) -> dict[str, Subset | None]:
  """The 'train', 'validation' and 'test' splits, and the `extra_tests`, as subsets of the data
  set's own splits.

  'first' / 'last' / 'random' hold out `validation_size` examples of `sources['train']` (the
  'random' ones drawn with `seed`, kept in the order drawn); the rest, in stored order, is train.
  Then `train_limit` and `eval_limit` keep the first examples of each. Nothing is read.
  """
  num_train = _num_examples(sources["train"])
  size = config.validation_size
  num_validation = round(size * num_train) if 0 < size < 1 else int(size)
  if config.validation in ("first", "last", "random") and not 0 < num_validation < num_train:
    raise ConfigError(f"config.data.validation_size={size}: holds out {num_validation} of "
                      f"{num_train} train examples; must leave both parts non-empty")

  def first(subset: Subset, n: int) -> Subset:
    return Subset(subset.source, subset.index_N[:n]) if n else subset

  def evaluated(name: str) -> Subset:
    """The data set's own split `name`, whole, for evaluation (up to `eval_limit`)."""
    return first(Subset(sources[name], np.arange(_num_examples(sources[name]))),
                 config.eval_limit)

  train = Subset(sources["train"], np.arange(num_train))
  test = evaluated("test")
  validation = {"test": test, "none": None}.get(config.validation)
  if config.validation == "dataset":
    if "validation" not in sources:
      raise ConfigError(f"config.data.validation='dataset': {config.name} has no validation "
                        f"split; allowed: {', '.join(VALIDATION_MODES[:-1])}")
    validation = evaluated("validation")
  if config.validation in ("first", "last", "random"):
    order = train.index_N
    if config.validation == "random":
      order = np.random.default_rng(seed).permutation(num_train)
    if config.validation == "last":
      order = np.roll(order, num_validation)  # the held-out tail moves to the front
    validation = first(Subset(train.source, order[:num_validation]), config.eval_limit)
    train = Subset(train.source, np.sort(order[num_validation:]))
  splits = {"train": first(train, config.train_limit), "validation": validation, "test": test}
  for name in config.get("extra_tests", ()):  # (a run's config.json from before it: none)
    if name not in sources:
      others = sorted(set(sources) - {"train", "validation", "test"})
      raise ConfigError(f"config.data.extra_tests: {name!r} is not a split of {config.name}; "
                        f"allowed: {', '.join(others) or '(none)'}")
    splits[name] = evaluated(name)
  return splits


def load(config: ml_collections.ConfigDict, seed: int) -> Splits:
  """Loads `config.name` and splits it; `seed` orders the 'random' validation hold-out.

  Each split is read into arrays when `config.pipeline` says 'device' (or 'auto' and it
  `fits_on_device`), else left as a `Subset` of its source. Deciding reads only sizes and
  feature shapes.
  """
  sources = lookup(DATASETS, config.name, "config.data.name", "data set")(config)

  def place(subset: Subset) -> Split:
    on_device = config.pipeline == "device" or (
        config.pipeline == "auto" and fits_on_device(len(subset) * example_bytes(subset.source)))
    return read(subset, np.arange(len(subset))) if on_device else subset

  subsets = split_sources(config, seed, sources)
  train, test = place(subsets["train"]), place(subsets["test"])
  validation = subsets["validation"]
  if validation is not None:  # validating on the test split: the same split, placed once
    validation = test if validation is subsets["test"] else place(validation)
  extra_tests = {name: place(subset) for name, subset in subsets.items()
                 if name not in ("train", "validation", "test")}
  for name, split in extra_tests.items():
    # The eval step is compiled once, for the test split's example shapes.
    if (spec := example_spec(split)) != (test_spec := example_spec(test)):
      raise ConfigError(f"config.data.extra_tests: {name!r} has examples {spec}, unlike the "
                        f"test split's {test_spec}")
  return Splits(train=train, validation=validation, test=test,
                label_names=label_names(sources["train"]), extra_tests=extra_tests)


def example_spec(split: Split) -> dict[str, tuple[tuple[int, ...], str]]:
  """Each feature's shape and dtype in one example of `split` (reads its first example)."""
  first = read(split, np.arange(1)) if isinstance(split, Subset) else split
  return {key: (tuple(value.shape[1:]), str(value.dtype)) for key, value in first.items()}


def label_names(source: Source) -> tuple[str, ...] | None:
  """The class names of a TFDS source's 'label' feature; None for other sources."""
  info = getattr(source, "dataset_info", None)
  if info is None or "label" not in info.features:
    return None
  names = getattr(info.features["label"], "names", None)
  return tuple(names) if names else None


def example_bytes(source: Source) -> int:
  """Bytes of one decoded example, from the arrays or the TFDS feature shapes: nothing decoded.

  Raises:
    DataError: a TFDS feature has a dimension of unknown size (e.g. images of varying size).
  """
  if isinstance(source, dict):
    return sum(array[0].nbytes for array in source.values())
  total = 0
  for name, info in source.dataset_info.features.get_tensor_info().items():
    if not tfds_io.is_numeric(np.zeros((), info.np_dtype)):
      continue  # `tfds_io.read` drops strings
    if None in info.shape:
      raise DataError(f"feature {name!r} has shape {info.shape}: batches need fixed shapes")
    total += int(np.prod(info.shape)) * np.dtype(info.np_dtype).itemsize
  return total


# CPUs report no memory limit; host memory is usually far larger than this.
CPU_BUDGET_BYTES = 4 << 30


def fits_on_device(num_bytes: int) -> bool:
  """Whether 'auto' keeps a split of `num_bytes` decoded bytes on the devices.

  `pipeline.OnDevice` keeps a whole copy of the split on every device, beside the parameters,
  optimiser state and activations, and the train, validation and test splits all stay there:
  a quarter of the smallest local device's memory leaves room for the rest. Devices that report
  no limit (CPUs) get `CPU_BUDGET_BYTES`.
  """
  limits = [(device.memory_stats() or {}).get("bytes_limit") for device in jax.local_devices()]
  return num_bytes < min(limit // 4 if limit else CPU_BUDGET_BYTES for limit in limits)


def read(subset: Subset, position_B: np.ndarray) -> Arrays:
  """Examples `subset.index_N[position_B]`, decoded, as arrays with a leading example axis."""
  index_B = subset.index_N[position_B]
  if isinstance(subset.source, dict):
    return {key: array[index_B] for key, array in subset.source.items()}
  return tfds_io.read(subset.source, index_B.tolist())


def channel_stats(split: Split, key: str, chunk_size: int = 4096,
                  per_pixel: bool = False) -> tuple[np.ndarray, np.ndarray]:
  """Mean and standard deviation of `split[key]` per channel, over all examples and pixels
  (shape [C]); or per pixel and channel, over all examples (shape [H, W, C]).

  Reduces `chunk_size` examples at a time, so a streamed split is never in memory whole. Sums are
  float64, exact for 8-bit pixels (up to 10^11 a channel): the result is the same whether the
  split is in memory or streamed.
  """
  subset = split if isinstance(split, Subset) else Subset(split, np.arange(_num_examples(split)))
  count = total = total_squares = 0
  for start in range(0, len(subset), chunk_size):
    chunk = read(subset, np.arange(start, min(start + chunk_size, len(subset))))[key]
    values = chunk.reshape(-1, *chunk.shape[(1 if per_pixel else -1):]).astype(np.float64)
    count += len(values)
    total = total + values.sum(axis=0)
    total_squares = total_squares + np.square(values).sum(axis=0)
  mean = total / count
  return mean, np.sqrt(np.maximum(total_squares / count - np.square(mean), 0.0))

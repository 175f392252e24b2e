"""A text file as a character-level language-modelling data set (`data.name='text_file'`).

`config.data.text` names the file; its first `1 - test_fraction` of the characters are the
'train' split and the rest the 'test' split (held out, as the course's first 80% / last 20%;
`validation='test'` validates on it). The vocabulary is the sorted set of the file's characters
(the course's char vocabulary), id = position in it. Each split is cut into windows of
`seq_len + 1` ids (`tokens`): the model reads the first `seq_len` and predicts the last
`seq_len`. Train windows start every `stride` characters (`seq_len`: each character is a target
once an epoch); held-out windows never overlap and cover the split to its last character, the
last window padded, its padding masked out (`mask` 0), so a split's loss counts every held-out
character once.

Read into memory, not prepared as a TFDS data set: Tiny Shakespeare is 1.1 MB, cut into windows
in milliseconds, and any text file works without a preparation step.
"""

import functools
import os

import ml_collections
import numpy as np

from dljax.errors import ConfigError, DataError

NAME = "text_file"

# `config.data.text`: which file and how it is cut.
OPTIONS = dict(
    path="../shared/data/tinyshakespeare/input.txt",  # a UTF-8 text file
    seq_len=128,  # characters the model reads per window
    stride=0,  # train windows start every `stride` characters; 0 = seq_len
    test_fraction=0.1,  # the last fraction of the characters, held out
)


def options(config: ml_collections.ConfigDict) -> dict:
  """`config.data.text` with its defaults; raises a one-line ConfigError for a bad value."""
  given = dict(config.get("text", {}))
  unknown = set(given) - set(OPTIONS)
  if unknown:
    raise ConfigError(f"config.data.text.{sorted(unknown)[0]}: unknown key; allowed: "
                      f"{', '.join(sorted(OPTIONS))}")
  values = {**OPTIONS, **given}
  rules = ((values["seq_len"] > 0, "seq_len", "must be > 0"),
           (values["stride"] >= 0, "stride", "must be >= 0 (0 = seq_len)"),
           (0 < values["test_fraction"] < 1, "test_fraction", "must be in (0, 1)"))
  for holds, key, rule in rules:
    if not holds:
      raise ConfigError(f"config.data.text.{key}={values[key]!r}: {rule}")
  return values


@functools.lru_cache(maxsize=4)
def read(path: str) -> str:
  """The text of `path`; a one-line DataError if it is missing, empty or not UTF-8."""
  try:
    with open(os.path.expanduser(path), "rb") as f:
      data = f.read()
  except OSError as e:
    raise DataError(f"{path}: cannot read the text file: {e.strerror}") from e
  try:
    text = data.decode("utf-8")
  except UnicodeDecodeError as e:
    raise DataError(f"{path}: not UTF-8 text (byte {e.start}: {data[e.start]:#04x})") from e
  if not text:
    raise DataError(f"{path}: the text file is empty")
  return text


def vocabulary(path: str) -> tuple[str, ...]:
  """The sorted distinct characters of the file: token id i is character i."""
  return tuple(sorted(set(read(path))))


def encode(text: str, vocab: tuple[str, ...]) -> np.ndarray:
  """Characters -> int32 ids; a DataError for a character outside `vocab`."""
  index = {char: i for i, char in enumerate(vocab)}
  unknown = set(text) - set(index)
  if unknown:
    raise DataError(f"characters {''.join(sorted(unknown))!r} are not in the vocabulary")
  return np.fromiter((index[char] for char in text), np.int32, len(text))


def decode(ids, vocab: tuple[str, ...]) -> str:
  return "".join(vocab[int(i)] for i in ids)


def windows(ids_N: np.ndarray, seq_len: int, stride: int) -> dict[str, np.ndarray]:
  """Windows of `seq_len + 1` ids starting every `stride` ids, the last one padded to reach the
  end of `ids_N`: {'tokens': [W, seq_len + 1] int32, 'mask': [W, seq_len] of the targets that
  count}. With `stride == seq_len` every id after the first is a target exactly once."""
  starts = np.arange(0, max(len(ids_N) - 1, 1), stride)
  tokens = np.zeros((len(starts), seq_len + 1), np.int32)
  mask = np.zeros((len(starts), seq_len), np.uint8)
  for row, start in enumerate(starts):
    part = ids_N[start: start + seq_len + 1]
    tokens[row, :len(part)] = part
    mask[row, :len(part) - 1] = 1
  return {"tokens": tokens, "mask": mask}


def split_text(path: str, test_fraction: float) -> tuple[str, str]:
  """(train, test): the first 1 - `test_fraction` of the characters, and the rest."""
  text = read(path)
  cut = len(text) - round(test_fraction * len(text))
  if not 1 < cut < len(text) - 1:
    raise DataError(f"{path}: {len(text)} characters are too few to hold out "
                    f"test_fraction={test_fraction} and keep both parts")
  return text[:cut], text[cut:]


def load(config: ml_collections.ConfigDict) -> dict[str, dict[str, np.ndarray]]:
  """`DATASETS` loader: the train and test windows of `config.text`'s file."""
  values = options(config)
  vocab = vocabulary(values["path"])
  train, test = split_text(values["path"], values["test_fraction"])
  seq_len = values["seq_len"]
  return {"train": windows(encode(train, vocab), seq_len, values["stride"] or seq_len),
          "test": windows(encode(test, vocab), seq_len, seq_len)}

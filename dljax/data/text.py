"""A text file as a character- or word-level language-modelling data set (`data.name='text_file'`).

`config.data.text` names the file; its first `1 - test_fraction` of the characters are the
'train' split and the rest the 'test' split (held out, as the course's first 80% / last 20%;
`validation='test'` validates on it). `tokens` says what a token is:

  char: every character; the vocabulary is the sorted set of the file's characters (the
      course's char vocabulary), id = position in it.
  word: words (letters, digits, '_' and apostrophes: "o'er" is one), punctuation marks and line
      breaks, in order; other whitespace only separates them. The vocabulary is '<unk>' (id 0)
      and then the train part's tokens by descending count (ties alphabetical), cut to
      `num_words` ids (0 = all); a token outside it reads as '<unk>'. Decoded text puts a
      space between tokens except before punctuation and around line breaks.

Each split's ids are cut into windows of `seq_len + 1` ids (`tokens`): the model reads the first
`seq_len` and predicts the last `seq_len`. Train windows start every `stride` tokens (`seq_len`:
each token is a target once an epoch); held-out windows never overlap and cover the split to its
last token, the last window padded, its padding masked out (`mask` 0), so a split's loss counts
every held-out token once.

Read into memory, not prepared as a TFDS data set: Tiny Shakespeare is 1.1 MB, cut into windows
in milliseconds (words: about a second), and any text file works without a preparation step.
"""

import collections
import functools
import os
import re

import ml_collections
import numpy as np

from dljax.errors import ConfigError, DataError

NAME = "text_file"

# `config.data.text`: which file and how it is cut.
OPTIONS = dict(
    path="../shared/data/tinyshakespeare/input.txt",  # a UTF-8 text file
    tokens="char",  # 'char' or 'word': what one token is (see above)
    num_words=0,  # word tokens: the vocabulary's size, '<unk>' included (0 = every train word)
    seq_len=128,  # tokens the model reads per window
    stride=0,  # train windows start every `stride` tokens; 0 = seq_len
    test_fraction=0.1,  # the last fraction of the characters, held out
)
TOKENS = ("char", "word")
UNKNOWN = "<unk>"  # id 0 of a word vocabulary
_WORD_TOKENS = re.compile(r"[\w']+|[^\w\s]|\n")
_SPACE_BEFORE_PUNCTUATION = re.compile(r" ([^\w\s'])")
_SPACES_AROUND_LINE_BREAKS = re.compile(r" ?\n ?")


def options(config: ml_collections.ConfigDict) -> dict:
  """`config.data.text` with its defaults; raises a one-line ConfigError for a bad value."""
  given = dict(config.get("text", {}))
  unknown = set(given) - set(OPTIONS)
  if unknown:
    raise ConfigError(f"config.data.text.{sorted(unknown)[0]}: unknown key; allowed: "
                      f"{', '.join(sorted(OPTIONS))}")
  values = {**OPTIONS, **given}
  rules = ((values["tokens"] in TOKENS, "tokens", f"allowed: {', '.join(TOKENS)}"),
           (values["num_words"] == 0 or values["num_words"] > 1, "num_words",
            "must be 0 (every train word) or > 1 ('<unk>' and a word)"),
           (values["seq_len"] > 0, "seq_len", "must be > 0"),
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


def tokenize(text: str, kind: str = "char") -> list[str]:
  """The text's tokens of `kind` (one of TOKENS): its characters, or its words, punctuation
  marks and line breaks."""
  return list(text) if kind == "char" else _WORD_TOKENS.findall(text)


def vocabulary(path: str, kind: str = "char", num_words: int = 0,
               test_fraction: float = OPTIONS["test_fraction"]) -> tuple[str, ...]:
  """Token id i is entry i: the file's sorted distinct characters, or '<unk>' and the train
  part's words by descending count (ties alphabetical), `num_words` in all (0 = every word)."""
  if kind == "char":
    return tuple(sorted(set(read(path))))
  counts = collections.Counter(tokenize(split_text(path, test_fraction)[0], kind))
  ranked = sorted(counts, key=lambda token: (-counts[token], token))
  return (UNKNOWN, *ranked)[:num_words or None]


def encode(tokens, vocab: tuple[str, ...]) -> np.ndarray:
  """Tokens (a string: its characters) -> int32 ids. A word outside a word vocabulary is
  '<unk>'; a character outside a character vocabulary is a DataError."""
  index = {token: i for i, token in enumerate(vocab)}
  unknown = set(tokens) - set(index)
  if unknown and vocab[0] != UNKNOWN:
    raise DataError(f"characters {''.join(sorted(unknown))!r} are not in the vocabulary")
  return np.fromiter((index.get(token, 0) for token in tokens), np.int32, len(tokens))


def join(tokens: list[str], kind: str = "char") -> str:
  """Tokens back to text: characters concatenated; words separated by a space, except before
  punctuation and around line breaks."""
  if kind == "char":
    return "".join(tokens)
  return _SPACES_AROUND_LINE_BREAKS.sub("\n", _SPACE_BEFORE_PUNCTUATION.sub(r"\1",
                                                                          " ".join(tokens)))


def decode(ids, vocab: tuple[str, ...], kind: str = "char") -> str:
  return join([vocab[int(i)] for i in ids], kind)


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
  vocab = vocabulary(values["path"], values["tokens"], values["num_words"],
                     values["test_fraction"])
  train, test = (encode(tokenize(part, values["tokens"]), vocab)
                 for part in split_text(values["path"], values["test_fraction"]))
  seq_len = values["seq_len"]
  return {"train": windows(train, seq_len, values["stride"] or seq_len),
          "test": windows(test, seq_len, seq_len)}

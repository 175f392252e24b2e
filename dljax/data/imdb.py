"""IMDB movie reviews: the TFDS data set `imdb_reviews` prepared offline, and its reviews as ids.

`prepare` writes `imdb_reviews/plain_text/1.0.0` from the Large Movie Review Dataset's labelled
reviews as jsonl (`aclImdb-train.jsonl.gz`, `aclImdb-test.jsonl.gz`: one {"text", "label",
"id"} object a line, the id the review's file name) with the catalogue builder itself, only its
download replaced, so features (`text`, `label` neg/pos), split sizes, example keys (the archive
path `aclImdb/train/pos/0_9.txt`, hence TFDS' shuffled order) and dataset_info.json are the
catalogue's. The 50,000 unlabelled reviews (the catalogue's 'unsupervised' split) are not in
those files and are left out.

Training reads ids, as Keras' `imdb.load_data` gives them: words are Keras' `Tokenizer` words
(lower case, ``!"#$%&()*+,-./:;<=>?@[\\]^_`{|}~`` tab and newline replaced by spaces, split on
spaces: the `<br />` of the reviews becomes the word 'br', as in Keras' own word index); a word
of frequency rank r (1 = most frequent) gets id r + 3, ids 0 (padding), 1 (start) and 2
(unknown: every word of rank >= num_words - 3) are reserved, 3 is unused, and each review is
[1, ids...], padded in front with 0 and cut from the front to `maxlen` (`pad_sequences`'
'pre'; Keras' load_data would drop a longer review instead). Ranks come from the train split's
word counts (ties alphabetical), or from a Keras word-index JSON (`imdb_word_index.json`).
With `ngrams` = n > 1, each review's ids are followed by ids for its runs of 2 ... n neighbouring
ids (none of them padding), fastText's n-grams as a vocabulary of their own, as Keras'
imdb_fasttext example builds it: the `num_ngrams` n-grams most frequent in the train split (ties
by their key, the run read as a number in base num_words) get ids num_words, num_words + 1, ...
in that order; any other n-gram (one never seen in training, or rarer) gets 0, padding, so it
takes no part, where hashing would put it on a row that other n-grams trained.
The ids are built once per (vocabulary, num_words, maxlen, ngrams, num_ngrams) and kept in the
data dir (`imdb_reviews_ids/NAME/`: train.npz, test.npz, vocabulary.json, and ngrams.npy, the
kept n-grams' keys in id order), not per run.
"""

import collections
import gzip
import json
import os
import re
import shutil
import tempfile
import types
from collections.abc import Iterator

import ml_collections
import numpy as np
import tensorflow_datasets as tfds

from dljax.data import prepare as prepare_lib
from dljax.data import tfds_io
from dljax.errors import ConfigError, DataError

NAME = "imdb_reviews"
CONFIG = "plain_text"
SPLITS = ("train", "test")
FILES = {split: f"aclImdb-{split}.jsonl.gz" for split in SPLITS}
CATALOGUE_SIZES = {"train": 25_000, "test": 25_000}
DOWNLOAD_SIZE = 84_125_825  # aclImdb_v1.tar.gz, as the catalogue's dataset_info.json records
PAD, START, UNKNOWN, INDEX_FROM = 0, 1, 2, 3
LABEL_NAMES = ("neg", "pos")
IDS_DIR = "imdb_reviews_ids"

# `config.data.imdb`: how reviews become ids.
OPTIONS = dict(
    vocabulary="train",  # 'train': ranks by the train split's counts; else a word-index JSON
    num_words=20_000,  # ids < num_words are kept; rarer words become UNKNOWN
    maxlen=400,  # ids per review, START included
    ngrams=1,  # > 1: runs of 2 ... ngrams neighbouring ids also get ids (see above)
    num_ngrams=0,  # how many of the train split's most frequent n-grams get an id
)

_FILTERS = re.compile(r"[!\"#$%&()*+,\-./:;<=>?@\[\\\]^_`{|}~\t\n]")


def words(text: str) -> list[str]:
  """Keras' `text_to_word_sequence`: lower case, punctuation to spaces, split on spaces."""
  return _FILTERS.sub(" ", text.lower()).split()


def read_jsonl(path: str) -> list[dict]:
  """The reviews of one jsonl.gz file; a one-line DataError for a missing or broken file."""
  try:
    with gzip.open(path, "rt", encoding="utf-8") as f:
      reviews = [json.loads(line) for line in f if line.strip()]
  except FileNotFoundError as e:
    raise DataError(f"{path}: no such file (the labelled reviews as jsonl are needed)") from e
  except (OSError, EOFError, UnicodeDecodeError, json.JSONDecodeError) as e:
    raise DataError(f"{path}: truncated or corrupt: {e}") from e
  for number, review in enumerate(reviews, 1):
    if not (isinstance(review, dict) and {"text", "label", "id"} <= set(review)
            and review["label"] in (0, 1)):
      raise DataError(f"{path}: review {number} is not {{'text', 'label' 0/1, 'id'}}")
  return reviews


def _examples(split: str, reviews: list[dict]) -> Iterator[tuple[str, dict]]:
  """What the catalogue builder yields: the archive path as key, the text and the label."""
  for review in reviews:
    path = f"aclImdb/{split}/{LABEL_NAMES[review['label']]}/{review['id']}"
    yield path, {"text": review["text"].strip(), "label": review["label"]}


def prepare(source_dir: str, data_dir: str | None = None, *, force: bool = False,
            partial: bool = False) -> str:
  """Writes `imdb_reviews/plain_text` from the jsonl files in `source_dir`; returns its directory.

  As `prepare.prepare`: a prepared copy is left alone unless `force`; splits of other sizes than
  the catalogue's 25,000 are refused unless `partial`.
  """
  data_dir = tfds_io.data_dir(data_dir)
  catalogue_cls = tfds.builder_cls(NAME)
  version = catalogue_cls.BUILDER_CONFIGS[0].version
  path = os.path.join(data_dir, NAME, CONFIG, str(version))
  if prepare_lib.is_prepared(f"{NAME} {version}", path, force):
    return path
  splits = {split: read_jsonl(os.path.join(source_dir, name)) for split, name in FILES.items()}
  for split, reviews in splits.items():
    if len(reviews) != CATALOGUE_SIZES[split]:
      sizes = (f"{NAME} {split} has {len(reviews)} reviews, the TFDS catalogue's has "
               f"{CATALOGUE_SIZES[split]}")
      if not partial:
        raise DataError(f"{sizes}: not {NAME}; --partial prepares it anyway (e.g. a test subset)")
      print(f"Warning: {sizes} (--partial)")

  class OfflineBuilder(catalogue_cls, skip_registration=True):
    __module__ = catalogue_cls.__module__
    name = catalogue_cls.name

    def _make_download_manager(self, download_dir, download_config):
      del download_dir, download_config
      return types.SimpleNamespace(downloaded_size=DOWNLOAD_SIZE)

    def _split_generators(self, dl_manager):
      del dl_manager
      return {split: _examples(split, reviews) for split, reviews in splits.items()}

  with prepare_lib.replacing(path):
    builder = OfflineBuilder(config=CONFIG, data_dir=data_dir, file_format="array_record")
    builder.download_and_prepare(download_config=tfds.download.DownloadConfig(
        try_download_gcs=False))
  print(f"Prepared {NAME} {version} ({', '.join(f'{s} {len(r)}' for s, r in splits.items())} "
        f"reviews): {path}")
  return path


def options(config: ml_collections.ConfigDict) -> dict:
  """`config.data.imdb` with its defaults; a one-line ConfigError for a bad value."""
  given = dict(config.get("imdb", {}))
  unknown = set(given) - set(OPTIONS)
  if unknown:
    raise ConfigError(f"config.data.imdb.{sorted(unknown)[0]}: unknown key; allowed: "
                      f"{', '.join(sorted(OPTIONS))}")
  values = {**OPTIONS, **given}
  if values["num_words"] <= INDEX_FROM + 1:
    raise ConfigError(f"config.data.imdb.num_words={values['num_words']}: the vocabulary size "
                      f"must be > {INDEX_FROM + 1} (ids 0-3 are reserved)")
  if values["maxlen"] < 2:
    raise ConfigError(f"config.data.imdb.maxlen={values['maxlen']}: must be >= 2 (the start "
                      "id and a word)")
  if values["ngrams"] < 1 or values["num_words"] ** values["ngrams"] >= 2 ** 63:
    raise ConfigError(f"config.data.imdb.ngrams={values['ngrams']}: must be >= 1, and "
                      f"num_words ** ngrams < 2 ** 63 (an n-gram's key is an int64)")
  if not (values["num_ngrams"] > 0 if values["ngrams"] > 1 else values["num_ngrams"] == 0):
    raise ConfigError(f"config.data.imdb.num_ngrams={values['num_ngrams']}: must be > 0 with "
                      f"ngrams={values['ngrams']} > 1, and 0 with ngrams=1")
  if values["vocabulary"] != "train" and not os.path.isfile(values["vocabulary"]):
    raise ConfigError(f"config.data.imdb.vocabulary={values['vocabulary']!r}: neither 'train' "
                      "nor a word-index JSON file")
  return values


def ranked_words(texts: list[str]) -> list[str]:
  """Words by descending count, ties alphabetical: rank r is entry r - 1."""
  counts = collections.Counter(word for text in texts for word in words(text))
  return sorted(counts, key=lambda word: (-counts[word], word))


def word_index_ranking(path: str) -> list[str]:
  """The words of a Keras word-index JSON ({word: rank}) in rank order."""
  try:
    with open(path) as f:
      index = json.load(f)
  except (OSError, json.JSONDecodeError) as e:
    raise DataError(f"{path}: not a readable word-index JSON: {e}") from e
  return sorted(index, key=index.get)


def to_ids(texts: list[str], ranking: list[str], num_words: int, maxlen: int) -> np.ndarray:
  """Reviews -> [N, maxlen] int32 ids, Keras' offsets, pre-padded and cut from the front."""
  ids = {word: rank + INDEX_FROM + 1 for rank, word in enumerate(ranking)
         if rank + INDEX_FROM + 1 < num_words}
  out = np.full((len(texts), maxlen), PAD, np.int32)
  for row, text in enumerate(texts):
    sequence = [START, *(ids.get(word, UNKNOWN) for word in words(text))][-maxlen:]
    out[row, maxlen - len(sequence):] = sequence
  return out


def ngram_keys(ids_NT: np.ndarray, n: int, num_words: int) -> np.ndarray:
  """Each run of `n` neighbouring ids as one int64 key, the ids as digits in base `num_words`
  (runs of different lengths never share a key: no id is 0); -1 where a run holds padding.
  [N, T - n + 1]."""
  keys = np.zeros((ids_NT.shape[0], ids_NT.shape[1] - n + 1), np.int64)
  padded = np.zeros(keys.shape, bool)
  for offset in range(n):
    digits = ids_NT[:, offset: offset + keys.shape[1]].astype(np.int64)
    keys = keys * num_words + digits
    padded |= digits == PAD
  return np.where(padded, -1, keys)


def ngram_table(ids_NT: np.ndarray, ngrams: int, num_ngrams: int, num_words: int) -> np.ndarray:
  """The keys of the `num_ngrams` most frequent n-grams (2 ... `ngrams` ids) of `ids_NT`, by
  descending count, ties by key: n-gram id num_words + i is entry i. int64 [<= num_ngrams]."""
  keys = np.concatenate([ngram_keys(ids_NT, n, num_words).ravel()
                         for n in range(2, ngrams + 1)])
  unique, counts = np.unique(keys[keys >= 0], return_counts=True)
  if not len(unique):
    raise DataError(f"the train reviews hold no runs of 2 ... {ngrams} words to make n-grams of")
  return unique[np.lexsort((unique, -counts))][:num_ngrams]


def with_ngrams(ids_NT: np.ndarray, table: np.ndarray, ngrams: int,
                num_words: int) -> np.ndarray:
  """`ids_NT` followed by the ids of its n-grams of 2 ... `ngrams` ids: num_words + the entry
  of `table` that holds the n-gram's key, or 0 (padding) if none does. int32."""
  order = np.argsort(table)
  sorted_keys = table[order]
  columns = [ids_NT]
  for n in range(2, ngrams + 1):
    keys = ngram_keys(ids_NT, n, num_words)
    at = np.minimum(np.searchsorted(sorted_keys, keys), len(sorted_keys) - 1)
    columns.append(np.where(sorted_keys[at] == keys, num_words + order[at], PAD))
  return np.concatenate(columns, axis=1).astype(np.int32)


def vocabulary(ranking: list[str], num_words: int) -> list[str]:
  """id -> word for ids < num_words; ids 0-3 are '<pad>', '<start>', '<unk>', '<unused>'."""
  return ["<pad>", "<start>", "<unk>", "<unused>", *ranking[:num_words - INDEX_FROM - 1]]


def _read_texts(source) -> tuple[list[str], np.ndarray]:
  examples = source.__getitems__(list(range(len(source))))
  texts = [e["text"].decode("utf-8") if isinstance(e["text"], bytes) else e["text"]
           for e in examples]
  return texts, np.array([e["label"] for e in examples], np.int32)


def ids_dir(config: ml_collections.ConfigDict) -> str:
  """Where the ids of `config.imdb`'s choices live in the data dir (built by `load`)."""
  values = options(config)
  source = ("train" if values["vocabulary"] == "train"
            else os.path.splitext(os.path.basename(values["vocabulary"]))[0])
  ngrams = (f"_{values['ngrams']}grams{values['num_ngrams']}" if values["ngrams"] > 1 else "")
  return os.path.join(tfds_io.data_dir(config.dir or None), IDS_DIR,
                      f"{source}_words{values['num_words']}_maxlen{values['maxlen']}{ngrams}")


def load(config: ml_collections.ConfigDict) -> dict[str, dict[str, np.ndarray]]:
  """`DATASETS` loader: {split: {'tokens', 'label'}} in TFDS' stored order, built into the data
  dir on first use (written to a temporary directory, then renamed: never half-built)."""
  directory = ids_dir(config)
  if not os.path.isdir(directory):
    values = options(config)
    sources = {split: tfds_io.open_split(f"{NAME}/{CONFIG}", split, config.dir or None)
               for split in SPLITS}
    texts = {split: _read_texts(source) for split, source in sources.items()}
    ranking = (ranked_words(texts["train"][0]) if values["vocabulary"] == "train"
               else word_index_ranking(values["vocabulary"]))
    os.makedirs(os.path.dirname(directory), exist_ok=True)
    building = tempfile.mkdtemp(dir=os.path.dirname(directory))
    try:
      ids = {split: to_ids(split_texts, ranking, values["num_words"], values["maxlen"])
             for split, (split_texts, _) in texts.items()}
      if values["ngrams"] > 1:
        table = ngram_table(ids["train"], values["ngrams"], values["num_ngrams"],
                            values["num_words"])
        np.save(os.path.join(building, "ngrams.npy"), table)
        ids = {split: with_ngrams(split_ids, table, values["ngrams"], values["num_words"])
               for split, split_ids in ids.items()}
      for split, (_, labels) in texts.items():
        np.savez(os.path.join(building, f"{split}.npz"), label=labels, tokens=ids[split])
      with open(os.path.join(building, "vocabulary.json"), "w") as f:
        json.dump(vocabulary(ranking, values["num_words"]), f)
      os.rename(building, directory)
    finally:
      shutil.rmtree(building, ignore_errors=True)
  splits = {}
  for split in SPLITS:
    with np.load(os.path.join(directory, f"{split}.npz")) as npz:
      splits[split] = {"tokens": npz["tokens"], "label": npz["label"]}
  return splits


def load_vocabulary(config: ml_collections.ConfigDict) -> list[str]:
  """id -> word of the ids `load` built."""
  with open(os.path.join(ids_dir(config), "vocabulary.json")) as f:
    return json.load(f)


def encode(texts: list[str], config: ml_collections.ConfigDict) -> np.ndarray:
  """Texts -> the ids a model trained on `load`'s ids reads: words, and n-grams if any."""
  values = options(config)
  ranking = load_vocabulary(config)[INDEX_FROM + 1:]
  ids = to_ids(texts, ranking, values["num_words"], values["maxlen"])
  if values["ngrams"] == 1:
    return ids
  table = np.load(os.path.join(ids_dir(config), "ngrams.npy"))
  return with_ngrams(ids, table, values["ngrams"], values["num_words"])

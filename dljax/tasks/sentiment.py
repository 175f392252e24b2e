"""Binary sentiment of token-id sequences (IMDB, family C): one logit, Keras' binary
cross-entropy (on the logit, as `from_logits=True`: exact where the sigmoid saturates), accuracy
of p > 0.5.

`config.sentiment.glove` names a GloVe text file (one `word v1 ... vD` a line): at
initialisation the embedding rows of the vocabulary's words found in it are replaced by their
vectors (the rest stay random), and the coverage is printed; `optimizer.freeze='embedding'`
keeps them fixed (Keras' `trainable=False`). After testing, `analyze` writes probes.json and
probes.txt: the nearest words by cosine of the embeddings to each probe word, and the predicted
probability that each probe phrase is positive.
"""

import json
import os

import jax
import jax.numpy as jnp
import ml_collections
import numpy as np
import optax

from dljax import models
from dljax.data import Splits, imdb
from dljax.errors import ConfigError, DataError
from dljax.tasks import sequence
from dljax.tasks.task import Task


def task_config() -> ml_collections.ConfigDict:
  """`config.sentiment`: pretrained embeddings and what `analyze` probes."""
  return ml_collections.ConfigDict(dict(
      glove="",  # a GloVe text file for the embedding rows ('' = random)
      probe_words=("good", "bad", "action", "boring", "8"),
      neighbours=10,
      probe_phrases=("the movie is boring and not good", "the movie is good and not boring"),
  ))


def validate(config: ml_collections.ConfigDict) -> None:
  values = imdb.options(config.data)
  if config.model.vocab_size != values["num_words"]:
    raise ConfigError(f"config.model.vocab_size={config.model.vocab_size}: must equal "
                      f"config.data.imdb.num_words={values['num_words']}")
  if "num_ngrams" not in config.model and values["ngrams"] > 1:
    raise ConfigError(f"config.data.imdb.ngrams={values['ngrams']}: {config.model.name} reads "
                      "words in order; n-gram ids are for bag_of_embeddings")
  if config.model.get("num_ngrams", 0) != values["num_ngrams"]:
    raise ConfigError(f"config.model.num_ngrams={config.model.num_ngrams}: must equal "
                      f"config.data.imdb.num_ngrams={values['num_ngrams']}")
  glove = config.sentiment.glove
  if glove and not os.path.isfile(glove):
    raise ConfigError(f"config.sentiment.glove={glove!r}: no such GloVe file")
  if config.sentiment.neighbours <= 0:
    raise ConfigError(f"config.sentiment.neighbours={config.sentiment.neighbours}: must be > 0")


def read_glove(path: str, words: list[str]) -> dict[str, np.ndarray]:
  """The GloVe vectors of `words` (those the file has), read line by line."""
  wanted, vectors = set(words), {}
  with open(path, encoding="utf-8") as f:
    for number, line in enumerate(f, 1):
      word, _, values = line.rstrip("\n").partition(" ")
      if word in wanted:
        try:
          vectors[word] = np.array(values.split(), np.float32)
        except ValueError as e:
          raise DataError(f"{path}:{number}: not 'word v1 ... vD': {e}") from e
  return vectors


def glove_rows(path: str, vocabulary: list[str]) -> tuple[np.ndarray, np.ndarray]:
  """The embedding rows of the vocabulary's words in the GloVe file, and their vectors [N, E];
  prints the coverage."""
  vectors = read_glove(path, vocabulary)
  rows = [index for index, word in enumerate(vocabulary) if word in vectors]
  sizes = {vector.size for vector in vectors.values()}
  if len(sizes) > 1:
    raise DataError(f"{path}: vectors of different sizes {sorted(sizes)}")
  words = len(vocabulary) - imdb.INDEX_FROM - 1
  print(f"GloVe {path}: {len(rows)} of the {words} vocabulary words found "
        f"({100 * len(rows) / words:.1f}%)")
  table = np.stack([vectors[vocabulary[row]] for row in rows]) if rows else np.zeros((0, 0))
  return np.array(rows, np.int32), table


def with_rows(table_VE: jax.Array, rows_N: np.ndarray, vectors_NE: np.ndarray,
              path: str) -> jax.Array:
  """`table_VE` with rows `rows_N` replaced by the GloVe vectors."""
  if len(rows_N) and vectors_NE.shape[1] != table_VE.shape[1]:
    raise ConfigError(f"config.sentiment.glove={path!r}: vectors of {vectors_NE.shape[1]} "
                      f"values, the model's embedding has {table_VE.shape[1]} "
                      "(config.model.embedding)")
  return table_VE.at[rows_N].set(vectors_NE) if len(rows_N) else table_VE


def nearest(table_VE: np.ndarray, vocabulary: list[str], word: str, count: int) -> list[str]:
  """The `count` words whose embeddings are nearest `word`'s by cosine (reserved ids skipped)."""
  words = table_VE[imdb.INDEX_FROM + 1: len(vocabulary)]
  unit = words / np.maximum(np.linalg.norm(words, axis=1, keepdims=True), 1e-12)
  query = vocabulary.index(word) - imdb.INDEX_FROM - 1
  order = np.argsort(-(unit @ unit[query]), kind="stable")
  return [vocabulary[imdb.INDEX_FROM + 1 + i] for i in order if i != query][:count]


def build(config: ml_collections.ConfigDict, data: Splits, total_steps: int) -> Task:
  """The sentiment Task of `config.model` on `config.data.imdb`'s ids."""
  del data
  vocabulary = imdb.load_vocabulary(config.data)
  choices = config.sentiment

  # Read here, on the host: `init` is traced.
  rows_N, vectors_NE = (glove_rows(choices.glove, vocabulary) if choices.glove
                        else (np.zeros(0, np.int32), np.zeros((0, 0), np.float32)))

  def init_params(params):
    table = with_rows(params["embedding"]["embedding"], rows_N, vectors_NE, choices.glove)
    return {**params, "embedding": {"embedding": table}}

  def values(logits_B, batch):
    labels_B = batch["label"].astype(jnp.float32)
    return {"loss": optax.sigmoid_binary_cross_entropy(logits_B, labels_B),
            "accuracy": ((logits_B > 0) == (labels_B > 0.5)).astype(jnp.float32)}

  model = models.build(config.model)

  def predict(state, batch, rng):
    del rng
    return {"probability": jax.nn.sigmoid(model.apply({"params": state.params},
                                                      batch["tokens"]))}

  def analyze(state, outputs, examples, workdir):
    del outputs, examples
    table = np.asarray(state.params["embedding"]["embedding"])
    neighbours = {word: nearest(table, vocabulary, word, choices.neighbours)
                  for word in choices.probe_words if word in vocabulary}
    phrases = imdb.encode(list(choices.probe_phrases), config.data)
    p_positive = jax.jit(predict)(state, {"tokens": phrases}, None)["probability"]
    probabilities = dict(zip(choices.probe_phrases, map(float, p_positive), strict=True))
    probes = {"nearest_by_cosine": neighbours, "p_positive": probabilities}
    with open(os.path.join(workdir, "probes.json"), "w") as f:
      json.dump(probes, f, indent=1)
    with open(os.path.join(workdir, "probes.txt"), "w") as f:
      f.writelines(f"{word}: {', '.join(near)}\n" for word, near in neighbours.items())
      f.writelines(f"p(positive | {phrase!r}) = {p:.4f}\n" for phrase, p in probabilities.items())
    return {}

  return sequence.build(config, total_steps, inputs=lambda batch: batch["tokens"],
                        values=values, init_params=init_params, predict=predict,
                        describe=describe, analyze=analyze)


def describe(outputs: dict[str, np.ndarray]) -> list[dict]:
  """A row per review: its class and the probability that it is positive."""
  return [{"class": imdb.LABEL_NAMES[int(p > 0.5)], "p(pos)": float(p)}
          for p in outputs["probability"]]

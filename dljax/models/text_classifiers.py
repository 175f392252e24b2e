"""Text classifiers on token ids (IMDB sentiment, family C): one logit per review.

Both start with Keras' Embedding(vocab_size, embedding), named 'embedding' so that GloVe
vectors load into `params/embedding/embedding` and `optimizer.freeze='embedding'` freezes it.
Id 0 is padding; with `mask_zero` (Keras' `Embedding(mask_zero=True)`) padding takes no part.

  BagOfEmbeddings: the mean of the review's embeddings (GlobalAveragePooling1D) -> Dense(1);
      with `num_ngrams` > 0 the ids vocab_size ... vocab_size + num_ngrams - 1 are n-grams with
      rows of their own (fastText's n-grams; the data set appends them to each review,
      `config.data.imdb.ngrams`, dljax/data/imdb.py). The course's `embeddings_model`:
      embedding=1, num_ngrams=0, mask_zero=False.
  LSTMClassifier: Embedding -> Dropout -> LSTM(units, dropout) (or Bidirectional) -> Dropout
      -> Dense(1). `pooling='last'`: the last state (the course's 2021 lstm_model);
      'max': GlobalMaxPool1D over the steps' outputs (the 2020 Bidirectional model).
"""

import jax
import jax.numpy as jnp
from flax import linen as nn

from dljax.errors import ConfigError
from dljax.models import layers, lstm

POOLINGS = ("last", "max")


class BagOfEmbeddings(nn.Module):
  vocab_size: int = 20_000
  embedding: int = 50
  num_ngrams: int = 0  # rows for n-gram ids after the words' (0 = words only)
  mask_zero: bool = True
  dropout: float = 0.0  # on the pooled vector

  def __post_init__(self):
    super().__post_init__()
    layers.check_sizes("vocab_size", self.vocab_size)
    layers.check_sizes("embedding", self.embedding)
    if self.num_ngrams < 0:
      raise ConfigError(f"config.model.num_ngrams={self.num_ngrams}: must be >= 0")
    layers.check_rate("dropout", self.dropout)

  @nn.compact
  def __call__(self, tokens_BT: jax.Array, *, train: bool = False) -> jax.Array:
    x_BTE = lstm.embed(self.vocab_size + self.num_ngrams, self.embedding,
                       name="embedding")(tokens_BT)
    if self.mask_zero:
      keep_BT1 = (tokens_BT > 0)[..., None].astype(x_BTE.dtype)
      pooled = (x_BTE * keep_BT1).sum(1) / jnp.maximum(keep_BT1.sum(1), 1.0)
    else:
      pooled = x_BTE.mean(1)
    pooled = layers.Dropout(self.dropout)(pooled, train=train)
    return lstm.dense(1)(pooled)[:, 0]


class LSTMClassifier(nn.Module):
  vocab_size: int = 5000
  embedding: int = 300
  units: int = 50
  bidirectional: bool = False
  pooling: str = "last"  # a name of POOLINGS
  dropout: float = 0.2  # Dropout before and after the LSTM, and the LSTM's input dropout
  mask_zero: bool = True
  unroll: int = 1

  def __post_init__(self):
    super().__post_init__()
    for key in ("vocab_size", "embedding", "units", "unroll"):
      layers.check_sizes(key, getattr(self, key))
    layers.check_rate("dropout", self.dropout)
    if self.pooling not in POOLINGS:
      raise ConfigError(f"config.model.pooling={self.pooling!r}: allowed: {', '.join(POOLINGS)}")

  @nn.compact
  def __call__(self, tokens_BT: jax.Array, *, train: bool = False) -> jax.Array:
    x = lstm.embed(self.vocab_size, self.embedding, name="embedding")(tokens_BT)
    x = layers.Dropout(self.dropout)(x, train=train)
    mask_BT = tokens_BT > 0 if self.mask_zero else None
    if self.bidirectional:
      h_BTH, last_BH = lstm.Bidirectional(self.units, self.dropout, unroll=self.unroll)(
          x, mask_BT=mask_BT, train=train)
    else:
      h_BTH, (last_BH, _) = lstm.LSTM(self.units, self.dropout, unroll=self.unroll)(
          x, mask_BT=mask_BT, train=train)
    if self.pooling == "max":
      last_BH = (h_BTH if mask_BT is None
                 else jnp.where(mask_BT[..., None], h_BTH, -jnp.inf)).max(1)
    x = layers.Dropout(self.dropout)(last_BH, train=train)
    return lstm.dense(1)(x)[:, 0]

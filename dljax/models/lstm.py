"""LSTM layers with Keras' maths, and the sequence models built on them (family C).

`LSTM` is Keras' LSTM (keras/src/layers/rnn/lstm.py): parameters `kernel` [D, 4H],
`recurrent_kernel` [H, 4H] and `bias` [4H], gates in Keras' order i, f, c, o, so Keras weights
load one to one (a test checks the outputs against Keras itself):

    z_t = x_t W + h_{t-1} U + b
    i, f, o = sigmoid(z_i), sigmoid(z_f), sigmoid(z_o);  c_t = f c_{t-1} + i tanh(z_c)
    h_t = o tanh(c_t)

Keras' initialisers: glorot_uniform kernel, orthogonal recurrent kernel, zero bias but 1 for the
forget gate (`unit_forget_bias`). Speed: x_t W for every step is one matrix product over the
whole sequence, outside the recurrence; `lax.scan` runs only h U and the gates. Keras' dropout:
`dropout` drops inputs and `recurrent_dropout` drops h_{t-1}, each with one mask per sequence
for all its steps. A mask (Keras' `mask_zero`) keeps the state unchanged over masked steps and
outputs zeros there. `Bidirectional` is Keras' (`merge_mode='concat'`): a second LSTM reads the
sequence backwards, its outputs put back in time order.

Models (the task feeds token ids or values; logits come out, the task applies the activation):
  LanguageModel: Embedding -> LSTM x num_layers (Dropout between) -> Dense(vocab_size) at every
      step; it also takes and returns the LSTM states, so sampling runs one step at a time.
  SequenceRegressor: values [B, T] -> LSTM(units) -> Dense(outputs) (the airline tutorial).
"""

from collections.abc import Sequence

import jax
import jax.numpy as jnp
from flax import linen as nn

from dljax.models import layers

Carry = tuple[jax.Array, jax.Array]  # (h_BH, c_BH)


def _keras_bias(rng: jax.Array, shape: Sequence[int], dtype=jnp.float32) -> jax.Array:
  """Zeros, with the forget gate's quarter at 1 (Keras' `unit_forget_bias=True`)."""
  del rng
  units = shape[0] // 4
  return jnp.zeros(shape, dtype).at[units: 2 * units].set(1.0)


def _dropout_mask(module: nn.Module, rate: float, shape: Sequence[int]) -> jax.Array:
  """One inverted-dropout mask (kept / (1 - rate), or 0) for every step of each sequence."""
  keep = jax.random.bernoulli(module.make_rng("dropout"), 1.0 - rate, shape)
  return keep / (1.0 - rate)


def embed(vocab_size: int, features: int, name: str | None = None) -> nn.Embed:
  """Keras' Embedding: uniform in [-0.05, 0.05)."""
  return nn.Embed(vocab_size, features, name=name,
                  embedding_init=layers.initializer("random_uniform"))


def dense(features: int, name: str | None = None) -> nn.Dense:
  """Keras' Dense: glorot_uniform kernel, zero bias."""
  return nn.Dense(features, kernel_init=nn.initializers.glorot_uniform(), name=name)


class LSTM(nn.Module):
  """x [B, T, D] -> (h_t for every t [B, T, H], the last (h, c)); Keras' LSTM, see above."""
  units: int
  dropout: float = 0.0
  recurrent_dropout: float = 0.0
  reverse: bool = False  # read the sequence from its end (Keras' go_backwards, outputs in order)
  unroll: int = 1  # steps per iteration of the compiled loop (lax.scan's unroll)

  def __post_init__(self):
    super().__post_init__()
    layers.check_sizes("units", self.units)
    layers.check_rate("dropout", self.dropout)
    layers.check_rate("recurrent_dropout", self.recurrent_dropout)

  @nn.compact
  def __call__(self, x_BTD: jax.Array, *, mask_BT: jax.Array | None = None,
               carry: Carry | None = None, train: bool = False) -> tuple[jax.Array, Carry]:
    batch, _, features = x_BTD.shape
    units = self.units
    kernel = self.param("kernel", nn.initializers.glorot_uniform(), (features, 4 * units))
    recurrent = self.param("recurrent_kernel", nn.initializers.orthogonal(), (units, 4 * units))
    bias = self.param("bias", _keras_bias, (4 * units,))
    if train and self.dropout:
      x_BTD = x_BTD * _dropout_mask(self, self.dropout, (batch, 1, features))
    recurrent_mask = (_dropout_mask(self, self.recurrent_dropout, (batch, units))
                      if train and self.recurrent_dropout else None)
    # Time-major, so the scan slices its leading axis.
    z_TBG = jnp.einsum("btd,dg->tbg", x_BTD, kernel) + bias
    if carry is None:
      carry = (jnp.zeros((batch, units), z_TBG.dtype),) * 2
    mask_TB1 = None if mask_BT is None else jnp.swapaxes(mask_BT, 0, 1)[..., None]

    def step(carry, inputs):
      z_BG, keep_B1 = inputs
      h_BH, c_BH = carry
      h_in = h_BH if recurrent_mask is None else h_BH * recurrent_mask
      z_BG = z_BG + h_in @ recurrent
      i, f, g, o = jnp.split(z_BG, 4, axis=-1)
      c_new = jax.nn.sigmoid(f) * c_BH + jax.nn.sigmoid(i) * jnp.tanh(g)
      h_new = jax.nn.sigmoid(o) * jnp.tanh(c_new)
      if keep_B1 is None:
        return (h_new, c_new), h_new
      return ((jnp.where(keep_B1, h_new, h_BH), jnp.where(keep_B1, c_new, c_BH)),
              jnp.where(keep_B1, h_new, 0.0))

    carry, h_TBH = jax.lax.scan(step, carry, (z_TBG, mask_TB1), reverse=self.reverse,
                                unroll=self.unroll)
    return jnp.swapaxes(h_TBH, 0, 1), carry


class Bidirectional(nn.Module):
  """Keras' Bidirectional(LSTM(units)), merge_mode='concat': outputs [B, T, 2H] and the
  concatenated last states [B, 2H] (the forward one after the last step, the backward one after
  the first)."""
  units: int
  dropout: float = 0.0
  recurrent_dropout: float = 0.0
  unroll: int = 1

  @nn.compact
  def __call__(self, x_BTD: jax.Array, *, mask_BT: jax.Array | None = None,
               train: bool = False) -> tuple[jax.Array, jax.Array]:
    outputs, last_h = [], []
    for reverse, name in ((False, "forward"), (True, "backward")):
      h_BTH, (h_BH, _) = LSTM(self.units, self.dropout, self.recurrent_dropout, reverse,
                              self.unroll, name=name)(x_BTD, mask_BT=mask_BT, train=train)
      outputs.append(h_BTH)
      last_h.append(h_BH)
    return jnp.concatenate(outputs, axis=-1), jnp.concatenate(last_h, axis=-1)


class LanguageModel(nn.Module):
  """tokens [B, T] (and the LSTMs' states, or None) -> (logits [B, T, vocab_size], states)."""
  vocab_size: int = 65
  embedding: int = 64
  units: Sequence[int] = (512,)  # one LSTM layer per entry
  dropout: float = 0.0  # Dropout after the embedding and after every LSTM layer
  unroll: int = 1

  def __post_init__(self):
    super().__post_init__()
    for key in ("vocab_size", "embedding", "units", "unroll"):
      layers.check_sizes(key, getattr(self, key))
    layers.check_rate("dropout", self.dropout)

  @nn.compact
  def __call__(self, tokens_BT: jax.Array, carries: Sequence[Carry] | None = None, *,
               train: bool = False) -> tuple[jax.Array, tuple[Carry, ...]]:
    x = embed(self.vocab_size, self.embedding)(tokens_BT)
    x = layers.Dropout(self.dropout)(x, train=train)
    new_carries = []
    for index, units in enumerate(self.units):
      x, carry = LSTM(units, unroll=self.unroll)(
          x, carry=None if carries is None else carries[index], train=train)
      x = layers.Dropout(self.dropout)(x, train=train)
      new_carries.append(carry)
    return dense(self.vocab_size)(x), tuple(new_carries)


class SequenceRegressor(nn.Module):
  """values [B, T] -> LSTM(units) over the T steps (one feature each) -> Dense(outputs) [B, K]."""
  units: int = 16
  outputs: int = 1

  def __post_init__(self):
    super().__post_init__()
    layers.check_sizes("outputs", self.outputs)

  @nn.compact
  def __call__(self, values_BT: jax.Array, *, train: bool = False) -> jax.Array:
    _, (h_BH, _) = LSTM(self.units)(values_BT[..., None], train=train)
    return dense(self.outputs)(h_BH)

"""The on-device input pipeline: whole splits live on the accelerators, batches are cut in jit.

Batch `i` of epoch `e` holds the examples `permutation(key(seed, e))[i*B : (i+1)*B]`, so the data
order is a pure function of (seed, step): resuming at any step gives exactly the batches an
uninterrupted run would have seen, and the host never touches a batch.
"""

from collections.abc import Iterator

import jax
import jax.numpy as jnp
import numpy as np
from jax.sharding import Mesh

from dljax import sharding

Batch = dict[str, jax.Array]


def _gather(data: Batch, order_N: jax.Array, start: jax.Array,
            size: int) -> tuple[Batch, jax.Array]:
  """Examples `order_N[start : start + size]`, and a mask that is False past `order_N`'s end."""
  position_B = start + jnp.arange(size)
  mask_B = position_B < order_N.shape[0]
  index_B = order_N[jnp.minimum(position_B, order_N.shape[0] - 1)]
  return jax.tree.map(lambda x: x[index_B], data), mask_B


class OnDevice:
  """One split, replicated on every device, served as batches sharded over the 'data' axis."""

  def __init__(self, arrays: dict[str, np.ndarray], mesh: Mesh):
    self.num_examples = len(next(iter(arrays.values())))
    self._data = sharding.put_replicated(arrays, mesh)
    self._permutation = jax.jit(
        lambda key: jax.random.permutation(key, self.num_examples),
        out_shardings=sharding.replicated(mesh))
    self._epoch_order = (None, None)
    self._gather = jax.jit(
        _gather, static_argnums=(3,), out_shardings=sharding.data_sharded(mesh))

  def train_batch(self, data_key: jax.Array, step: int, batch_size: int) -> Batch:
    """The `step`-th batch of shuffled epochs; a trailing partial batch of each epoch is dropped."""
    epoch, index = divmod(step, self.num_examples // batch_size)
    if self._epoch_order[0] != epoch:
      self._epoch_order = (epoch, self._permutation(jax.random.fold_in(data_key, epoch)))
    batch, _ = self._gather_sharded(self._epoch_order[1], index * batch_size, batch_size)
    return batch

  def eval_batches(self, batch_size: int) -> Iterator[tuple[Batch, jax.Array]]:
    """The split in order, in batches of `batch_size`; the last is padded and its mask marks it."""
    order = jnp.arange(self.num_examples)
    for start in range(0, self.num_examples, batch_size):
      yield self._gather_sharded(order, start, batch_size)

  def _gather_sharded(self, order, start, size):
    return self._gather(self._data, order, np.int32(start), size)

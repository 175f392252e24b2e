"""The ceiling: a hand-written Flax + Optax loop of the same maths, no trainer around it.

What someone who knows JAX writes for one model on data that fits in memory: the data on the
device once, each epoch ONE compiled call (a `lax.scan` over its batches, each gathered on the
device from that epoch's permutation), the loss and accuracy summed inside the scan and read
once per epoch. No checkpoints, logs, evaluation, resumable data order or sharding: whatever
dljax spends beyond this is the price of its trainer. The models are the spec's layers in
`flax.linen` with the two CPU-fast operations dljax's models use (`dljax.models.layers`: the
reshape max-pool with its own gradient, the convolution whose kernel gradient is a plain
convolution), so both run the same maths; the optimisers are Optax's with Keras' arguments
(RMSprop with eps inside the sqrt, as Keras 3), initialised as Keras does.

What is timed: steady-state examples/s over epochs 2.. (each epoch's metrics are fetched to the
host at its end, which waits for its last step); `compile_seconds` is the ahead-of-time
compilation of the epoch.
"""

import os
import time
from importlib import metadata
from typing import Any

from bench.frameworks import common

_OPTIMIZERS = {
    "RMSprop": lambda optax, a: optax.rmsprop(a["learning_rate"], decay=a["rho"],
                                              eps=a["epsilon"], eps_in_sqrt=True),
    "Adadelta": lambda optax, a: optax.adadelta(a["learning_rate"], rho=a["rho"],
                                                eps=a["epsilon"]),
    "Adam": lambda optax, a: optax.adam(a["learning_rate"], b1=a["beta_1"], b2=a["beta_2"],
                                        eps=a["epsilon"]),
}


def _model(spec: common.ModelSpec):
  """The spec's layers as one Flax Linen module: `apply(variables, x, train, rngs=...)`."""
  from flax import linen as nn

  from dljax.models import layers

  glorot = nn.initializers.glorot_uniform()  # Keras' default kernels (biases: zeros in both)

  class Model(nn.Module):
    @nn.compact
    def __call__(self, x, train: bool):
      for layer in spec.layers:
        if layer.kind == "conv":
          x = nn.relu(nn.Conv(int(layer.size), (common.KERNEL_SIZE,) * 2, kernel_init=glorot,
                              padding=layer.padding.upper(),
                              conv_general_dilated=layers.conv_general_dilated)(x))
        elif layer.kind in ("dense", "logits"):
          x = nn.Dense(int(layer.size), kernel_init=glorot)(x)
          x = nn.relu(x) if layer.kind == "dense" else x
        elif layer.kind == "max_pool":
          x = layers.max_pool_2x2(x)  # common.POOL_SIZE
        elif layer.kind == "dropout":
          x = nn.Dropout(layer.size, deterministic=not train)(x)
        elif layer.kind == "flatten":
          x = x.reshape(x.shape[0], -1)
        elif layer.kind == "global_avg_pool":
          x = x.mean(axis=(1, 2))
      return x

  return Model()


def train(spec: common.ModelSpec, num_examples: int, epochs: int) -> dict[str, Any]:
  """Trains `spec` for `epochs` epochs of `num_examples` random examples, an epoch a call."""
  import jax
  import jax.numpy as jnp
  import optax

  images, labels = common.random_data(spec, num_examples)
  images_NHWC = jax.device_put(images)  # uint8 on the device, scaled per batch as dljax does
  labels_N = jax.device_put(labels.astype("int32"))
  steps = num_examples // spec.batch_size
  model = _model(spec)
  optimizer = _OPTIMIZERS[spec.optimizer.name](optax, spec.optimizer.args)
  params_key, dropout_key, data_key = jax.random.split(jax.random.key(0), 3)
  params = model.init(params_key, jnp.zeros((1, *spec.input_shape)), train=False)["params"]
  opt_state = optimizer.init(params)

  def loss_fn(params, x_BHWC, y_B, key):
    logits_BC = model.apply({"params": params}, x_BHWC, train=True, rngs={"dropout": key})
    loss = optax.softmax_cross_entropy_with_integer_labels(logits_BC, y_B).mean()
    return loss, (logits_BC.argmax(-1) == y_B).mean()

  def step(carry, index_B):
    params, opt_state, key, loss_sum, accuracy_sum = carry
    key, step_key = jax.random.split(key)
    x_BHWC = images_NHWC[index_B].astype(jnp.float32) / 255.0
    (loss, accuracy), grads = jax.value_and_grad(loss_fn, has_aux=True)(
        params, x_BHWC, labels_N[index_B], step_key)
    updates, opt_state = optimizer.update(grads, opt_state, params)
    return (optax.apply_updates(params, updates), opt_state, key, loss_sum + loss,
            accuracy_sum + accuracy), None

  @jax.jit
  def epoch(params, opt_state, key, epoch_index):
    order_SB = jax.random.permutation(jax.random.fold_in(data_key, epoch_index), num_examples)[
        :steps * spec.batch_size].reshape(steps, spec.batch_size)
    (params, opt_state, key, loss_sum, accuracy_sum), _ = jax.lax.scan(
        step, (params, opt_state, key, 0.0, 0.0), order_SB)
    return params, opt_state, key, loss_sum / steps, accuracy_sum / steps

  compile_start = time.perf_counter()
  epoch = epoch.lower(params, opt_state, dropout_key, 0).compile()
  compile_seconds = time.perf_counter() - compile_start
  timer, key = common.EpochTimer(), dropout_key
  for epoch_index in range(epochs):
    timer.start()
    params, opt_state, key, loss, accuracy = epoch(params, opt_state, key, epoch_index)
    loss, accuracy = float(loss), float(accuracy)  # waits for the epoch's last step
    timer.stop()
  first, *steady = timer.epoch_seconds
  device = jax.devices()[0]
  return common.measurement(
      steady, steps * spec.batch_size,
      compile_seconds=compile_seconds,
      first_epoch_seconds=compile_seconds + first,
      parameters=sum(x.size for x in jax.tree.leaves(params)),
      final_loss=loss,
      final_accuracy=accuracy,
      versions={name: metadata.version(name) for name in ("jax", "jaxlib", "flax", "optax")},
      devices=f"{jax.device_count()} x {device.platform} ({device.device_kind})",
      xla_flags=os.environ.get("XLA_FLAGS", ""),
  )

"""The ceiling: a hand-written Flax + Optax loop of the same maths, no trainer around it.

What someone who knows JAX writes for one model on data that fits in memory: the data on the
device once, each epoch ONE compiled call (a `lax.scan` over its batches, each gathered on the
device from that epoch's permutation), the loss and accuracy summed inside the scan and read
once per epoch. No checkpoints, logs, evaluation, resumable data order or sharding: whatever
dljax spends beyond this is the price of its trainer. The models are the spec's layers in
`flax.linen` with the two CPU-fast operations dljax's models use (`dljax.models.layers`: the
reshape max-pool with its own gradient, the convolution whose kernel gradient is a plain
convolution), so both run the same maths, and the LSTMs are dljax's Keras layers
(`dljax.models.lstm`); the optimisers are Optax's with Keras' arguments (RMSprop with eps inside
the sqrt, as Keras 3; Keras' `global_clipnorm` as `optax.clip_by_global_norm`), initialised as
Keras does.

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


def _sequence_model(spec: common.SequenceSpec):
  """The spec's LSTM in `flax.linen` from dljax's Keras layers (`dljax.models.lstm`)."""
  from flax import linen as nn

  from dljax.models import lstm

  class Model(nn.Module):
    @nn.compact
    def __call__(self, ids_BT, train: bool):
      x = lstm.embed(spec.vocab_size, spec.embedding)(ids_BT)
      x = nn.Dropout(spec.dropout, deterministic=not train)(x)
      h_BTH, (h_BH, _) = lstm.LSTM(spec.units, spec.dropout)(
          x, mask_BT=ids_BT > 0 if spec.mask_zero else None, train=train)
      x = nn.Dropout(spec.dropout, deterministic=not train)(h_BTH if spec.per_step else h_BH)
      outputs = lstm.dense(spec.vocab_size if spec.per_step else 1)(x)
      return outputs if spec.per_step else outputs[:, 0]

  return Model()


def _optimizer(optax, spec):
  """The spec's Optax optimiser, with global-norm clipping first where Keras' is given."""
  args = dict(spec.optimizer.args)
  clip_norm = args.pop("global_clipnorm", None)
  optimizer = _OPTIMIZERS[spec.optimizer.name](optax, args)
  return optax.chain(optax.clip_by_global_norm(clip_norm), optimizer) if clip_norm else optimizer


def train(spec: common.ModelSpec | common.SequenceSpec, num_examples: int,
          epochs: int) -> dict[str, Any]:
  """Trains `spec` for `epochs` epochs of `num_examples` random examples, an epoch a call."""
  import jax
  import jax.numpy as jnp
  import optax

  if isinstance(spec, common.SequenceSpec):
    inputs, targets = common.token_data(spec, num_examples)
    model, scale = _sequence_model(spec), lambda ids_BT: ids_BT
    per_example_loss = (optax.softmax_cross_entropy_with_integer_labels if spec.per_step
                         else lambda logits_B, y_B: optax.sigmoid_binary_cross_entropy(
                             logits_B, y_B.astype(jnp.float32)))
    correct = ((lambda logits, y: logits.argmax(-1) == y) if spec.per_step
               else lambda logits_B, y_B: (logits_B > 0) == (y_B > 0))
  else:
    inputs, targets = common.random_data(spec, num_examples)
    model = _model(spec)
    scale = lambda images: images.astype(jnp.float32) / 255.0  # per batch, as dljax does
    per_example_loss = optax.softmax_cross_entropy_with_integer_labels
    correct = lambda logits_BC, y_B: logits_BC.argmax(-1) == y_B
  inputs_N = jax.device_put(inputs)  # uint8 images or int32 ids, on the device
  targets_N = jax.device_put(targets.astype("int32"))
  steps = num_examples // spec.batch_size
  optimizer = _optimizer(optax, spec)
  params_key, dropout_key, data_key = jax.random.split(jax.random.key(0), 3)
  params = model.init(params_key, scale(inputs_N[:1]), train=False)["params"]
  opt_state = optimizer.init(params)

  def loss_fn(params, x_B, y_B, key):
    logits = model.apply({"params": params}, x_B, train=True, rngs={"dropout": key})
    return per_example_loss(logits, y_B).mean(), correct(logits, y_B).mean()

  def step(carry, index_B):
    params, opt_state, key, loss_sum, accuracy_sum = carry
    key, step_key = jax.random.split(key)
    (loss, accuracy), grads = jax.value_and_grad(loss_fn, has_aux=True)(
        params, scale(inputs_N[index_B]), targets_N[index_B], step_key)
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

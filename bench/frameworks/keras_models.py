"""Keras 3 on its JAX backend: the benchmark's models as `keras.Sequential`, trained by `fit`.

The idiomatic path a Keras user takes: in-memory numpy arrays (float32 in [0, 1], as the Keras
examples scale them), `compile` with the sparse categorical cross-entropy from logits and the
accuracy metric (dljax computes both every step too), `fit` with shuffling and `verbose=0` (no
progress bar to draw). Keras' defaults are the specs' defaults: glorot_uniform kernels, zero
biases, `jit_compile` on. What is timed, by a callback that only hooks epoch and batch starts
(hooking batch ends would turn off Keras' asynchronous callback dispatch and slow it down):

- steady-state examples/s: epochs 2.. (epoch begin to epoch end; Keras syncs the metrics there).
- `compile_seconds`: the start of batch 1 to the start of batch 2: tracing, XLA compilation and
  dispatch of the first train step.
"""

import os
import time
from importlib import metadata
from typing import Any

from bench.frameworks import common

os.environ.setdefault("KERAS_BACKEND", "jax")  # before Keras is imported; the runner sets it too

# The benchmark's layers in Keras. Every conv is 3x3 stride 1; every pool 2x2 stride 2, 'valid'.
_LAYERS = {
    "conv": lambda keras, layer: keras.layers.Conv2D(
        int(layer.size), common.KERNEL_SIZE, padding=layer.padding, activation="relu"),
    "dense": lambda keras, layer: keras.layers.Dense(int(layer.size), activation="relu"),
    "logits": lambda keras, layer: keras.layers.Dense(int(layer.size)),
    "max_pool": lambda keras, layer: keras.layers.MaxPooling2D(common.POOL_SIZE),
    "dropout": lambda keras, layer: keras.layers.Dropout(layer.size),
    "flatten": lambda keras, layer: keras.layers.Flatten(),
    "global_avg_pool": lambda keras, layer: keras.layers.GlobalAveragePooling2D(),
}


def _unet(keras, spec: common.ModelSpec):
  """The UNet of `spec.unet` in the functional API (dljax/models/unet.py, layer for layer)."""
  conv = lambda units, kernel=common.KERNEL_SIZE: keras.layers.Conv2D(
      units, kernel, padding="same", activation="relu", kernel_initializer="he_normal")
  *features, bottleneck = spec.unet
  inputs = x = keras.Input(spec.input_shape)
  skips = []
  for level, units in enumerate(features):
    x = conv(units)(x)
    if level == len(features) - 1:
      x = keras.layers.Dropout(common.UNET_DROPOUT)(x)
    skips.append(x)
    x = keras.layers.MaxPooling2D(common.POOL_SIZE)(x)
  x = keras.layers.Dropout(common.UNET_DROPOUT)(conv(bottleneck)(x))
  for units, skip in zip(reversed(features), reversed(skips), strict=True):
    x = conv(units, common.UNET_UP_KERNEL)(keras.layers.UpSampling2D(2)(x))
    x = conv(units)(keras.layers.Concatenate()([skip, x]))
  outputs = keras.layers.Conv2D(spec.input_shape[-1], common.KERNEL_SIZE, padding="same")(x)
  return keras.Model(inputs, outputs, name=spec.name)


def build(spec: common.ModelSpec):
  """The spec's model, compiled with its optimiser and loss: ready for `fit`."""
  import keras

  optimizer = getattr(keras.optimizers, spec.optimizer.name)(**spec.optimizer.args)
  if spec.unet:
    model = _unet(keras, spec)
    model.compile(optimizer=optimizer, loss="mse")
    return model
  model = keras.Sequential([keras.Input(spec.input_shape),
                            *(_LAYERS[layer.kind](keras, layer) for layer in spec.layers)],
                           name=spec.name)
  model.compile(optimizer=optimizer,
                loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True),
                metrics=["accuracy"])
  return model


def build_sequence(spec: common.SequenceSpec):
  """The spec's LSTM as `keras.Sequential` on int32 ids, compiled with its optimiser and loss
  (binary or sparse categorical cross-entropy from logits) and the accuracy metric."""
  import keras

  dropout = [keras.layers.Dropout(spec.dropout)] if spec.dropout else []
  model = keras.Sequential([
      keras.Input((spec.seq_len,), dtype="int32"),
      keras.layers.Embedding(spec.vocab_size, spec.embedding, mask_zero=spec.mask_zero),
      *dropout,
      keras.layers.LSTM(spec.units, dropout=spec.dropout, return_sequences=spec.per_step),
      *dropout,
      keras.layers.Dense(spec.vocab_size if spec.per_step else 1)], name=spec.name)
  optimizer = getattr(keras.optimizers, spec.optimizer.name)(**spec.optimizer.args)
  if spec.per_step:
    model.compile(optimizer=optimizer,
                  loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True),
                  metrics=["accuracy"])
  else:
    model.compile(optimizer=optimizer, loss=keras.losses.BinaryCrossentropy(from_logits=True),
                  metrics=[keras.metrics.BinaryAccuracy(threshold=0.0)])
  return model


def build_gan(spec: common.GanSpec):
  """(generator, discriminator compiled alone, the two stacked and compiled with D frozen): the
  reports' Keras DCGAN."""
  import keras
  from keras import layers

  height, width, channels = spec.input_shape
  small, large = common.GAN_FEATURES
  conv = lambda features, **kwargs: layers.Conv2D(features, common.GAN_KERNEL_SIZE,
                                                  padding="same", **kwargs)
  adam = lambda: getattr(keras.optimizers, spec.optimizer.name)(**spec.optimizer.args)
  generator = keras.Sequential([
      keras.Input((spec.latent,)),
      layers.Dense(height // 4 * width // 4 * large,
                   kernel_initializer=keras.initializers.RandomNormal(stddev=0.02)),
      layers.LeakyReLU(common.GAN_LEAK), layers.Reshape((height // 4, width // 4, large)),
      layers.UpSampling2D(), conv(small), layers.LeakyReLU(common.GAN_LEAK),
      layers.UpSampling2D(), conv(channels, activation="tanh")], name="generator")
  discriminator = keras.Sequential([
      keras.Input(spec.input_shape),
      conv(small, strides=2), layers.LeakyReLU(common.GAN_LEAK), layers.Dropout(common.GAN_DROPOUT),
      conv(large, strides=2), layers.LeakyReLU(common.GAN_LEAK), layers.Dropout(common.GAN_DROPOUT),
      layers.Flatten(), layers.Dense(1, activation="sigmoid")], name="discriminator")
  discriminator.compile(adam(), "binary_crossentropy", metrics=["accuracy"])
  discriminator.trainable = False
  noise = keras.Input((spec.latent,))
  stacked = keras.Model(noise, discriminator(generator(noise)))
  stacked.compile(adam(), "binary_crossentropy")
  return generator, discriminator, stacked


def train_gan(spec: common.GanSpec, num_examples: int, epochs: int) -> dict[str, Any]:
  """The reports' loop: per batch, G's images by `predict_on_batch`, D's `train_on_batch` on
  real + fake, then the stacked model's on noise labelled real. D is made trainable for its own
  update only (Keras 3 reads `trainable` at each call; checked: each update changes only its
  network). `compile_seconds`: the first step's wall time (both updates' compilation)."""
  import keras
  import numpy as np

  keras.utils.set_random_seed(0)
  images = common.random_data(spec, num_examples)[0].astype("float32") / 127.5 - 1.0
  generator, discriminator, stacked = build_gan(spec)
  rng = np.random.default_rng(0)
  batch = spec.batch_size
  labels = np.concatenate([np.ones(batch), np.zeros(batch)]).astype("float32")
  timer = common.EpochTimer()
  compile_seconds = None
  for _ in range(epochs):
    timer.start()
    order = rng.permutation(num_examples)
    d_results, g_losses = [], []
    for step in range(num_examples // batch):
      real = images[order[step * batch:(step + 1) * batch]]
      fake = generator.predict_on_batch(rng.normal(size=(batch, spec.latent)).astype("float32"))
      discriminator.trainable = True
      d_results.append(discriminator.train_on_batch(np.concatenate([real, fake]), labels))
      discriminator.trainable = False
      g_losses.append(stacked.train_on_batch(
          rng.normal(size=(batch, spec.latent)).astype("float32"), labels[:batch]))
      if compile_seconds is None:
        compile_seconds = time.perf_counter() - timer.start_time
    timer.stop()
  first, *steady = timer.epoch_seconds
  d_loss, d_accuracy = np.mean(d_results[-(num_examples // batch):], axis=0)
  return common.measurement(
      steady, num_examples // batch * batch,
      compile_seconds=compile_seconds,
      first_epoch_seconds=first,
      parameters=generator.count_params() + discriminator.count_params(),
      final_loss=float(d_loss),  # D's, over its real + fake batches of the last epoch
      final_accuracy=float(d_accuracy),
      g_loss=float(np.mean(g_losses[-(num_examples // batch):])),
      **_facts())


def train(spec: common.ModelSpec | common.GanSpec | common.SequenceSpec, num_examples: int,
          epochs: int) -> dict[str, Any]:
  """Trains `spec` with `model.fit` for `epochs` epochs of `num_examples` random examples (a
  GAN: `train_gan`)."""
  if isinstance(spec, common.GanSpec):
    return train_gan(spec, num_examples, epochs)
  import keras

  class Timer(keras.callbacks.Callback):
    """Epoch wall times, and the time from the first batch's start to the second's."""

    def __init__(self):
      super().__init__()
      self.epoch_timer = common.EpochTimer()
      self.batch_starts: list[float] = []

    def on_epoch_begin(self, epoch, logs=None):
      self.epoch_timer.start()

    def on_epoch_end(self, epoch, logs=None):
      self.epoch_timer.stop()

    def on_train_batch_begin(self, batch, logs=None):
      if len(self.batch_starts) < 2:
        self.batch_starts.append(time.perf_counter())

  keras.utils.set_random_seed(0)
  if isinstance(spec, common.SequenceSpec):
    inputs, targets = common.token_data(spec, num_examples)
    model = build_sequence(spec)
  elif spec.unet:
    inputs, targets = common.denoising_data(spec, num_examples)
    model = build(spec)
  else:
    images, targets = common.random_data(spec, num_examples)
    inputs = images.astype("float32") / 255.0
    model = build(spec)
  timer = Timer()
  history = model.fit(inputs, targets, batch_size=spec.batch_size, epochs=epochs, shuffle=True,
                      verbose=0, callbacks=[timer])
  first, *steady = timer.epoch_timer.epoch_seconds
  return common.measurement(
      steady, num_examples,
      compile_seconds=timer.batch_starts[1] - timer.batch_starts[0],
      first_epoch_seconds=first,
      parameters=model.count_params(),
      final_loss=float(history.history["loss"][-1]),
      final_accuracy=next((float(values[-1]) for name, values in history.history.items()
                           if name.endswith("accuracy")), None),
      **_facts())


def _facts() -> dict[str, Any]:
  """Versions, devices and XLA flags, for the measurement."""
  import jax
  import keras

  device = jax.devices()[0]
  return dict(
      versions={"keras": keras.__version__, "backend": keras.backend.backend(),
                "jax": metadata.version("jax"), "jaxlib": metadata.version("jaxlib")},
      devices=f"{jax.device_count()} x {device.platform} ({device.device_kind})",
      xla_flags=os.environ.get("XLA_FLAGS", ""),
  )

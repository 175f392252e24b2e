"""What every framework's benchmark shares: the models, their data, the timing rule.

Each model is written once here as a framework-neutral list of layers plus an optimiser with
Keras' argument names (the reference semantics); `keras_models.py` and `torch_models.py`
translate it, and `dljax_trainer.py` checks that the dljax config file describes the same model.
The parameter count computed here from the layer list is the cross-check that every framework
built the same network. The DCGAN (`GanSpec`) is a fixed architecture, the reports', benchmarked
as its whole train step: one discriminator and one generator update. The LSTMs (`SequenceSpec`)
read token ids: Embedding -> LSTM -> Dense, one logit per sequence (IMDB) or a distribution
over the vocabulary at every step (the char LM); their throughput is also given in tokens/s.
"""

import dataclasses
import time
from collections.abc import Iterator
from typing import Any, NamedTuple

import numpy as np

KERNEL_SIZE = 3  # every conv of the three models is 3x3, stride 1
POOL_SIZE = 2  # every max-pool is 2x2, stride 2, 'valid'


class Layer(NamedTuple):
  """One layer: 'conv' and 'dense' include their relu; 'logits' is the last, linear, dense."""

  kind: str  # conv | dense | logits | max_pool | dropout | flatten | global_avg_pool
  size: float = 0  # conv filters, dense units, or dropout rate
  padding: str = "valid"  # conv only: 'valid' or 'same'


def conv(filters: int, padding: str = "valid") -> Layer:
  return Layer("conv", filters, padding)


def dense(units: int) -> Layer:
  return Layer("dense", units)


def logits(classes: int) -> Layer:
  return Layer("logits", classes)


def dropout(rate: float) -> Layer:
  return Layer("dropout", rate)


MAX_POOL = Layer("max_pool")
FLATTEN = Layer("flatten")
GLOBAL_AVG_POOL = Layer("global_avg_pool")


@dataclasses.dataclass(frozen=True)
class Optimizer:
  name: str  # the Keras class name: RMSprop, Adadelta, Adam
  args: dict[str, float]  # Keras argument names and values, defaults spelt out


@dataclasses.dataclass(frozen=True)
class ModelSpec:
  name: str
  input_shape: tuple[int, int, int]  # height, width, channels
  layers: tuple[Layer, ...]
  optimizer: Optimizer
  batch_size: int
  tfds_name: str  # the data set dljax's config reads (served by tfds.testing.mock_data)
  dljax_config: str  # relative to the repository root
  # An image-to-image UNet instead of `layers` (unet_cifar10): its levels' filters, then the
  # bottleneck's; trained from noisy images (sigma NOISE_SIGMA) to the clean ones on the MSE.
  unet: tuple[int, ...] = ()
  dljax_overrides: dict[str, Any] = dataclasses.field(default_factory=dict)  # on its config


@dataclasses.dataclass(frozen=True)
class GanSpec:
  """The Imperial reports' MNIST DCGAN step (configs/gan_mnist.py, dljax/models/dcgan.py):
  D (Conv64 5x5 s2, LReLU .2, Drop .3, Conv128 5x5 s2, LReLU, Drop .3, Dense1) on `batch_size`
  real images labelled 1 and as many of G's (Dense 7x7x128 N(0, .02), LReLU, Up2, Conv64 5x5,
  LReLU, Up2, Conv1 5x5 tanh) labelled 0, one Adam update; then G on `batch_size` fresh noise
  vectors labelled 1 through D, one Adam update. BCE; an example is one real image."""
  name: str
  latent: int
  input_shape: tuple[int, int, int]
  optimizer: Optimizer  # one for each network, the same settings
  batch_size: int
  tfds_name: str
  dljax_config: str
  dljax_overrides: dict[str, Any] = dataclasses.field(default_factory=dict)  # on its config


@dataclasses.dataclass(frozen=True)
class SequenceSpec:
  """Embedding(vocab_size, embedding) -> Dropout -> LSTM(units, dropout=dropout) -> Dropout ->
  Dense, Keras' layers and initialisers (one LSTM bias; PyTorch's second one is held at zero and
  not trained). `per_step`: Dense(vocab_size) at every step, trained on the next token's
  cross-entropy (windows of `seq_len + 1` ids: read the first `seq_len`, predict the last);
  else Dense(1) on the last state, binary cross-entropy on a 0/1 label. `mask_zero`: id 0 is
  padding, as Keras' `Embedding(mask_zero=True)` (the random ids here hold none). An example is
  one sequence of `seq_len` tokens."""
  name: str
  vocab_size: int
  seq_len: int
  embedding: int
  units: int
  dropout: float  # 0 = no Dropout layers and no LSTM input dropout
  per_step: bool
  mask_zero: bool
  optimizer: Optimizer  # Adam, with Keras' `global_clipnorm` if given
  batch_size: int
  dljax_config: str  # relative to the repository root; may end in ':arg'
  dljax_overrides: dict[str, Any] = dataclasses.field(default_factory=dict)  # on its config


GAN_KERNEL_SIZE = 5
GAN_LEAK = 0.2
GAN_DROPOUT = 0.3
GAN_FEATURES = (64, 128)  # D's convs; G's are the reverse: 128 at 1/4 size, 64, then channels


MODELS = {
    "mnist_mlp": ModelSpec(
        name="mnist_mlp",
        input_shape=(28, 28, 1),
        layers=(FLATTEN, dense(512), dropout(0.2), dense(512), dropout(0.2), logits(10)),
        optimizer=Optimizer("RMSprop", {"learning_rate": 1e-3, "rho": 0.9, "epsilon": 1e-7}),
        batch_size=128,
        tfds_name="mnist",
        dljax_config="configs/mnist_mlp.py",
    ),
    "mnist_cnn": ModelSpec(
        name="mnist_cnn",
        input_shape=(28, 28, 1),
        layers=(conv(32), conv(64), MAX_POOL, dropout(0.25), FLATTEN, dense(128), dropout(0.5),
                logits(10)),
        optimizer=Optimizer("Adadelta", {"learning_rate": 1.0, "rho": 0.95, "epsilon": 1e-7}),
        batch_size=128,
        tfds_name="mnist",
        dljax_config="configs/mnist_cnn.py",
    ),
    "cifar10_cnn": ModelSpec(
        name="cifar10_cnn",
        input_shape=(32, 32, 3),
        layers=(conv(32, "same"), MAX_POOL, conv(64, "same"), MAX_POOL, conv(128, "same"),
                MAX_POOL, conv(256, "same"), GLOBAL_AVG_POOL, logits(10)),
        optimizer=Optimizer("Adam", {"learning_rate": 3e-4, "beta_1": 0.9, "beta_2": 0.999,
                                     "epsilon": 1e-7}),
        batch_size=32,
        tfds_name="cifar10",
        dljax_config="configs/cifar10_cnn.py",
    ),
    "unet_cifar10": ModelSpec(
        name="unet_cifar10",
        input_shape=(32, 32, 3),
        layers=(),
        optimizer=Optimizer("Adam", {"learning_rate": 1e-3, "beta_1": 0.9, "beta_2": 0.999,
                                     "epsilon": 1e-7}),
        batch_size=32,
        tfds_name="cifar10",
        dljax_config="configs/unet_cifar10.py",
        unet=(64, 128, 256, 512, 1024),
        dljax_overrides={"batch_size": 32},
    ),
    "mnist_dcgan": GanSpec(
        name="mnist_dcgan",
        latent=10,
        input_shape=(28, 28, 1),
        optimizer=Optimizer("Adam", {"learning_rate": 2e-4, "beta_1": 0.5, "beta_2": 0.999,
                                     "epsilon": 1e-7}),
        batch_size=32,
        tfds_name="mnist",
        dljax_config="configs/gan_mnist.py",
    ),
    "imdb_lstm": SequenceSpec(
        name="imdb_lstm",  # the 2021 notebook's lstm_model (configs/imdb_sentiment.py:model=lstm)
        vocab_size=5000,
        seq_len=100,
        embedding=300,
        units=50,
        dropout=0.2,
        per_step=False,
        mask_zero=True,
        optimizer=Optimizer("Adam", {"learning_rate": 1e-3, "beta_1": 0.9, "beta_2": 0.999,
                                     "epsilon": 1e-7}),
        batch_size=32,
        dljax_config="configs/imdb_sentiment.py:model=lstm",
    ),
    "char_lm": SequenceSpec(
        name="char_lm",  # configs/char_lm.py: Tiny Shakespeare's 65 characters
        vocab_size=65,
        seq_len=128,
        embedding=64,
        units=256,
        dropout=0.0,
        per_step=True,
        mask_zero=False,
        optimizer=Optimizer("Adam", {"learning_rate": 3e-3, "beta_1": 0.9, "beta_2": 0.999,
                                     "epsilon": 1e-7, "global_clipnorm": 5.0}),
        batch_size=64,
        dljax_config="configs/char_lm.py",
        # Its evaluations' samples and BLEU come after the timed epochs; kept short.
        dljax_overrides={"language_model": {"sample_length": 8, "temperatures": (1.0,),
                                            "bleu": {"prompts": 2, "temperatures": (1.0,)}}},
    ),
}
NOISE_SIGMA = 0.1  # the UNet's inputs: images + N(0, sigma^2) noise
UNET_DROPOUT = 0.5  # after the last level's and the bottleneck's convolutions
UNET_UP_KERNEL = 2  # the convolution after each 2x upsampling


def walk(spec: ModelSpec) -> Iterator[tuple[Layer, tuple[int, ...], tuple[int, ...]]]:
  """Yields (layer, input shape, output shape) in order; shapes are (h, w, c) or (features,).

  Frameworks that need each layer's input size (PyTorch) read it here, as does the count of
  parameters, so the shape arithmetic exists once.
  """
  shape: tuple[int, ...] = spec.input_shape
  for layer in spec.layers:
    if layer.kind == "conv":
      h, w, _ = shape
      trim = 0 if layer.padding == "same" else KERNEL_SIZE - 1
      out = (h - trim, w - trim, int(layer.size))
    elif layer.kind == "max_pool":
      h, w, c = shape
      out = (h // POOL_SIZE, w // POOL_SIZE, c)
    elif layer.kind == "flatten":
      out = (int(np.prod(shape)),)
    elif layer.kind == "global_avg_pool":
      out = (shape[-1],)
    elif layer.kind in ("dense", "logits"):
      out = (int(layer.size),)
    elif layer.kind == "dropout":
      out = shape
    else:
      raise ValueError(f"unknown layer kind {layer.kind!r}")
    yield layer, shape, out
    shape = out


def parameter_count(spec: ModelSpec | GanSpec | SequenceSpec) -> int:
  """Weights plus biases of every conv and dense layer (and embedding and LSTM): what each
  framework must report."""
  if isinstance(spec, SequenceSpec):
    outputs = spec.vocab_size if spec.per_step else 1
    lstm = 4 * spec.units * (spec.embedding + spec.units + 1)
    return spec.vocab_size * spec.embedding + lstm + (spec.units + 1) * outputs
  if isinstance(spec, GanSpec):
    height, width, channels = spec.input_shape
    small, large = GAN_FEATURES
    seed = height // 4 * width // 4 * large  # G's first map and D's flattened last one
    area = GAN_KERNEL_SIZE * GAN_KERNEL_SIZE
    generator = ((spec.latent + 1) * seed + (area * large + 1) * small
                 + (area * small + 1) * channels)
    discriminator = (area * channels + 1) * small + (area * small + 1) * large + seed + 1
    return generator + discriminator
  if spec.unet:
    return unet_parameter_count(spec)
  total = 0
  for layer, (*_, fan_in), (*_, units) in walk(spec):
    if layer.kind == "conv":
      total += KERNEL_SIZE * KERNEL_SIZE * fan_in * units + units
    elif layer.kind in ("dense", "logits"):
      total += fan_in * units + units
  return total


def unet_parameter_count(spec: ModelSpec) -> int:
  """The UNet's weights and biases: a 3x3 conv per level, the bottleneck's, per level up an
  UNET_UP_KERNEL conv and a 3x3 conv of the concatenated skip, and the 3x3 output conv."""
  conv = lambda kernel, fan_in, units: kernel * kernel * fan_in * units + units
  *features, bottleneck = spec.unet
  channels = spec.input_shape[-1]
  total, fan_in = 0, channels
  for units in features:
    total, fan_in = total + conv(KERNEL_SIZE, fan_in, units), units
  total, fan_in = total + conv(KERNEL_SIZE, fan_in, bottleneck), bottleneck
  for units in reversed(features):
    total += conv(UNET_UP_KERNEL, fan_in, units) + conv(KERNEL_SIZE, 2 * units, units)
    fan_in = units
  return total + conv(KERNEL_SIZE, fan_in, channels)


def denoising_data(spec: ModelSpec, num_examples: int, seed: int = 0) -> tuple[np.ndarray,
                                                                                np.ndarray]:
  """A UNet's (noisy inputs, clean targets), float32 [N, H, W, C]: random images in [0, 1] and
  the same plus Gaussian noise (drawn once; dljax draws fresh noise each step)."""
  rng = np.random.default_rng(seed)
  clean = rng.integers(0, 256, (num_examples, *spec.input_shape)).astype(np.float32) / 255.0
  noise = rng.normal(0.0, NOISE_SIGMA, clean.shape)
  return clean + noise.astype(np.float32), clean


def token_data(spec: SequenceSpec, num_examples: int, seed: int = 0) -> tuple[np.ndarray,
                                                                              np.ndarray]:
  """Random ids in [1, vocab_size) (no padding) and the targets: int32 [N, seq_len] inputs and
  [N, seq_len] next ids (`per_step`) or [N] 0/1 labels."""
  rng = np.random.default_rng(seed)
  ids = rng.integers(1, spec.vocab_size, (num_examples, spec.seq_len + 1)).astype(np.int32)
  if spec.per_step:
    return ids[:, :-1], ids[:, 1:]
  return ids[:, :-1], rng.integers(0, 2, num_examples).astype(np.int32)


def num_classes(spec: ModelSpec) -> int:
  return int(spec.layers[-1].size)


def random_data(spec: ModelSpec, num_examples: int, seed: int = 0) -> tuple[np.ndarray,
                                                                             np.ndarray]:
  """Random uint8 images (N, H, W, C) and int64 labels: throughput does not depend on values.

  (dljax reads the same shapes from `tfds.testing.mock_data`.) On random labels every framework's
  loss should stay near ln(classes), a cheap check that they compute the same cross-entropy.
  """
  rng = np.random.default_rng(seed)
  images = rng.integers(0, 256, (num_examples, *spec.input_shape), dtype=np.uint8)
  classes = num_classes(spec) if isinstance(spec, ModelSpec) else 1  # a GAN's are unused
  labels = rng.integers(0, classes, num_examples).astype(np.int64)
  return images, labels


class EpochTimer:
  """Wall time of each epoch; the steady state is every epoch but the first.

  The first epoch holds tracing, compilation and warm-up (allocator, caches, thread pools), so
  examples/s is measured over the later ones, the same way for every framework.
  """

  def __init__(self):
    self.epoch_seconds: list[float] = []
    self.start_time = 0.0

  def start(self) -> None:
    self.start_time = time.perf_counter()

  def stop(self) -> None:
    self.epoch_seconds.append(time.perf_counter() - self.start_time)


def measurement(epoch_seconds: list[float], examples_per_epoch: int, *, compile_seconds: float,
                first_epoch_seconds: float, parameters: int, final_loss: float,
                final_accuracy: float | None, **extra: Any) -> dict[str, Any]:
  """The result every framework reports.

  Args:
    epoch_seconds: wall times of the steady-state epochs (the second and later).
    examples_per_epoch: examples trained on per epoch.
    compile_seconds: the framework's own start-up cost; each framework module says what it is.
    first_epoch_seconds: the first epoch's wall time including every compilation, ahead of time
      (dljax) or on the first call (Keras, torch.compile).
    parameters: trainable parameters of the model as the framework built it.
    final_loss: mean train loss of the last epoch (~ln 10 = 2.30 on random labels).
    final_accuracy: mean train accuracy of the last epoch (~0.1 on random labels); None for
      the UNet, which has none.
    **extra: framework-specific facts (versions, settings).

  `warmup_seconds` = first epoch - a steady epoch is the start-up cost defined alike for all.
  """
  if not epoch_seconds:
    raise ValueError("need at least 2 epochs: the first is warm-up, the rest are timed")
  steady_epoch = float(np.mean(epoch_seconds))
  return {
      "examples_per_second": examples_per_epoch * len(epoch_seconds) / sum(epoch_seconds),
      "compile_seconds": compile_seconds,
      "warmup_seconds": first_epoch_seconds - steady_epoch,
      "first_epoch_seconds": first_epoch_seconds,
      "steady_epoch_seconds": [round(s, 4) for s in epoch_seconds],
      "examples_per_epoch": examples_per_epoch,
      "parameters": parameters,
      "final_loss": final_loss,
      "final_accuracy": final_accuracy,
      **extra,
  }

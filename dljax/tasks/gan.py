"""Generative adversarial networks on images (family E): the Imperial coursework's MNIST DCGAN.

The model (`config.model`: `dcgan`, dljax/models/dcgan.py) holds a generator G, noise z ~ N(0, I)
of size `latent` -> images in [-1, 1] (tanh), and a discriminator D, images -> the logit that
they are real; the data's pixels are scaled to [-1, 1] (x / 127.5 - 1) to match. Each train
step is the reports' Keras loop on one batch of B real images:

  1. D on the B real images labelled 1 and B of G's images (fresh noise) labelled 0: one
     binary cross-entropy over the 2B, one `config.optimizers.discriminator` update;
  2. G on B fresh noise vectors labelled 1 through the updated D (the non-saturating loss),
     one `config.optimizers.generator` update; D's weights stay as they are.

D's dropout is on in both (Keras trains the combined model with its layers in training mode).
Binary cross-entropy is computed from D's logits: Keras' sigmoid output with
binary_crossentropy, without its clipping of probabilities to [1e-7, 1 - 1e-7].

Train steps log `d_loss`, `g_loss` and D's accuracy on the real images (`d_real_accuracy`, the
share it calls real) and on the fakes (`d_fake_accuracy`, the share it calls fake); evaluation
reports the same per real image (its fake drawn from the eval step's RNG, dropout off). Each
evaluation draws `samples`: G's images of the same fixed noise, a grid x grid PNG (samples/,
TensorBoard), so training can be watched; where `config.gan.classifier_workdir` names a trained
classifier, a second one rates 10,000 samples of fixed noise: the Inception Score and an MNIST
FID (sample_quality.py). `python -m dljax.generate` draws samples, interpolations and traversals
of G's noise (`latent_space`).
"""

import jax
import jax.numpy as jnp
import ml_collections
import optax

from dljax import models
from dljax.data import Splits
from dljax.errors import ConfigError
from dljax.tasks import generative, sample_quality, supervised
from dljax.tasks.task import Task

NETWORKS = ("discriminator", "generator")  # in the order each step updates them


def task_config() -> ml_collections.ConfigDict:
  """`config.gan`: the evaluators' grid and the classifier that rates samples."""
  return ml_collections.ConfigDict(dict(
      grid=10,  # grid x grid samples of the fixed noise
      **sample_quality.task_config_keys(),
  ))


def validate(config: ml_collections.ConfigDict) -> None:
  generative.check_pixels(config)
  sample_quality.validate(config.gan, "gan")
  if config.gan.grid < 1:
    raise ConfigError(f"config.gan.grid={config.gan.grid!r}: must be >= 1")
  if not hasattr(models.build(config.model), "generate"):
    raise ConfigError(f"config.model.name={config.model.name!r}: not a GAN; allowed: dcgan")
  generative.check_optimizers(config, NETWORKS)


def latent_space(config: ml_collections.ConfigDict) -> generative.LatentSpace:
  """G's noise, decoded to G's images mapped from [-1, 1] to [0, 1]."""
  model = models.build(config.model)
  return generative.LatentSpace(latent=model.latent, decode=lambda params, z_NL: (
      model.apply({"params": params}, z_NL, method="generate") + 1.0) / 2.0)


def bce(logits_B: jax.Array, label: float) -> jax.Array:
  return optax.sigmoid_binary_cross_entropy(logits_B, jnp.full_like(logits_B, label))


def build(config: ml_collections.ConfigDict, data: Splits, total_steps: int) -> Task:
  """The Task of the GAN `config.model`, each network trained by its `config.optimizers.NAME`."""
  model = models.build(config.model)
  optimizers = generative.network_optimizers(config, NETWORKS, total_steps)
  to_unit = supervised.preprocessor(config.data, data)
  preprocess = lambda images: to_unit(images) * 2.0 - 1.0
  grid = config.gan.grid

  def noise(rng, count):
    return jax.random.normal(rng, (count, model.latent))

  def generate(params, z_BL):
    return model.apply({"params": params}, z_BL, method="generate")

  def discriminate(params, images_BHWC, dropout_rng=None):
    """D's logits; in training mode (dropout) where a dropout RNG is given."""
    return model.apply({"params": params}, images_BHWC, method="discriminate",
                       train=dropout_rng is not None,
                       rngs={} if dropout_rng is None else {"dropout": dropout_rng})

  def init(rng, batch):
    del batch  # the noise fixes every shape
    return generative.init_networks(model.init(rng, noise(rng, 1))["params"], optimizers)

  def update(state, name, grads):
    return generative.update_network(optimizers, state, name, grads)

  def train_step(state, batch, rng):
    real = preprocess(batch["image"])
    count = len(real)
    d_noise, d_dropout, g_noise, g_dropout = jax.random.split(rng, 4)
    fake = generate(state.params, noise(d_noise, count))

    def d_loss(d_params):
      logits_2B = discriminate({**state.params, "discriminator": d_params},
                               jnp.concatenate([real, fake]), d_dropout)
      return jnp.concatenate([bce(logits_2B[:count], 1.0),
                              bce(logits_2B[count:], 0.0)]).mean(), logits_2B

    (d_value, logits_2B), grads = jax.value_and_grad(d_loss, has_aux=True)(
        state.params["discriminator"])
    state = update(state, "discriminator", grads)

    def g_loss(g_params):
      images = generate({**state.params, "generator": g_params}, noise(g_noise, count))
      return bce(discriminate(state.params, images, g_dropout), 1.0).mean()

    g_value, grads = jax.value_and_grad(g_loss)(state.params["generator"])
    return update(state, "generator", grads), {
        "d_loss": d_value, "g_loss": g_value,
        "d_real_accuracy": (logits_2B[:count] > 0).mean(),
        "d_fake_accuracy": (logits_2B[count:] <= 0).mean()}

  def eval_step(state, batch, rng):
    real_logits_B = discriminate(state.params, preprocess(batch["image"]))
    fake_logits_B = discriminate(state.params,
                                 generate(state.params, noise(rng, len(real_logits_B))))
    as_float = lambda judged_B: judged_B.astype(jnp.float32)
    return {"d_loss": (bce(real_logits_B, 1.0) + bce(fake_logits_B, 0.0)) / 2,
            "g_loss": bce(fake_logits_B, 1.0),
            "d_real_accuracy": as_float(real_logits_B > 0),
            "d_fake_accuracy": as_float(fake_logits_B <= 0)}

  sample = generative.sampler(latent_space(config))

  def draw(state, rng, artefacts):
    artefacts.image("samples", generative.image_grid(sample(state.params, rng, grid * grid), grid))
    return {}

  rate = sample_quality.evaluator(config.gan, "gan", data, sample)
  return Task(init=init, train_step=train_step, eval_step=eval_step,
              evaluators=(draw, rate) if rate else (draw,))

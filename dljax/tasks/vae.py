"""Variational autoencoders on images (family E): the Imperial coursework's MNIST VAEs.

The model (`config.model`: `vae_dense` or `vae_conv`, dljax/models/vae.py) encodes images x in
[0, 1] to the mean and log-variance of q(z|x) = N(mu, diag(exp(logvar))); the step draws
z = mu + exp(logvar / 2) * eps, eps ~ N(0, I) from the step's RNG (the reparameterisation: z is
differentiable in mu and logvar), and the decoder gives pixel logits, sigmoid(logits) = x_hat.
The loss per image is the reports' (`config.vae`):

  reconstruction + beta * KL,   KL = -1/2 sum_l (1 + logvar_l - mu_l^2 - exp(logvar_l))
  reconstruction = sum over pixels of BCE(x, x_hat)   ('bce'; from the logits, exactly Keras'
                   binary_crossentropy but where Keras clips x_hat to [1e-7, 1 - 1e-7])
                 or sum over pixels of (x - x_hat)^2  ('mse')

beta = 1 is the VAE of the reports, beta = 0 their 'without KL' autoencoder. Evaluation reports
per image: `loss`, `kl`, `bce` (summed over pixels), `mse` and `mae` (means over pixels: the
reports' test reconstruction errors), with z drawn from q(z|x) by the eval step's RNG, as
the reports' Keras `vae.predict` did. Each evaluation draws two PNGs (samples/, TensorBoard):
`samples`, the decoded fixed noise z ~ N(0, I) (a grid x grid grid, comparable across
evaluations), and `reconstructions`, the first test images in odd rows above their
reconstructions in even rows. Where `config.vae.classifier_workdir` names a trained classifier,
a second evaluator rates 10,000 decoded samples of fixed noise: the Inception Score and an MNIST
FID (sample_quality.py). `predict` gives each image's code, the mean of q(z|x) (`dljax.load`,
`python -m dljax.predict`); `python -m dljax.generate` draws samples, interpolations and
traversals of the latent space (`latent_space`).
"""

from collections.abc import Callable

import jax
import jax.numpy as jnp
import ml_collections
import numpy as np
import optax
from flax import struct

from dljax import models, optim
from dljax.data import Splits
from dljax.errors import ConfigError
from dljax.registry import lookup
from dljax.tasks import generative, sample_quality, supervised
from dljax.tasks.task import Task

# (logits_BHWC, images_BHWC in [0, 1]) -> per-image loss summed over pixels, [B]
ReconstructionFn = Callable[[jax.Array, jax.Array], jax.Array]


def _sum_over_pixels(values_BHWC: jax.Array) -> jax.Array:
  return values_BHWC.reshape(values_BHWC.shape[0], -1).sum(axis=-1)


def binary_crossentropy(logits_BHWC: jax.Array, images_BHWC: jax.Array) -> jax.Array:
  return _sum_over_pixels(optax.sigmoid_binary_cross_entropy(logits_BHWC, images_BHWC))


def squared_error(logits_BHWC: jax.Array, images_BHWC: jax.Array) -> jax.Array:
  return _sum_over_pixels(jnp.square(jax.nn.sigmoid(logits_BHWC) - images_BHWC))


RECONSTRUCTIONS: dict[str, ReconstructionFn] = {"bce": binary_crossentropy, "mse": squared_error}


def kl_divergence(mu_BL: jax.Array, logvar_BL: jax.Array) -> jax.Array:
  """KL(N(mu, exp(logvar)) || N(0, I)) of each example, [B]."""
  return -0.5 * jnp.sum(1.0 + logvar_BL - jnp.square(mu_BL) - jnp.exp(logvar_BL), axis=-1)


def reparameterize(rng: jax.Array, mu_BL: jax.Array, logvar_BL: jax.Array) -> jax.Array:
  """z ~ N(mu, exp(logvar)) as mu + sigma * eps: eps comes from `rng`, gradients reach mu and
  logvar."""
  return mu_BL + jnp.exp(0.5 * logvar_BL) * jax.random.normal(rng, mu_BL.shape, mu_BL.dtype)


def task_config() -> ml_collections.ConfigDict:
  """`config.vae`: the loss, the evaluators' grids and the classifier that rates samples."""
  return ml_collections.ConfigDict(dict(
      reconstruction="bce",  # a key of RECONSTRUCTIONS, summed over pixels
      beta=1.0,  # the KL term's weight; 0 = a plain autoencoder with a noisy code
      grid=10,  # the PNGs: grid x grid samples; grid / 2 rows of test images, each above its
      # reconstructions
      **sample_quality.task_config_keys(),
  ))


def validate(config: ml_collections.ConfigDict) -> None:
  generative.check_pixels(config)
  knobs = config.vae
  sample_quality.validate(knobs, "vae")
  lookup(RECONSTRUCTIONS, knobs.reconstruction, "config.vae.reconstruction",
         "reconstruction loss")
  if not knobs.beta >= 0:
    raise ConfigError(f"config.vae.beta={knobs.beta!r}: must be >= 0 (0 = no KL term)")
  if knobs.grid < 1:
    raise ConfigError(f"config.vae.grid={knobs.grid!r}: must be >= 1")
  if not hasattr(models.build(config.model), "encode"):
    raise ConfigError(f"config.model.name={config.model.name!r}: not a VAE; allowed: "
                      "vae_dense, vae_conv")


def latent_space(config: ml_collections.ConfigDict) -> generative.LatentSpace:
  """The codes of `config.model`: decoded to sigmoid(logits), encoded to the mean of q(z|x)."""
  model = models.build(config.model)
  preprocess = supervised.preprocessor(config.data, None)  # pixels / 255: no statistics needed
  return generative.LatentSpace(
      latent=model.latent,
      decode=lambda params, z_NL: jax.nn.sigmoid(
          model.apply({"params": params}, z_NL, method="decode")),
      encode=lambda params, images_NHWC: model.apply(
          {"params": params}, preprocess(images_NHWC), method="encode")[0])


@struct.dataclass
class State:
  params: dict
  opt_state: optax.OptState


def build(config: ml_collections.ConfigDict, data: Splits, total_steps: int) -> Task:
  """The Task of the VAE `config.model` trained on `config.vae`'s loss by `config.optimizer`."""
  knobs = config.vae
  model = models.build(config.model)
  tx = optim.make_optimizer(config.optimizer, total_steps)
  preprocess = supervised.preprocessor(config.data, data)
  reconstruction = RECONSTRUCTIONS[knobs.reconstruction]
  test_images = generative.first_rows(data.test, max(knobs.grid // 2, 1), knobs.grid)

  def decode(params, z_BL):
    return model.apply({"params": params}, z_BL, method="decode")

  def forward(params, images_BHWC, rng):
    """(logits_BHWC of the reconstructions, per-image loss terms)."""
    mu_BL, logvar_BL = model.apply({"params": params}, images_BHWC, method="encode")
    logits_BHWC = decode(params, reparameterize(rng, mu_BL, logvar_BL))
    kl_B = kl_divergence(mu_BL, logvar_BL)
    return logits_BHWC, {"loss": reconstruction(logits_BHWC, images_BHWC) + knobs.beta * kl_B,
                         "kl": kl_B}

  def eval_step(state, batch, rng):
    images_BHWC = preprocess(batch["image"])
    logits_BHWC, terms = forward(state.params, images_BHWC, rng)
    error_BHWC = jax.nn.sigmoid(logits_BHWC) - images_BHWC
    pixels = error_BHWC[0].size
    return {**terms, "bce": binary_crossentropy(logits_BHWC, images_BHWC),
            "mse": _sum_over_pixels(jnp.square(error_BHWC)) / pixels,
            "mae": _sum_over_pixels(jnp.abs(error_BHWC)) / pixels}

  def init(rng, batch):
    params = model.init(rng, preprocess(batch["image"]))["params"]
    return State(params=params, opt_state=tx.init(params))

  def train_step(state, batch, rng):
    images_BHWC = preprocess(batch["image"])

    def mean_loss(params):
      _, terms = forward(params, images_BHWC, rng)
      return terms["loss"].mean(), terms

    (loss, terms), grads = jax.value_and_grad(mean_loss, has_aux=True)(state.params)
    updates, opt_state = tx.update(grads, state.opt_state, state.params)
    return (State(params=optax.apply_updates(state.params, updates), opt_state=opt_state),
            {"loss": loss, "kl": terms["kl"].mean()})

  space = latent_space(config)
  sample = generative.sampler(space)

  @jax.jit
  def drawn(params, rng):
    """The fixed noise's images and the test images' reconstructions, in [0, 1]."""
    noise_rng, code_rng = jax.random.split(rng)
    samples = sample(params, noise_rng, knobs.grid * knobs.grid)
    if test_images is None:
      return samples, None
    logits, _ = forward(params, preprocess(test_images), code_rng)
    return samples, jax.nn.sigmoid(logits)

  def predict(state, batch, rng):
    del rng  # the code is q(z|x)'s mean: nothing is drawn
    return {"code": space.encode(state.params, batch["image"])}

  def draw(state, rng, artefacts):
    samples, reconstructions = drawn(state.params, rng)
    artefacts.image("samples", generative.image_grid(samples, knobs.grid))
    if reconstructions is not None:
      columns = min(knobs.grid, len(test_images))
      rows = generative.interleaved_rows([preprocess(test_images), reconstructions], columns)
      artefacts.image("reconstructions", generative.image_grid(rows, columns))
    return {}

  rate = sample_quality.evaluator(knobs, "vae", data, sample)
  return Task(init=init, train_step=train_step, eval_step=eval_step, predict=predict,
              describe=describe, evaluators=(draw, rate) if rate else (draw,))


def describe(outputs: dict[str, np.ndarray]) -> list[dict[str, float]]:
  """`predict` outputs -> one row per image: its code's coordinates z0, z1, ..."""
  return [{f"z{index}": float(value) for index, value in enumerate(code_L)}
          for code_L in outputs["code"]]


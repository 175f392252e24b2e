"""pix2pix-style colourisation (family E): the Imperial coursework's conditional GAN.

The model (`config.model`: `pix2pix`, dljax/models/unet.py) holds a generator G, the
colourisation UNet (grey -> colour, linear outputs), and a discriminator D scoring (colour, grey)
pairs (linear scores). Inputs and targets are `image_to_image`'s (`config.pix2pix.inputs`: 'grey'
for colourisation; 'noisy' works too). Each train step, on a batch of grey images x and their
colours y, with G's dropout on:

  1. D, by `config.optimizers.discriminator`: least squares, (D(y, x) - 1)^2 + D(G(x), x)^2, halved
     (Keras trains it on the real then the fake half of the batch with an MSE loss);
  2. G, by `config.optimizers.generator`, through the updated D: the adversarial least squares
     (D(G(x), x) - 1)^2 plus `l1_weight` x MAE(G(x), y) (the reports' [1, 100] weights).

Train steps log `d_loss`, `g_adversarial` and `g_mae`. Evaluation reports `image_to_image`'s
per-image metrics of G's outputs (`mae`, `mse`, `psnr`, `ssim`, the inputs' own, the
colourfulness of outputs and targets) and D's mean least-squares loss on the pair (`d_loss`);
each evaluation draws `images` (grey / cGAN / truth rows). With `compare_with` set to a trained
`image_to_image` run's workdir, the test also writes comparison.png: rows of grey inputs, that
run's outputs, this one's, and the truth, and adds that run's test `compare_mae` and
`compare_colourfulness` on the same images.
"""

import os

import jax
import jax.numpy as jnp
import ml_collections
import numpy as np
from PIL import Image

from dljax import models
from dljax.data import Splits
from dljax.errors import ConfigError, require
from dljax.tasks import generative, image_quality, image_to_image, supervised
from dljax.tasks.task import Task

NETWORKS = ("discriminator", "generator")  # in the order each step updates them


def task_config() -> ml_collections.ConfigDict:
  """`config.pix2pix`: `image_to_image`'s inputs and PNG, the MAE's weight, a run to compare."""
  return image_to_image.task_config(
      inputs="grey", l1_weight=100.0,
      compare_with="",  # a trained image_to_image run's workdir ('' = none)
  )


def validate(config: ml_collections.ConfigDict) -> None:
  image_to_image.check(config, "pix2pix")
  knobs = config.pix2pix
  require(knobs.l1_weight >= 0, "pix2pix.l1_weight", knobs.l1_weight, "must be >= 0")
  require(not knobs.compare_with or os.path.isdir(knobs.compare_with), "pix2pix.compare_with",
          knobs.compare_with, "not a directory: give a trained image_to_image run's workdir")
  if not hasattr(models.build(config.model), "discriminate"):
    raise ConfigError(f"config.model.name={config.model.name!r}: not a conditional GAN; "
                      "allowed: pix2pix")
  generative.check_optimizers(config, NETWORKS)


def least_squares(scores_B: jax.Array, label: float) -> jax.Array:
  return jnp.square(scores_B - label)


def build(config: ml_collections.ConfigDict, data: Splits, total_steps: int) -> Task:
  """The Task of the conditional GAN `config.model`, each network by `config.optimizers.NAME`."""
  knobs = config.pix2pix
  model = models.build(config.model)
  optimizers = generative.network_optimizers(config, NETWORKS, total_steps)
  preprocess = supervised.preprocessor(config.data, data)
  make_inputs = image_to_image.inputs_maker(knobs)
  metrics = image_to_image.quality(knobs)

  def generate(params, inputs, dropout_rng=None):
    """G's outputs; in training mode (dropout) where a dropout RNG is given."""
    return model.apply({"params": params}, inputs, method="generate",
                       train=dropout_rng is not None,
                       rngs={} if dropout_rng is None else {"dropout": dropout_rng})

  def discriminate(params, outputs, inputs):
    return model.apply({"params": params}, outputs, inputs, method="discriminate")

  def init(rng, batch):
    inputs, _ = make_inputs(jax.random.fold_in(rng, 2), preprocess(batch["image"]), batch)
    return generative.init_networks(model.init(rng, inputs)["params"], optimizers)

  def train_step(state, batch, rng):
    inputs_rng, d_dropout, g_dropout = jax.random.split(rng, 3)
    inputs, batch = make_inputs(inputs_rng, preprocess(batch["image"]), batch)
    target = batch["target"]
    fake = generate(state.params, inputs, d_dropout)

    def d_loss(d_params):
      params = {**state.params, "discriminator": d_params}
      return 0.5 * (least_squares(discriminate(params, target, inputs), 1.0)
                    + least_squares(discriminate(params, fake, inputs), 0.0)).mean()

    d_value, grads = jax.value_and_grad(d_loss)(state.params["discriminator"])
    state = generative.update_network(optimizers, state, "discriminator", grads)

    def g_loss(g_params):
      outputs = generate({**state.params, "generator": g_params}, inputs, g_dropout)
      adversarial = least_squares(discriminate(state.params, outputs, inputs), 1.0).mean()
      mae = image_quality.mae(outputs, target).mean()
      return adversarial + knobs.l1_weight * mae, (adversarial, mae)

    (_, (adversarial, mae)), grads = jax.value_and_grad(g_loss, has_aux=True)(
        state.params["generator"])
    return generative.update_network(optimizers, state, "generator", grads), {
        "d_loss": d_value, "g_adversarial": adversarial, "g_mae": mae}

  def eval_step(state, batch, rng):
    inputs, batch = make_inputs(rng, preprocess(batch["image"]), batch)
    outputs = generate(state.params, inputs)
    d_loss_B = 0.5 * (least_squares(discriminate(state.params, batch["target"], inputs), 1.0)
                      + least_squares(discriminate(state.params, outputs, inputs), 0.0))
    return {**metrics(outputs, batch), "d_loss": d_loss_B}

  def predict(state, batch, rng):
    inputs, _ = make_inputs(rng, preprocess(batch["image"]), batch)
    return {"output": generate(state.params, inputs)}

  def analyze(state, outputs, examples, workdir):
    del state  # the outputs say it all
    if not knobs.compare_with:
      return {}
    from dljax import inference  # here: dljax.inference builds tasks, a module-level cycle
    other = inference.load(knobs.compare_with).predict(examples["image"])["output"]
    target = np.asarray(preprocess(examples["image"]))
    shown = knobs.grid
    grey = np.asarray(image_quality.grey(target[:shown]))
    rows = generative.interleaved_rows(
        [grey, other[:shown], outputs["output"][:shown], target[:shown]], shown)
    grid = generative.image_grid(rows, shown)
    Image.fromarray(np.round(np.clip(grid, 0, 1) * 255).astype(np.uint8)).save(
        os.path.join(workdir, "comparison.png"))
    return {"compare_mae": float(np.mean(image_quality.mae(other, target))),
            "compare_colourfulness": float(np.mean(image_quality.colourfulness(other)))}

  draw = image_to_image.drawer(knobs, data, preprocess,
                               lambda state, inputs: generate(state.params, inputs))
  return Task(init=init, train_step=train_step, eval_step=eval_step, predict=predict,
              evaluators=(draw,), analyze=analyze)

"""Image-to-image networks (families D and E): the Imperial coursework's denoising and
colourising UNets.

The model (`config.model`: `unet`, dljax/models/unet.py) maps input images to images. The step
makes its inputs and targets from the batch (`supervised.build`'s `inputs_and_targets`): the
targets are the [0, 1] images; the inputs (`config.image_to_image.inputs`) are
  noisy   the images plus Gaussian noise of standard deviation `noise_sigma`, drawn from the step's
          RNG (a fresh draw every step; the same for the same seed), not clipped, as the reports
  grey    their luma (`image_quality.grey`), one channel: colourisation
The loss per image is `config.image_to_image.loss`, a name of `image_quality.LOSSES`: mse, mae,
mse+mae, 1 - SSIM ('ssim'), 1 - MS-SSIM ('ms_ssim'), 1 / PSNR ('psnr').

Train steps log the loss and the MAE. Evaluation reports per image, for every loss: `mse`, `mae`,
`psnr`, `ssim` of the outputs (as they come, unclipped) against the clean images, and the same of
the inputs themselves (`input_mse`, ...; a grey input is compared as three equal channels), so that
the network's gain is visible; with grey inputs also the Hasler-Suesstrunk `colourfulness` of the
outputs and of the targets (`target_colourfulness`), which MAE hides: a brownish average colour
scores a low MAE and a low colourfulness. Each evaluation draws `images`: for the first `grid` test
images, a row of inputs, a row of outputs, a row of targets. `predict` gives the outputs.
"""

from collections.abc import Callable

import jax
import jax.numpy as jnp
import ml_collections

from dljax import models
from dljax.data import Splits
from dljax.errors import require
from dljax.tasks import generative, image_quality, supervised
from dljax.tasks.task import Task

INPUTS = ("noisy", "grey")
Batch = dict[str, jax.Array]


def task_config(**overrides) -> ml_collections.ConfigDict:
  """`config.image_to_image`: what the inputs are, the loss, the PNG."""
  config = ml_collections.ConfigDict(dict(
      inputs="noisy",  # one of INPUTS
      noise_sigma=0.1,  # the Gaussian noise's standard deviation, for 'noisy'
      loss="mse",  # a key of image_quality.LOSSES
      grid=8,  # test images in the PNG's rows
  ))
  config.update(overrides)
  return config


def check(config: ml_collections.ConfigDict, section: str) -> None:
  """The data and `config.<section>`'s inputs, noise and grid (shared with pix2pix)."""
  generative.check_pixels(config)
  knobs = config[section]
  require(knobs.inputs in INPUTS, f"{section}.inputs", knobs.inputs,
          f"allowed: {', '.join(INPUTS)}")
  require(knobs.noise_sigma >= 0, f"{section}.noise_sigma", knobs.noise_sigma, "must be >= 0")
  require(knobs.grid >= 1, f"{section}.grid", knobs.grid, "must be >= 1")


def validate(config: ml_collections.ConfigDict) -> None:
  check(config, "image_to_image")
  image_quality.loss(config.image_to_image.loss, "config.image_to_image.loss")


def inputs_maker(knobs: ml_collections.ConfigDict) -> supervised.InputsAndTargetsFn:
  """(rng, images_BHWC, batch) -> (the network's inputs, batch + 'target' and 'input')."""
  def inputs_and_targets(rng, images_BHWC, batch):
    if knobs.inputs == "grey":
      inputs = image_quality.grey(images_BHWC)
    else:
      inputs = images_BHWC + knobs.noise_sigma * jax.random.normal(
          rng, images_BHWC.shape, images_BHWC.dtype)
    return inputs, {**batch, "target": images_BHWC, "input": inputs}
  return inputs_and_targets


def quality(knobs: ml_collections.ConfigDict) -> Callable[[jax.Array, Batch], dict[str, jax.Array]]:
  """(outputs_BHWC, batch with 'target' and 'input') -> per-image metrics (module docstring)."""
  def metrics(outputs_BHWC, batch):
    target = batch["target"]
    as_target = jnp.broadcast_to(batch["input"], target.shape)
    values = {}
    for name, metric in image_quality.METRICS.items():
      values[name] = metric(outputs_BHWC, target)
      values[f"input_{name}"] = metric(as_target, target)
    if knobs.inputs == "grey":
      values["colourfulness"] = image_quality.colourfulness(outputs_BHWC)
      values["target_colourfulness"] = image_quality.colourfulness(target)
    return values
  return metrics


def drawer(knobs: ml_collections.ConfigDict, data: Splits,
           preprocess: Callable[[jax.Array], jax.Array],
           outputs: Callable[[object, jax.Array], jax.Array]):
  """An evaluator drawing `images`: rows of inputs, `outputs(state, inputs)` and targets of the
  first test images, the inputs made from the evaluator's fixed key (the same noise each time)."""
  test_images = generative.first_rows(data.test, 1, knobs.grid)
  make_inputs = inputs_maker(knobs)

  @jax.jit
  def rows(state, rng):
    inputs, batch = make_inputs(rng, preprocess(test_images), {})
    return inputs, outputs(state, inputs), batch["target"]

  def draw(state, rng, artefacts):
    if test_images is not None:
      shown = len(test_images)
      artefacts.image("images", generative.image_grid(
          generative.interleaved_rows(list(rows(state, rng)), shown), shown))
    return {}
  return draw


def build(config: ml_collections.ConfigDict, data: Splits, total_steps: int) -> Task:
  """The Task of `config.model` trained from `config.image_to_image`'s inputs to the images."""
  knobs = config.image_to_image
  loss = image_quality.loss(knobs.loss, "config.image_to_image.loss")
  model = models.build(config.model)
  draw = drawer(knobs, data, supervised.preprocessor(config.data, data),
                lambda state, inputs: model.apply({"params": state.params}, inputs))
  return supervised.build(
      config, data, total_steps,
      loss=lambda outputs_BHWC, batch: loss(outputs_BHWC, batch["target"]),
      metrics=quality(knobs),
      train_metrics=lambda outputs_BHWC, batch: {
          "mae": image_quality.mae(outputs_BHWC, batch["target"])},
      predictions=lambda outputs_BHWC, batch: {"output": outputs_BHWC},
      inputs_and_targets=inputs_maker(knobs), evaluators=(draw,))

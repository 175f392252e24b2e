"""What the generative tasks (vae, gan) share: their data checks, their image grids and the view
of their latent space that sampling, interpolation and traversal (dljax.generate) use."""

import dataclasses
from collections.abc import Callable

import jax
import ml_collections
import numpy as np

from dljax import data
from dljax.errors import ConfigError


@dataclasses.dataclass(frozen=True)
class LatentSpace:
  """A trained generative model seen from its codes: `decode(params, z_NL)` -> images in [0, 1]
  (jittable), `latent` = L, and for a model with an encoder, `encode(params, uint8 images)` ->
  their codes (jittable); None for a GAN, whose codes are only drawn."""
  latent: int
  decode: Callable[[dict, jax.Array], jax.Array]
  encode: Callable[[dict, jax.Array], jax.Array] | None = None


def sampler(space: LatentSpace) -> Callable[[dict, jax.Array, int], jax.Array]:
  """(params, rng, count) -> `count` images decoded from z ~ N(0, I) drawn from `rng`; jitted."""
  return jax.jit(lambda params, rng, count: space.decode(
      params, jax.random.normal(rng, (count, space.latent))), static_argnums=2)


def check_pixels(config: ml_collections.ConfigDict) -> None:
  """A one-line ConfigError unless the task sees the data set's own pixels, scaled: its images
  are both the inputs and the targets (BCE needs [0, 1], a tanh generator [-1, 1]), so neither
  standardisation nor augmentation may touch them."""
  if "data" not in config:
    raise ConfigError(f"config.data: task {config.task!r} learns from images; add a data section")
  if config.data.normalize != "none":
    raise ConfigError(f"config.data.normalize={config.data.normalize!r}: task {config.task!r} "
                      "models the pixels themselves; use 'none'")
  augment = config.data.augment.to_dict()
  if any(augment.values()):
    raise ConfigError(f"config.data.augment={augment}: task {config.task!r} does not augment; "
                      "turn it off")


def first_rows(split: data.Split, rows: int, columns: int) -> np.ndarray | None:
  """The first `rows` x `columns` images of `split`, uint8 [N, H, W, C], fewer (whole rows of
  `columns`, or one shorter row) where it holds fewer; None where it holds none (`dljax.load`
  builds tasks with empty splits)."""
  if isinstance(split, data.Subset):
    images = data.read(split, np.arange(min(rows * columns, len(split))))["image"]
  else:
    images = split.get("image", np.zeros((0,)))[:rows * columns]
  if not len(images):
    return None
  whole_rows = len(images) // columns * columns
  return images[:whole_rows] if whole_rows else images


def image_grid(images_NHWC: np.ndarray, columns: int, gap: int = 2) -> np.ndarray:
  """Images in [0, 1] tiled row by row, `columns` a row, `gap` white pixels between them."""
  images_NHWC = np.asarray(images_NHWC, np.float32)
  n, h, w, c = images_NHWC.shape
  rows = -(-n // columns)
  grid = np.ones((rows * (h + gap) - gap, columns * (w + gap) - gap, c), np.float32)
  for index, image_HWC in enumerate(images_NHWC):
    row, column = divmod(index, columns)
    grid[row * (h + gap): row * (h + gap) + h, column * (w + gap): column * (w + gap) + w] = (
        image_HWC)
  return grid

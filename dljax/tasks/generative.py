"""What the generative tasks (vae, gan, autoencoder, image_to_image, pix2pix) share: their data
checks, their image grids, the adversarial tasks' networks with an optimiser each, and the view
of a VAE's or GAN's latent space that sampling, interpolation and traversal (dljax.generate) use.
"""

import dataclasses
from collections.abc import Callable, Sequence

import jax
import ml_collections
import numpy as np
import optax
from flax import struct

from dljax import data, optim
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
  images = leading_examples(split, rows * columns).get("image", np.zeros((0,)))
  if not len(images):
    return None
  whole_rows = len(images) // columns * columns
  return images[:whole_rows] if whole_rows else images


def leading_examples(split: data.Split, count: int | None = None) -> data.Arrays:
  """The first `count` examples of `split` (all where it holds fewer, or `count` is None), as
  arrays."""
  if isinstance(split, data.Subset):
    return data.read(split, np.arange(len(split) if count is None else min(count, len(split))))
  return {key: values[:count] for key, values in split.items()}


def interleaved_rows(image_sets: Sequence[np.ndarray], columns: int) -> np.ndarray:
  """Each row of `columns` images of the first set followed by the same row of every other set
  (originals above their reconstructions; inputs, outputs, targets), for `image_grid`. The sets
  share a shape but for their channels: one-channel images are shown in as many as the widest."""
  channels = max(images.shape[-1] for images in image_sets)
  rows = [np.broadcast_to(np.asarray(images, np.float32), (*images.shape[:-1], channels)).reshape(
      -1, columns, *images.shape[1:-1], channels) for images in image_sets]
  return np.stack(rows, axis=1).reshape(-1, *rows[0].shape[2:])


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


@struct.dataclass
class NetworksState:
  """Several networks, each trained by its own optimiser (`config.optimizers.NAME`)."""
  params: dict  # {network name: its params}
  opt_state: dict  # the same keys: each network's optimiser state


def check_optimizers(config: ml_collections.ConfigDict, networks: Sequence[str]) -> None:
  """A one-line ConfigError unless `config.optimizers` has one optimiser per network."""
  optimizers = config.get("optimizers", {})
  if set(optimizers) != set(networks):
    raise ConfigError(f"config.optimizers: needs one optimiser per network, {', '.join(networks)};"
                      f" has {', '.join(sorted(optimizers)) or 'none'}")


def network_optimizers(config: ml_collections.ConfigDict, networks: Sequence[str],
                       total_steps: int) -> dict[str, optax.GradientTransformation]:
  return {name: optim.make_optimizer(config.optimizers[name], total_steps, f"optimizers.{name}")
          for name in networks}


def init_networks(params: dict, optimizers: dict[str, optax.GradientTransformation]
                  ) -> NetworksState:
  return NetworksState(params=params, opt_state={name: tx.init(params[name])
                                                 for name, tx in optimizers.items()})


def update_network(optimizers: dict[str, optax.GradientTransformation], state: NetworksState,
                   name: str, grads) -> NetworksState:
  """`state` after one step of network `name`'s optimiser; the other networks stay as they are."""
  updates, opt_state = optimizers[name].update(grads, state.opt_state[name], state.params[name])
  return NetworksState(
      params={**state.params, name: optax.apply_updates(state.params[name], updates)},
      opt_state={**state.opt_state, name: opt_state})

"""A trained VAE's or GAN's latent space as PNGs: `python -m dljax.generate --workdir=W`.

Writes into `--out` (default W/generate/):
  samples.png                  grid x grid images decoded from z ~ N(0, I)
  interpolation_linear.png     z(t) = (1 - t) z1 + t z2 for `--steps` t from 0 to 1
  interpolation_spherical.png  the same along the great circle (slerp): z(t) = sin((1 - t) w) /
                               sin(w) z1 + sin(t w) / sin(w) z2, w the angle between z1 and z2,
                               which keeps |z| near a N(0, I) draw's (linear paths pass the
                               origin's low-norm region, where few training codes lie)
  traversal.png                one row per latent coordinate (`--coordinates`): z1 with that
                               coordinate set to `--steps` values from -`--span` to +`--span`
The endpoints z1, z2 are the codes (q(z|x)'s means) of two test images (`--images`, indices
into the run's test split, which must be readable) for a VAE, and two noise vectors drawn from
`--seed` for a GAN. Everything drawn comes from `--seed`: the same seed gives the same PNGs.

A workdir without a generative run, a bad flag or an unreadable data set prints one line and
exits with status 2.
"""

import argparse
import os
import sys

import jax
import jax.numpy as jnp
import numpy as np
from absl import logging
from PIL import Image

from dljax import data, inference, tasks
from dljax.errors import ConfigError, DataError
from dljax.tasks import generative


def linear_path(z1_L: jax.Array, z2_L: jax.Array, steps: int) -> jax.Array:
  """`steps` codes from z1 to z2 on the straight line, [steps, L]."""
  t_S1 = jnp.linspace(0.0, 1.0, steps)[:, None]
  return (1.0 - t_S1) * z1_L + t_S1 * z2_L


def spherical_path(z1_L: jax.Array, z2_L: jax.Array, steps: int) -> jax.Array:
  """`steps` codes from z1 to z2 by spherical linear interpolation, [steps, L]; the straight
  line where z1 and z2 are (anti)parallel, where the great circle is not defined."""
  cosine = jnp.dot(z1_L, z2_L) / (jnp.linalg.norm(z1_L) * jnp.linalg.norm(z2_L))
  omega = jnp.arccos(jnp.clip(cosine, -1.0, 1.0))
  if float(jnp.sin(omega)) < 1e-6:
    return linear_path(z1_L, z2_L, steps)
  t_S1 = jnp.linspace(0.0, 1.0, steps)[:, None]
  return (jnp.sin((1.0 - t_S1) * omega) * z1_L + jnp.sin(t_S1 * omega) * z2_L) / jnp.sin(omega)


def traversal(z_L: jax.Array, coordinates: list[int], span: float, steps: int) -> jax.Array:
  """For each coordinate, `steps` copies of z with it set from -span to span, [C * steps, L]."""
  values_S = jnp.linspace(-span, span, steps)
  return jnp.concatenate([jnp.tile(z_L, (steps, 1)).at[:, c].set(values_S) for c in coordinates])


def endpoints(run: inference.TrainedRun, space: generative.LatentSpace, images: list[int],
              rng: jax.Array) -> jax.Array:
  """The two codes to interpolate between, [2, L]: two test images' (an encoder), else noise."""
  if space.encode is None:
    return jax.random.normal(rng, (2, space.latent))
  test = data.load(_streaming(run), run.config.seed).test
  if max(images) >= len(test):
    raise ConfigError(f"--images={','.join(map(str, images))}: the test split has "
                      f"{len(test)} images")
  pixels = data.read(test, np.asarray(images))["image"] if isinstance(test, data.Subset) else (
      test["image"][np.asarray(images)])
  return space.encode(run.state.params, jnp.asarray(pixels))


def _streaming(run: inference.TrainedRun):
  """The run's data section, read as it is used (only two test images are)."""
  config = run.config.data.copy_and_resolve_references()
  config.pipeline = "streaming"
  return config


def write_png(path: str, images_NHWC: jax.Array, columns: int) -> None:
  grid_HWC = generative.image_grid(np.asarray(images_NHWC), columns)
  pixels = np.round(np.clip(grid_HWC, 0.0, 1.0) * 255).astype(np.uint8)
  Image.fromarray(pixels[..., 0] if pixels.shape[-1] == 1 else pixels).save(path)


def generate(workdir: str, out: str, *, seed: int = 0, grid: int = 10, steps: int = 9,
             images: tuple[int, int] = (0, 1), coordinates: list[int] | None = None,
             span: float = 3.0) -> dict[str, str]:
  """Writes the PNGs into `out`; returns {name: path}. `coordinates` None: the first ten."""
  run = inference.load(workdir)
  module = tasks.TASKS[run.config.task]
  if not hasattr(module, "latent_space"):
    raise ConfigError(f"{workdir}: a {run.config.task!r} run has no latent space; train a vae "
                      "or gan run")
  space = module.latent_space(run.config)
  coordinates = list(range(min(space.latent, 10))) if coordinates is None else coordinates
  bad = [c for c in coordinates if not 0 <= c < space.latent]
  if bad:
    raise ConfigError(f"--coordinates: {bad} outside this model's latent 0..{space.latent - 1}")
  decode = jax.jit(space.decode)
  sample_rng, noise_rng = jax.random.split(jax.random.key(seed))
  z1_L, z2_L = endpoints(run, space, list(images), noise_rng)
  drawn = {
      "samples": (generative.sampler(space)(run.state.params, sample_rng, grid * grid), grid),
      "interpolation_linear": (decode(run.state.params, linear_path(z1_L, z2_L, steps)), steps),
      "interpolation_spherical": (
          decode(run.state.params, spherical_path(z1_L, z2_L, steps)), steps),
      "traversal": (decode(run.state.params, traversal(z1_L, coordinates, span, steps)), steps),
  }
  os.makedirs(out, exist_ok=True)
  paths = {}
  for name, (images_NHWC, columns) in drawn.items():
    paths[name] = os.path.join(out, f"{name}.png")
    write_png(paths[name], images_NHWC, columns)
  return paths


def main(argv: list[str] | None = None) -> int:
  """Writes the PNGs the flags `argv` ask for (default: sys.argv[1:]); returns the exit status."""
  parser = argparse.ArgumentParser(prog="python -m dljax.generate", description=__doc__,
                                   formatter_class=argparse.RawDescriptionHelpFormatter)
  parser.add_argument("--workdir", required=True, help="the workdir of a trained vae or gan run")
  parser.add_argument("--out", help="where the PNGs go (default: WORKDIR/generate)")
  parser.add_argument("--seed", type=int, default=0, help="of every random draw")
  parser.add_argument("--grid", type=int, default=10, help="samples.png: grid x grid images")
  parser.add_argument("--steps", type=int, default=9, help="images per path and per coordinate")
  parser.add_argument("--images", default="0,1", help="a VAE's endpoints: two test indices")
  parser.add_argument("--coordinates", help="coordinates traversed, e.g. 0,3,7 (default: the "
                                            "first ten)")
  parser.add_argument("--span", type=float, default=3.0, help="traversal from -SPAN to SPAN")
  args = parser.parse_args(argv)
  logging.set_verbosity(logging.ERROR)  # Orbax's warnings about metadata it then finds
  try:
    if args.grid < 1 or args.steps < 2:
      raise ConfigError(f"--grid={args.grid}, --steps={args.steps}: need grid >= 1, steps >= 2")
    images = _indices("--images", args.images)
    if len(images) != 2:
      raise ConfigError(f"--images={args.images}: two test indices, e.g. 0,1")
    coordinates = None if args.coordinates is None else _indices("--coordinates",
                                                                 args.coordinates)
    paths = generate(args.workdir, args.out or os.path.join(args.workdir, "generate"),
                     seed=args.seed, grid=args.grid, steps=args.steps, images=tuple(images),
                     coordinates=coordinates, span=args.span)
  except (ConfigError, DataError) as error:
    print(f"dljax: error: {error}", file=sys.stderr)
    return 2
  print("\n".join(paths.values()))
  return 0


def _indices(flag: str, text: str) -> list[int]:
  try:
    values = [int(item) for item in text.split(",")]
  except ValueError:
    raise ConfigError(f"{flag}={text}: comma-separated integers >= 0") from None
  if min(values) < 0:
    raise ConfigError(f"{flag}={text}: comma-separated integers >= 0")
  return values


if __name__ == "__main__":
  sys.exit(main())

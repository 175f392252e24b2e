"""Per-image quality of images in [0, 1] against their targets: the image-to-image tasks' losses
and metrics, and the colourfulness that a pixel error hides.

MSE, MAE and PSNR are dm-pix's. SSIM is Wang et al.'s (2004) with an 11-pixel Gaussian window of
sigma 1.5, K1 0.01, K2 0.03, as dm-pix, scikit-image (`gaussian_weights=True`) and TensorFlow
compute it; written here because dm-pix's filters by a vmapped `jnp.convolve`, which took 1,279 ms
for SSIM and its gradient on a batch of 128 CIFAR images against 260 ms here (2-core CPU, load ~22),
with the same values (to 2e-7). dm-pix has no MS-SSIM; `ms_ssim` is Wang, Simoncelli and Bovik's
(2003) as TensorFlow's `tf.image.ssim_multiscale` computes it: at each of len(weights) scales (2x2
average pooling between them) the mean contrast-structure term cs, at the last the mean SSIM, each
floored at a small positive value (TensorFlow's relu, kept off 0 so the powers have a gradient) and
raised to its weight, multiplied. TensorFlow refuses images smaller than 11 * 2^(scales - 1) pixels
(176 for five scales: CIFAR's 32 cannot have them); here a scale smaller than the window uses a
window as large as the scale (odd), so small images keep all five scales.
"""

from collections.abc import Callable, Sequence

import jax
import jax.numpy as jnp
import numpy as np

from dljax.registry import lookup

# (outputs_BHWC, targets_BHWC) -> per-image value, [B]
PairFn = Callable[[jax.Array, jax.Array], jax.Array]

FILTER_SIZE = 11
FILTER_SIGMA = 1.5
MS_SSIM_WEIGHTS = (0.0448, 0.2856, 0.3001, 0.2363, 0.1333)  # Wang et al. 2003, five scales
_FLOOR = 1e-6


def mse(outputs_BHWC: jax.Array, targets_BHWC: jax.Array) -> jax.Array:
  # dm-pix is imported where used: at import it cost every run ~1.3 s of start-up.
  import dm_pix

  return dm_pix.mse(outputs_BHWC, targets_BHWC)


def mae(outputs_BHWC: jax.Array, targets_BHWC: jax.Array) -> jax.Array:
  import dm_pix

  return dm_pix.mae(outputs_BHWC, targets_BHWC)


def psnr(outputs_BHWC: jax.Array, targets_BHWC: jax.Array) -> jax.Array:
  """Peak signal-to-noise ratio in dB for a peak of 1."""
  import dm_pix

  return dm_pix.psnr(outputs_BHWC, targets_BHWC)


def ssim(outputs_BHWC: jax.Array, targets_BHWC: jax.Array) -> jax.Array:
  """Mean SSIM over the window positions and channels of each image: dm-pix's `ssim` (to 2e-7)
  but ~5x faster with its gradient on CPU (`_gaussian_filter`)."""
  return ssim_terms(outputs_BHWC, targets_BHWC)[0]


def _gaussian_filter(x_BHWC: jax.Array, size: int) -> jax.Array:
  """A `size`-tap Gaussian (sigma FILTER_SIGMA) over rows and columns, 'valid': two products with
  banded matrices, which XLA's CPU runs (and differentiates) far faster than a depthwise
  convolution or dm-pix's vmapped `jnp.convolve`."""
  taps = np.exp(-0.5 * np.square((np.arange(size) - (size - 1) / 2) / FILTER_SIGMA))
  taps = taps / taps.sum()

  def band(length):  # [length - size + 1, length]: row i holds the taps at columns i ... i+size-1
    rows = np.arange(length - size + 1)[:, None]
    offsets = np.arange(length)[None, :] - rows
    inside = (offsets >= 0) & (offsets < size)
    return jnp.asarray(np.where(inside, taps[np.clip(offsets, 0, size - 1)], 0.0), x_BHWC.dtype)

  _, h, w, _ = x_BHWC.shape
  return jnp.einsum("ih,bhwc,jw->bijc", band(h), x_BHWC, band(w),
                    precision=jax.lax.Precision.HIGHEST)


def ssim_terms(a_BHWC: jax.Array, b_BHWC: jax.Array,
               max_val: float = 1.0) -> tuple[jax.Array, jax.Array]:
  """(mean SSIM, mean contrast-structure term cs) of each image pair, [B] each: SSIM is the
  luminance term times cs at each window position."""
  a_BHWC, b_BHWC = jnp.asarray(a_BHWC), jnp.asarray(b_BHWC)
  size = min(FILTER_SIZE, *a_BHWC.shape[1:3])
  size -= 1 - size % 2  # odd: centred on a pixel
  c1, c2 = (0.01 * max_val) ** 2, (0.03 * max_val) ** 2
  blur = lambda x: _gaussian_filter(x, size)
  mu_a, mu_b = blur(a_BHWC), blur(b_BHWC)
  var_a = blur(a_BHWC * a_BHWC) - mu_a * mu_a
  var_b = blur(b_BHWC * b_BHWC) - mu_b * mu_b
  cov_ab = blur(a_BHWC * b_BHWC) - mu_a * mu_b
  cs_map = (2 * cov_ab + c2) / (var_a + var_b + c2)
  luminance_map = (2 * mu_a * mu_b + c1) / (mu_a * mu_a + mu_b * mu_b + c1)
  mean = lambda x: x.mean(axis=(1, 2, 3))
  return mean(luminance_map * cs_map), mean(cs_map)


def _average_pool_2x2(x_BHWC: jax.Array) -> jax.Array:
  b, h, w, c = x_BHWC.shape
  x_BHWC = x_BHWC[:, : h // 2 * 2, : w // 2 * 2]
  return x_BHWC.reshape(b, h // 2, 2, w // 2, 2, c).mean(axis=(2, 4))


def ms_ssim(outputs_BHWC: jax.Array, targets_BHWC: jax.Array,
            weights: Sequence[float] = MS_SSIM_WEIGHTS) -> jax.Array:
  """Multi-scale SSIM of each image pair, [B] (see the module's docstring)."""
  value_B = jnp.ones(outputs_BHWC.shape[0])
  for scale, weight in enumerate(weights):
    ssim_B, cs_B = ssim_terms(outputs_BHWC, targets_BHWC)
    term_B = ssim_B if scale == len(weights) - 1 else cs_B
    value_B = value_B * jnp.maximum(term_B, _FLOOR) ** weight
    outputs_BHWC, targets_BHWC = _average_pool_2x2(outputs_BHWC), _average_pool_2x2(targets_BHWC)
  return value_B


METRICS: dict[str, PairFn] = {"mse": mse, "mae": mae, "psnr": psnr, "ssim": ssim}

LOSSES: dict[str, PairFn] = {
    "mse": mse,
    "mae": mae,
    "mse+mae": lambda outputs, targets: mse(outputs, targets) + mae(outputs, targets),
    "ssim": lambda outputs, targets: 1.0 - ssim(outputs, targets),
    "ms_ssim": lambda outputs, targets: 1.0 - ms_ssim(outputs, targets),
    "psnr": lambda outputs, targets: 1.0 / psnr(outputs, targets),
}


def loss(name: str, key: str) -> PairFn:
  """LOSSES[name]; `key` names the config key in the error for an unknown name."""
  return lookup(LOSSES, name, key, "image loss")


def grey(images_BHWC: jax.Array) -> jax.Array:
  """Luma, [B, H, W, 1]: ITU-R 601's 0.2989 R + 0.5870 G + 0.1140 B (TensorFlow's
  rgb_to_grayscale)."""
  import dm_pix

  return dm_pix.rgb_to_grayscale(images_BHWC)


def colourfulness(images_BHWC: jax.Array) -> jax.Array:
  """Hasler and Suesstrunk's (2003) colourfulness of each RGB image in [0, 1], on their 0-255
  scale: sqrt(sd(rg)^2 + sd(yb)^2) + 0.3 sqrt(mean(rg)^2 + mean(yb)^2), rg = R - G,
  yb = (R + G) / 2 - B. Grey images score 0; ~15 is 'slightly colourful', ~60 'quite'."""
  r, g, b = (255.0 * images_BHWC[..., k] for k in range(3))
  rg, yb = r - g, 0.5 * (r + g) - b
  axes = (1, 2)
  spread = jnp.sqrt(rg.var(axis=axes) + yb.var(axis=axes))
  return spread + 0.3 * jnp.sqrt(jnp.square(rg.mean(axis=axes)) + jnp.square(yb.mean(axis=axes)))

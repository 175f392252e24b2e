"""How good a generative model's samples are, as rated by a trained classifier (family E).

The Imperial course's Inception Score for MNIST: N = 10,000 samples x, p(y|x) from a trained
MNIST classifier, p(y) = the mean of p(y|x) over the samples,

  IS = exp(E_x KL(p(y|x) || p(y)))

1 when every p(y|x) is the same (no sample is recognisably one class, or all are the same
class); the number of classes when each sample is one class for sure and the classes are equally
frequent. IS misses what happens within a class (one good digit per class scores the maximum),
so beside it: a Frechet distance in the classifier's feature space (an MNIST FID, as FID uses
Inception-v3's pool features), between Gaussians fitted to the samples' features and to the real
test images' features:

  FID = |mu_s - mu_r|^2 + Tr(S_s + S_r - 2 (S_s S_r)^(1/2))

0 for the same features, growing with any difference of mean or covariance. The features are the
inputs of the classifier's last Dense layer (the course classifier's 128 pooled channels).

The classifier is any dljax classification run (configs/mnist_course_cnn.py is the course's),
named by its workdir in the generative task's section (`config.vae.classifier_workdir`,
`config.gan.classifier_workdir`) and restored with `dljax.load`. The evaluator rates the same
fixed noise at every evaluation, and also real images as the ceiling: `real_inception_score`
(the test images') and `real_fid` (train images against the test images).
"""

import functools
import os
from collections.abc import Callable

import jax
import jax.numpy as jnp
import ml_collections
import numpy as np
from flax import linen as nn

from dljax import data
from dljax.errors import ConfigError, require
from dljax.tasks import generative
from dljax.tasks.task import Evaluator

CHUNK = 500  # samples drawn and rated at once: bounds the memory of 10,000

# (generator params, rng, count) -> `count` images in [0, 1], [count, H, W, C]
SampleFn = Callable[[dict, jax.Array, int], jax.Array]


def task_config_keys() -> dict:
  """The keys each generative task's section gets for rating its samples."""
  return dict(
      classifier_workdir="",  # a trained classifier's workdir; '' = no IS / FID
      quality_samples=10_000,  # samples rated (and real images, at most this many)
  )


def validate(section: ml_collections.ConfigDict, name: str) -> None:
  """One-line ConfigErrors, before training, for a rating that could only fail at the first
  evaluation: too few samples, a classifier workdir that holds no run."""
  require(section.quality_samples >= 2, f"{name}.quality_samples", section.quality_samples,
          "must be >= 2 (a covariance needs two samples)")
  workdir = section.classifier_workdir
  require(not workdir or os.path.isfile(os.path.join(workdir, "config.json")),
          f"{name}.classifier_workdir", workdir, "holds no run; train a classifier there first, "
          "e.g. configs/mnist_course_cnn.py")


def inception_score(p_NK: np.ndarray) -> float:
  """exp(mean over samples of KL(p(y|x) || p(y))), p(y) the samples' mean p(y|x); p_NK [N, K]."""
  import scipy.special  # here, not at import: every run would pay for it

  p_NK = np.asarray(p_NK, np.float64)
  kl_N = scipy.special.rel_entr(p_NK, p_NK.mean(axis=0)).sum(axis=-1)
  return float(np.exp(kl_N.mean()))


def frechet_distance(features_ND: np.ndarray, reference_MD: np.ndarray) -> float:
  """The Frechet distance between Gaussians fitted to two sets of feature vectors (rows)."""
  a_ND, b_MD = (np.asarray(f, np.float64) for f in (features_ND, reference_MD))
  cov_a, cov_b = np.cov(a_ND, rowvar=False), np.cov(b_MD, rowvar=False)
  mean_gap = a_ND.mean(axis=0) - b_MD.mean(axis=0)
  return float(mean_gap @ mean_gap + np.trace(cov_a) + np.trace(cov_b)
               - 2.0 * _trace_sqrt_product(cov_a, cov_b))


def _trace_sqrt_product(cov_a: np.ndarray, cov_b: np.ndarray) -> float:
  """Tr((A B)^(1/2)) of two covariance matrices: A B has the eigenvalues of A^(1/2) B A^(1/2),
  which is symmetric and >= 0, so they come from eigvalsh. Exact also where A or B is singular
  (fewer samples than features), where scipy.linalg.sqrtm(A B), pytorch-fid's way, warns and
  may return complex or inaccurate roots."""
  eigenvalues_D, eigenvectors_DD = np.linalg.eigh(cov_a)
  root_a = (eigenvectors_DD * np.sqrt(np.clip(eigenvalues_D, 0.0, None))) @ eigenvectors_DD.T
  return float(np.sqrt(np.clip(np.linalg.eigvalsh(root_a @ cov_b @ root_a), 0.0, None)).sum())


def rater(workdir: str, key: str) -> Callable[[jax.Array], tuple[jax.Array, jax.Array]]:
  """The classifier trained in `workdir` (named by config `key`): images in [0, 1] ->
  (p(y|x) [N, K], features [N, D], the inputs of its last Dense layer), jitted."""
  from dljax import inference  # not at the top: inference imports the tasks, this among them
  try:
    run = inference.load(workdir)
  except ConfigError as error:
    raise ConfigError(f"config.{key}={workdir!r}: {error}") from None
  require(run.config.task == "classification", key, workdir, f"a {run.config.task!r} run; name "
          "a classification run, e.g. of configs/mnist_course_cnn.py")
  rng = jax.random.key(0)  # unused: a classifier's predictions draw nothing

  @jax.jit
  def rate(images_NHWC):
    dense_inputs = []

    def record(next_fun, args, kwargs, context):
      if isinstance(context.module, nn.Dense) and context.method_name == "__call__":
        dense_inputs.append(args[0])
      return next_fun(*args, **kwargs)

    with nn.intercept_methods(record):
      # The classifier scales its uint8 pixels itself: give it 0-255, unrounded.
      outputs = run.task.predict(run.state, {"image": images_NHWC * 255.0}, rng)
    return outputs["probabilities"], dense_inputs[-1]

  return rate


def evaluator(section: ml_collections.ConfigDict, name: str, splits: data.Splits,
              sample: SampleFn) -> Evaluator | None:
  """The evaluator that rates `quality_samples` of `sample`'s images (the same fixed noise at
  each evaluation) by `section.classifier_workdir`'s classifier; None where it names none.
  The classifier and the real images' ratings are loaded at the first evaluation, once."""
  if not section.classifier_workdir:
    return None
  count = section.quality_samples
  real_test = generative.first_rows(splits.test, count, 1)
  real_train = generative.first_rows(splits.train, count, 1)

  @functools.cache
  def rate():
    return rater(section.classifier_workdir, f"{name}.classifier_workdir")

  def rate_all(images_of: Callable[[int, int], jax.Array],
               total: int) -> tuple[np.ndarray, np.ndarray]:
    """(p(y|x), features) of `total` images, `images_of(start, size)` giving each chunk's."""
    rated = [jax.device_get(rate()(images_of(start, min(CHUNK, total - start))))
             for start in range(0, total, CHUNK)]
    return tuple(np.concatenate([chunk[index] for chunk in rated]) for index in (0, 1))

  def rate_real(images_NHWC: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    return rate_all(lambda start, size: jnp.asarray(
        images_NHWC[start:start + size], jnp.float32) / 255.0, len(images_NHWC))

  @functools.cache
  def ceiling():
    """(the real test images' features or None, the real images' metrics)."""
    if real_test is None:
      return None, {}
    p_NK, features_ND = rate_real(real_test)
    metrics = {"real_inception_score": inception_score(p_NK)}
    if real_train is not None:
      metrics["real_fid"] = frechet_distance(rate_real(real_train)[1], features_ND)
    return features_ND, metrics

  def rate_samples(state, rng, artefacts):
    del artefacts  # the task's own evaluator draws the samples
    p_NK, features_ND = rate_all(
        lambda start, size: sample(state.params, jax.random.fold_in(rng, start), size), count)
    reference_ND, metrics = ceiling()
    metrics = {**metrics, "inception_score": inception_score(p_NK)}
    if reference_ND is not None:
      metrics["fid"] = frechet_distance(features_ND, reference_ND)
    return metrics

  return rate_samples

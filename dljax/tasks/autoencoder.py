"""Autoencoders and the quality of their representations (family D): the Imperial coursework's
MNIST autoencoders, against PCA with as many components.

The model (`config.model`: `autoencoder_dense` or `autoencoder_conv`, dljax/models/
autoencoder.py) maps images to a representation and back. The step makes inputs and targets
from the batch (`supervised.build`'s `inputs_and_targets`): the [0, 1] images, resized to
`config.autoencoder.image_size` if set (the 2021 reports' MNIST at 32x32; `jax.image.resize`,
anti-aliased where it shrinks), are both. The loss per image is `config.autoencoder.loss` (a
name of `image_quality.LOSSES`; the reports': 'mse', the mean over pixels); evaluation reports
`loss`, `mse` and `mae` per image. Each evaluation draws `reconstructions`: the first test
images in odd rows above their reconstructions. `predict` gives each image's representation.

`analyze`, once on the test set, rates the representation as the reports did, and the same for
PCA with as many components fitted on the train images (scikit-learn), all in results.json:
  clustering_accuracy   KMeans(10) on the test representations, each cluster labelled with its
                        most frequent true digit: the share of test images whose cluster's label
                        is theirs (`majority_vote_accuracy`)
  probe_train_accuracy, probe_test_accuracy
                        a linear classifier (multinomial logistic regression on standardised
                        representations, the reports' Dense(10, softmax) fitted to convergence)
                        trained on the train representations, scored on train and test
  pca_mse, pca_train_mse   PCA's reconstruction MSE per pixel (inverse_transform), test / train
  pca_clustering_accuracy, pca_probe_train_accuracy, pca_probe_test_accuracy
and writes representation.png: the test representations (their first two principal components
where there are more than two) coloured by digit.
"""

import os
from collections.abc import Callable

import jax
import ml_collections
import numpy as np

from dljax import models
from dljax.data import Splits
from dljax.errors import ConfigError, require
from dljax.tasks import generative, image_quality, supervised
from dljax.tasks.task import Task

RESIZE_METHODS = ("linear", "cubic", "lanczos3", "lanczos5", "nearest")
ENCODE_BATCH = 1000  # train images encoded at a time for the probe


def task_config() -> ml_collections.ConfigDict:
  """`config.autoencoder`: the loss, the image size, the analysis."""
  return ml_collections.ConfigDict(dict(
      loss="mse",  # a key of image_quality.LOSSES
      image_size=0,  # > 0: resize images to image_size x image_size (0 = as stored)
      resize_method="linear",  # jax.image.resize's (anti-aliased); skimage's order-1 default
      clusters=10,  # KMeans' clusters for the clustering accuracy
      probe_examples=0,  # train images the probe and PCA are fitted on (0 = all)
      grid=10,  # reconstructions PNG: grid / 2 rows of test images, each above its reconstructions
  ))


def validate(config: ml_collections.ConfigDict) -> None:
  generative.check_pixels(config)
  knobs = config.autoencoder
  image_quality.loss(knobs.loss, "config.autoencoder.loss")
  require(knobs.image_size >= 0, "autoencoder.image_size", knobs.image_size,
          "must be >= 0 (0 = as stored)")
  require(knobs.resize_method in RESIZE_METHODS, "autoencoder.resize_method", knobs.resize_method,
          f"allowed: {', '.join(RESIZE_METHODS)}")
  for key in ("clusters", "grid"):
    require(knobs[key] >= 1, f"autoencoder.{key}", knobs[key], "must be >= 1")
  require(knobs.probe_examples >= 0, "autoencoder.probe_examples", knobs.probe_examples,
          "must be >= 0 (0 = all)")
  if not hasattr(models.build(config.model), "encode"):
    raise ConfigError(f"config.model.name={config.model.name!r}: not an autoencoder; allowed: "
                      "autoencoder_dense, autoencoder_conv")


def resizer(knobs: ml_collections.ConfigDict) -> Callable[[jax.Array], jax.Array]:
  """images_BHWC -> images at `image_size` x `image_size` (the identity for 0)."""
  if not knobs.image_size:
    return lambda images_BHWC: images_BHWC
  def resize(images_BHWC):
    b, _, _, c = images_BHWC.shape
    return jax.image.resize(images_BHWC, (b, knobs.image_size, knobs.image_size, c),
                            method=knobs.resize_method, antialias=True)
  return resize


def majority_vote_accuracy(clusters_N: np.ndarray, labels_N: np.ndarray) -> float:
  """The share of examples whose cluster's most frequent label is their own label."""
  counts_CK = np.zeros((clusters_N.max() + 1, labels_N.max() + 1), np.int64)
  np.add.at(counts_CK, (clusters_N, labels_N), 1)
  return float(counts_CK.max(axis=1).sum() / len(labels_N))


def representation_scores(train_X: np.ndarray, train_y: np.ndarray, test_X: np.ndarray,
                          test_y: np.ndarray, clusters: int, seed: int) -> dict[str, float]:
  """The clustering accuracy on test and a linear probe's train / test accuracy."""
  # scikit-learn is imported where it is used: at import it cost every run 4.5 s of start-up.
  from sklearn.cluster import KMeans
  from sklearn.linear_model import LogisticRegression
  from sklearn.pipeline import make_pipeline
  from sklearn.preprocessing import StandardScaler

  kmeans = KMeans(n_clusters=clusters, n_init=10, random_state=seed).fit(test_X)
  probe = make_pipeline(StandardScaler(), LogisticRegression(max_iter=1000)).fit(train_X, train_y)
  return {"clustering_accuracy": majority_vote_accuracy(kmeans.labels_, test_y),
          "probe_train_accuracy": float(probe.score(train_X, train_y)),
          "probe_test_accuracy": float(probe.score(test_X, test_y))}


def build(config: ml_collections.ConfigDict, data: Splits, total_steps: int) -> Task:
  """The Task of the autoencoder `config.model` trained on `config.autoencoder.loss`."""
  knobs = config.autoencoder
  model = models.build(config.model)
  loss = image_quality.loss(knobs.loss, "config.autoencoder.loss")
  preprocess = supervised.preprocessor(config.data, data)
  resize = resizer(knobs)
  columns = knobs.grid
  test_images = generative.first_rows(data.test, max(columns // 2, 1), columns)

  def inputs_and_targets(rng, images_BHWC, batch):
    del rng  # nothing is drawn
    images_BHWC = resize(images_BHWC)
    image_shape = tuple(model.image_shape)
    if images_BHWC.shape[1:] != image_shape:
      raise ConfigError(f"config.model.image_shape={image_shape}: the images are "
                        f"{images_BHWC.shape[1:]} (set it to that, or resize with "
                        "config.autoencoder.image_size)")
    return images_BHWC, {**batch, "target": images_BHWC}

  def reconstruction_metrics(outputs, batch):
    return {name: image_quality.METRICS[name](outputs["reconstruction"], batch["target"])
            for name in ("mse", "mae")}

  @jax.jit
  def encoded(params, images):
    return model.apply({"params": params}, resize(preprocess(images)), method="encode")

  @jax.jit
  def reconstructed(params, images):
    return model.apply({"params": params}, resize(preprocess(images)))["reconstruction"]

  def draw(state, rng, artefacts):
    del rng  # nothing is drawn
    if test_images is not None:
      shown = min(columns, len(test_images))
      rows = generative.interleaved_rows(
          [resize(preprocess(test_images)), reconstructed(state.params, test_images)], shown)
      artefacts.image("reconstructions", generative.image_grid(rows, shown))
    return {}

  def analyze(state, outputs, examples, workdir):
    train = generative.leading_examples(data.train, knobs.probe_examples or None)
    train_images, train_y = train["image"], train["label"]
    train_X = np.concatenate([encoded(state.params, train_images[start:start + ENCODE_BATCH])
                              for start in range(0, len(train_images), ENCODE_BATCH)])
    test_y = examples["label"]
    scores = representation_scores(train_X, train_y, outputs["representation"], test_y,
                                   knobs.clusters, config.seed)
    flat = lambda images: np.asarray(resize(preprocess(images))).reshape(len(images), -1)
    pca_train, pca_test = flat(train_images), flat(examples["image"])
    from sklearn.decomposition import PCA

    pca = PCA(n_components=outputs["representation"].shape[-1], random_state=config.seed)
    pca_train_X, pca_test_X = pca.fit_transform(pca_train), pca.transform(pca_test)
    pca_mse = lambda X, images: float(np.mean(np.square(pca.inverse_transform(X) - images)))
    pca_scores = representation_scores(pca_train_X, train_y, pca_test_X, test_y, knobs.clusters,
                                       config.seed)
    _plot_representation(outputs["representation"], test_y, scores,
                         os.path.join(workdir, "representation.png"))
    return {**scores, "pca_mse": pca_mse(pca_test_X, pca_test),
            "pca_train_mse": pca_mse(pca_train_X, pca_train),
            **{f"pca_{name}": value for name, value in pca_scores.items()}}

  return supervised.build(
      config, data, total_steps,
      loss=lambda outputs, batch: loss(outputs["reconstruction"], batch["target"]),
      metrics=reconstruction_metrics,
      predictions=lambda outputs, batch: {"representation": outputs["representation"]},
      inputs_and_targets=inputs_and_targets, describe=describe, evaluators=(draw,),
      analyze=analyze)


def describe(outputs: dict[str, np.ndarray]) -> list[dict[str, float]]:
  """`predict` outputs -> one row per image: its representation's units r0, r1, ..."""
  return [{f"r{index}": float(value) for index, value in enumerate(code_L)}
          for code_L in outputs["representation"]]


def _plot_representation(code_NL: np.ndarray, labels_N: np.ndarray, scores: dict[str, float],
                         path: str) -> None:
  """The representations (their first two principal components beyond 2-D) coloured by digit."""
  from sklearn.decomposition import PCA

  points_N2 = code_NL if code_NL.shape[-1] <= 2 else PCA(n_components=2).fit_transform(code_NL)
  points_N2 = np.pad(points_N2, ((0, 0), (0, 2 - points_N2.shape[-1])))
  from matplotlib.figure import Figure  # here: not in every run's start-up

  figure = Figure(figsize=(7, 6))
  ax = figure.subplots()
  scatter = ax.scatter(points_N2[:, 0], points_N2[:, 1], c=labels_N, cmap="tab10", s=2)
  figure.colorbar(scatter, ax=ax, ticks=range(10), label="digit")
  axes = "" if code_NL.shape[-1] <= 2 else " (first two principal components)"
  ax.set_title(f"{len(labels_N)} test representations of {code_NL.shape[-1]} units{axes}\n"
               f"clustering accuracy {scores['clustering_accuracy']:.3f}, probe test accuracy "
               f"{scores['probe_test_accuracy']:.3f}")
  figure.tight_layout()
  figure.savefig(path, dpi=100)

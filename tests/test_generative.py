"""The generative tasks: the VAE's KL and reparameterisation, the GAN's two updates, the Inception
Score and the Frechet distance, smoke runs of both through the trainer with their sample PNGs and
a classifier rating their samples, and one-line errors for their knobs."""

import glob
import os

import jax
import jax.numpy as jnp
import numpy as np
import pytest
import tensorflow_datasets as tfds

import configs.gan_mnist
import configs.mnist_course_cnn
import configs.vae_mnist
import dljax
from dljax import config_lib, data, generate, train, writers
from dljax.errors import ConfigError
from dljax.tasks import gan, sample_quality, vae


def test_kl_of_a_standard_normal_posterior_is_zero():
  assert float(vae.kl_divergence(jnp.zeros((1, 5)), jnp.zeros((1, 5)))[0]) == 0.0


def test_kl_matches_the_closed_form_and_a_monte_carlo_estimate():
  rng = np.random.default_rng(0)
  mu_BL, logvar_BL = rng.normal(size=(2, 2, 3)).astype(np.float32)
  sigma_BL = np.exp(0.5 * logvar_BL)
  closed_form_B = np.sum(np.log(1 / sigma_BL) + (sigma_BL**2 + mu_BL**2) / 2 - 0.5, axis=-1)
  kl_B = np.asarray(vae.kl_divergence(mu_BL, logvar_BL))
  np.testing.assert_allclose(kl_B, closed_form_B, rtol=1e-5)
  # E_q[log q(z) - log p(z)] over draws of the reparameterisation itself.
  z_NBL = jax.vmap(lambda key: vae.reparameterize(key, mu_BL, logvar_BL))(
      jax.random.split(jax.random.key(0), 100_000))
  log_q = -0.5 * (np.square((z_NBL - mu_BL) / sigma_BL) + logvar_BL)
  log_p = -0.5 * np.square(z_NBL)
  np.testing.assert_allclose(np.mean(np.sum(log_q - log_p, axis=-1), axis=0), kl_B, rtol=0.02)


def test_reparameterisation_is_differentiable_and_drawn_from_the_rng():
  mu_BL, logvar_BL = jnp.full((2, 3), 0.5), jnp.full((2, 3), -1.0)
  key = jax.random.key(1)
  eps_BL = vae.reparameterize(key, jnp.zeros((2, 3)), jnp.zeros((2, 3)))
  d_mu, d_logvar = jax.grad(lambda m, v: vae.reparameterize(key, m, v).sum(), argnums=(0, 1))(
      mu_BL, logvar_BL)
  np.testing.assert_allclose(d_mu, np.ones((2, 3)))
  np.testing.assert_allclose(d_logvar, 0.5 * np.exp(0.5 * logvar_BL) * eps_BL, rtol=1e-6)
  same = vae.reparameterize(key, mu_BL, logvar_BL)
  np.testing.assert_array_equal(same, vae.reparameterize(key, mu_BL, logvar_BL))
  assert not np.allclose(same, vae.reparameterize(jax.random.key(2), mu_BL, logvar_BL))


def test_inception_score_is_one_for_uniform_and_ten_for_sure_balanced_classes():
  assert sample_quality.inception_score(np.full((30, 10), 0.1)) == pytest.approx(1.0)
  assert sample_quality.inception_score(np.tile(np.eye(10), (3, 1))) == pytest.approx(10.0)
  # Sure but all the same class: no variety, 1 again.
  assert sample_quality.inception_score(np.tile(np.eye(10)[:1], (30, 1))) == pytest.approx(1.0)


def test_frechet_distance_is_zero_for_the_same_set_and_measures_means_and_covariances():
  features_ND = np.random.default_rng(0).normal(size=(500, 6)) @ np.diag([1, 2, 3, 1, 1, 5])
  features_ND -= features_ND.mean(axis=0)  # so that 2 x features keeps the mean
  assert abs(sample_quality.frechet_distance(features_ND, features_ND)) < 1e-9
  # Fewer samples than features (singular covariances): still exact.
  assert abs(sample_quality.frechet_distance(features_ND[:4], features_ND[:4])) < 1e-6
  shift_D = np.arange(6.0)
  assert sample_quality.frechet_distance(features_ND + shift_D, features_ND) == pytest.approx(
      shift_D @ shift_D)
  # Covariance 4 S against S: Tr(S + 4 S - 2 (4 S S)^(1/2)) = Tr(S).
  assert sample_quality.frechet_distance(2 * features_ND, features_ND) == pytest.approx(
      np.trace(np.cov(features_ND, rowvar=False)))


def _tiny_splits() -> data.Splits:
  images = np.random.default_rng(0).integers(0, 256, (8, 28, 28, 1), dtype=np.uint8)
  return data.Splits(train={"image": images}, validation=None, test={"image": images})


def _task_state_batch(config):
  """The task of `config` on 8 random images, its initial state and those images as a batch."""
  splits = _tiny_splits()
  task = {"vae": vae, "gan": gan}[config.task].build(config, splits, total_steps=10)
  batch = {"image": splits.train["image"]}
  return task, task.init(jax.random.key(0), batch), batch


def test_the_vae_step_draws_its_codes_from_the_steps_rng():
  task, state, batch = _task_state_batch(configs.vae_mnist.get_config("smoke"))
  step = jax.jit(task.train_step)
  loss = lambda key: float(step(state, batch, jax.random.key(key))[1]["loss"])
  assert loss(3) == loss(3) != loss(4)


def test_a_gan_step_updates_each_network_with_its_own_optimiser():
  task, before, batch = _task_state_batch(configs.gan_mnist.get_config("smoke"))
  after, metrics = jax.jit(task.train_step)(before, batch, jax.random.key(0))
  for name in gan.NETWORKS:
    changed = jax.tree.map(lambda a, b: bool(jnp.any(a != b)), before.params[name],
                           after.params[name])
    assert all(jax.tree.leaves(changed)), name
  assert set(after.opt_state) == set(gan.NETWORKS)
  assert set(metrics) == {"d_loss", "g_loss", "d_real_accuracy", "d_fake_accuracy"}
  assert 0 <= float(metrics["d_real_accuracy"]) <= 1


def _sample_pngs(workdir: str, name: str) -> list[str]:
  return sorted(os.path.basename(p) for p in glob.glob(
      os.path.join(workdir, writers.SAMPLES_DIR, name, "*.png")))


EACH_EVALUATION = ["step_00000008.png", "step_00000016.png", "test.png"]


@pytest.fixture(scope="module")
def classifier_workdir(tmp_path_factory) -> str:
  """The course's MNIST classifier, smoke-trained on mock data."""
  workdir = str(tmp_path_factory.mktemp("classifier"))
  with tfds.testing.mock_data(num_examples=300):
    train.run(configs.mnist_course_cnn.get_config("smoke"), workdir)
  return workdir


@pytest.fixture(scope="module")
def smoke_run(classifier_workdir, tmp_path_factory):
  """(config module, its argument) -> (workdir, results) of that config trained on mock MNIST,
  once for all this module's tests; a GAN's samples rated by the smoke classifier."""
  runs = {}

  def run(config_module, arg: str = "smoke") -> tuple[str, dict]:
    if (config_module, arg) not in runs:
      config = config_module.get_config(arg)
      if config.task == "gan":
        config.gan.classifier_workdir = classifier_workdir
        config.gan.quality_samples = 40
      workdir = str(tmp_path_factory.mktemp(config.task))
      with tfds.testing.mock_data(num_examples=300):
        runs[config_module, arg] = workdir, train.run(config, workdir)
    return runs[config_module, arg]

  return run


@pytest.mark.parametrize("arg", ["smoke", "smoke,conv,beta=0,reconstruction=mse"])
def test_a_vae_trains_and_draws_samples_and_reconstructions_each_evaluation(arg, smoke_run):
  workdir, results = smoke_run(configs.vae_mnist, arg)
  assert set(results["test"]) == {"loss", "kl", "bce", "mse", "mae"}
  assert all(np.isfinite(list(results["test"].values())))
  for name in ("samples", "reconstructions"):
    assert _sample_pngs(workdir, name) == EACH_EVALUATION
  images = np.zeros((3, 28, 28, 1), np.uint8)
  run = dljax.load(workdir)
  assert run.predict(images)["code"].shape == (3, run.config.model.latent)
  assert list(run.describe(run.predict(images))[0]) == [
      f"z{index}" for index in range(run.config.model.latent)]


RATINGS = {"inception_score", "fid", "real_inception_score", "real_fid"}


def test_a_gan_trains_logs_both_losses_draws_samples_and_rates_them_each_evaluation(smoke_run):
  workdir, results = smoke_run(configs.gan_mnist)
  logged = {key for record in writers.read_metrics(workdir) if record["split"] == "train"
            for key in record}
  assert {"d_loss", "g_loss", "d_real_accuracy", "d_fake_accuracy"} <= logged
  assert set(results["test"]) == {"d_loss", "g_loss", "d_real_accuracy", "d_fake_accuracy",
                                  *RATINGS}
  assert 1.0 <= results["test"]["inception_score"] <= 10.0
  assert 1.0 <= results["test"]["real_inception_score"] <= 10.0
  # mock_data's train and test images are alike: a real FID near 0.
  assert results["test"]["fid"] > 0 and results["test"]["real_fid"] > -1e-6
  validations = [record for record in writers.read_metrics(workdir)
                 if record["split"] == "validation"]
  assert len(validations) == 2 and all(set(record) >= RATINGS for record in validations)
  assert _sample_pngs(workdir, "samples") == ["step_00000004.png", "step_00000008.png",
                                              "test.png"]


def test_interpolation_paths_start_and_end_at_the_codes_and_traversals_move_one_coordinate():
  z1_L, z2_L = jnp.array([1.0, 2.0, -0.5]), jnp.array([-2.0, 0.5, 1.0])
  for path in (generate.linear_path, generate.spherical_path):
    path_SL = path(z1_L, z2_L, 5)
    np.testing.assert_allclose(path_SL[0], z1_L, atol=1e-6)
    np.testing.assert_allclose(path_SL[-1], z2_L, atol=1e-6)
  np.testing.assert_allclose(generate.linear_path(z1_L, z2_L, 3)[1], (z1_L + z2_L) / 2)
  # Between codes of one length, slerp keeps the length; the straight line cuts inside.
  z3_L = z2_L * jnp.linalg.norm(z1_L) / jnp.linalg.norm(z2_L)
  np.testing.assert_allclose(jnp.linalg.norm(generate.spherical_path(z1_L, z3_L, 5), axis=-1),
                             jnp.linalg.norm(z1_L), rtol=1e-5)
  assert float(jnp.linalg.norm(generate.linear_path(z1_L, z3_L, 3)[1])) < float(
      jnp.linalg.norm(z1_L))
  walk_NL = generate.traversal(z1_L, [0, 2], span=3.0, steps=4)
  np.testing.assert_allclose(walk_NL[:4, 0], [-3, -1, 1, 3], rtol=1e-6)
  np.testing.assert_array_equal(walk_NL[:4, 1:], np.tile(z1_L[1:], (4, 1)))
  np.testing.assert_allclose(walk_NL[4:, 2], [-3, -1, 1, 3], rtol=1e-6)


PNGS = ["interpolation_linear.png", "interpolation_spherical.png", "samples.png",
        "traversal.png"]


def _generated(workdir: str, out: str, *flags: str) -> dict[str, bytes]:
  with tfds.testing.mock_data(num_examples=300):  # a VAE's endpoints are test images' codes
    assert generate.main(["--workdir", workdir, "--out", out, "--grid", "2", "--steps", "3",
                          *flags]) == 0
  assert sorted(os.listdir(out)) == PNGS
  return {name: open(os.path.join(out, name), "rb").read() for name in PNGS}


@pytest.mark.parametrize("config_module", [configs.vae_mnist, configs.gan_mnist])
def test_generate_writes_its_pngs_the_same_for_the_same_seed(config_module, smoke_run, tmp_path):
  workdir = smoke_run(config_module)[0]
  assert _generated(workdir, str(tmp_path / "a")) == _generated(workdir, str(tmp_path / "b"))


def test_a_vaes_interpolation_runs_between_two_test_images_codes(smoke_run):
  run = dljax.load(smoke_run(configs.vae_mnist)[0])
  with tfds.testing.mock_data(num_examples=300):
    test = data.load(run.config.data, run.config.seed).test
    images = test["image"][[2, 5]] if isinstance(test, dict) else data.read(
        test, np.array([2, 5]))["image"]
    ends_2L = generate.endpoints(run, vae.latent_space(run.config), [2, 5], jax.random.key(0))
  np.testing.assert_allclose(ends_2L, run.predict(images)["code"], rtol=1e-5, atol=1e-6)


def test_generate_refuses_a_run_without_a_latent_space_in_one_line(classifier_workdir, capsys):
  assert generate.main(["--workdir", classifier_workdir]) == 2
  assert capsys.readouterr().err.strip().endswith(
      "a 'classification' run has no latent space; train a vae or gan run")


def test_a_rating_classifier_must_be_a_trained_classification_run(tmp_path):
  config = configs.gan_mnist.get_config("smoke")
  config.gan.classifier_workdir = str(tmp_path)
  evaluate = sample_quality.evaluator(config.gan, "gan", _tiny_splits(), None)
  with pytest.raises(ConfigError, match=r"^config.gan.classifier_workdir=.*holds no trained run"):
    evaluate(None, jax.random.key(0), None)


@pytest.mark.parametrize("config_module, key, value, message", [
    (configs.vae_mnist, "vae.reconstruction", "l1",
     "config.vae.reconstruction='l1': unknown reconstruction loss; allowed: bce, mse"),
    (configs.vae_mnist, "model.latent", 0, "config.model.latent=0: sizes must be ints > 0"),
    (configs.vae_mnist, "vae.beta", -1.0, "config.vae.beta=-1.0: must be >= 0"),
    (configs.vae_mnist, "data.normalize", "per_pixel", "config.data.normalize='per_pixel'"),
    (configs.gan_mnist, "model.latent", -1, "config.model.latent=-1: sizes must be ints > 0"),
    (configs.gan_mnist, "gan.quality_samples", 1, "config.gan.quality_samples=1: must be >= 2"),
    (configs.vae_mnist, "vae.classifier_workdir", "/nonexistent",
     "config.vae.classifier_workdir='/nonexistent': holds no run; train a classifier there"),
])
def test_bad_knobs_are_one_line_config_errors(config_module, key, value, message):
  config = config_module.get_config("smoke")
  config_lib.override(config, key, value)
  with pytest.raises(ConfigError) as error:
    config_lib.validate(config)
  assert str(error.value).startswith(message) and "\n" not in str(error.value)

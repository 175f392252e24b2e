r"""Imperial coursework DCGAN on MNIST (dljax/tasks/gan.py, dljax/models/dcgan.py).

G: Dense(128*7*7, N(0, .02)) -> LReLU .2 -> Reshape -> Up2 -> Conv64 5x5 -> LReLU -> Up2 -> Conv1
5x5 tanh; D: Conv64 5x5 s2 -> LReLU -> Drop .3 -> Conv128 5x5 s2 -> LReLU -> Drop .3 -> Dense1
sigmoid; BCE, Adam(2e-4, b1 .5) for both; pixels / 127.5 - 1; each step D on 32 real + 32 fake,
then G on 32 noise vectors labelled real; noise of size 10; 10 epochs (1,875 steps each).
Reports: Inception Score 7.54 (2020) and 8.29 (2021) with latent 10, 2.66 with latent 1 (2020).

    python -m dljax.main --config=configs/gan_mnist.py --workdir=runs/gan_mnist
    python -m dljax.main --config=configs/gan_mnist.py:latent=1 --workdir=runs/gan_mnist_latent1

Each evaluation (every epoch) draws the same 100 noise vectors into
runs/gan_mnist/samples/samples/step_*.png, and with a trained course classifier
(`--config.gan.classifier_workdir=runs/mnist_course_cnn`, configs/mnist_course_cnn.py) rates
10,000 samples: Inception Score and MNIST FID. The last state is tested. Latent space as PNGs:
`python -m dljax.generate --workdir=runs/gan_mnist`.

Measured on the real MNIST, 5 of the 10 epochs (`--config.num_epochs=5`; 2-core CPU shared with
other jobs, 1,301 s of training, 7.2 steps/s): mostly recognisable digits from epoch 2 on and
every class at the end (samples/samples/); at the end D called 88.0% of the test digits real
and 55.3% of the fakes fake (d_loss 0.596, g_loss 0.727), no collapse. Rated by
configs/mnist_course_cnn.py (real test images: IS 9.27), after only 600 steps (0.32 epoch, all
the shared CPU allowed): IS 3.12, MNIST FID 13.83.
"""

from dljax import config_lib, optim
from dljax.data import data_config


def get_config(arg: str | None = None):
  arg = config_lib.parse_arg(arg, smoke=False, latent=10)
  config = config_lib.trainer_config(
      task="gan",
      batch_size=32,
      num_epochs=10.0,
      early_stopping=dict(metric="g_loss", mode="min", patience=0, restore_best=False),
  )
  config.model = dict(name="dcgan", latent=arg.latent, generator_features=64,
                      discriminator_features=(64, 128), dropout=0.3, channels=1)
  config.optimizers = {name: optim.optimizer_config("adam", learning_rate=2e-4, b1=0.5)
                       for name in ("generator", "discriminator")}
  config.data = data_config("mnist", validation="test")
  if arg.smoke:
    config.data.train_limit = 128
    config.data.eval_limit = 64
    config.num_epochs = 2.0
    config.log_every_steps = 2
    config.model.update(generator_features=16, discriminator_features=(16, 32))  # 4-8x quicker
  return config.lock()

r"""Imperial coursework pix2pix-style colourisation on CIFAR-10 (dljax/tasks/pix2pix.py,
dljax/models/unet.py).

G: the colourisation UNet of configs/unet_cifar10.py (grey -> colour, linear out); D on (colour,
grey) pairs: concat -> Conv64 5x5 s2 LReLU .2 -> Conv64 5x5 s2 LReLU -> Conv128 5x5 s2 valid
LReLU -> Dense1024 -> Dense1 linear (the tutorial's two BatchNorm(0.8) layers left out). Least
squares for D, Adam(2e-5, 0.5); G: least squares + 100 x MAE, Adam(2e-4, 0.5); batch 128,
20 epochs. Reports: test MAE 0.0456 (cGAN) against 0.0442 (the MAE-only UNet); the tutorial's
printout 0.0458.

    python -m dljax.main --config=configs/pix2pix_cifar10.py --workdir=runs/colour_cgan \
        --config.pix2pix.compare_with=runs/colour_unet

`compare_with` (a trained `unet_cifar10.py:colour` run) adds comparison.png (grey / UNet / cGAN /
truth) and that run's test MAE and colourfulness to results.json.

Arguments: `width=F` (the UNet's first-level filters; 0: 64), `smoke`.

Measured: README "Autoencoders and image-to-image".
"""

from configs.unet_cifar10 import unet
from dljax import config_lib, optim
from dljax.data import data_config


def get_config(arg: str | None = None):
  arg = config_lib.parse_arg(arg, smoke=False, width=0)
  config = config_lib.trainer_config(
      task="pix2pix",
      batch_size=128,
      num_epochs=20.0,
      early_stopping=dict(metric="mae", mode="min", patience=0, restore_best=False),
  )
  generator = unet(arg.width or 4, levels=2) if arg.smoke else unet(arg.width or 64)
  del generator["name"]
  config.model = dict(name="pix2pix", **generator, discriminator_features=(64, 64, 128),
                      discriminator_dense=1024)
  config.optimizers = dict(
      generator=optim.optimizer_config("adam", learning_rate=2e-4, b1=0.5),
      discriminator=optim.optimizer_config("adam", learning_rate=2e-5, b1=0.5))
  config.data = data_config("cifar10", validation="test")
  if arg.smoke:
    config.model.discriminator_features = (4, 4, 8)
    config.model.discriminator_dense = 16
    config.data.train_limit = 64
    config.data.eval_limit = 32
    config.batch_size = 16
    config.num_epochs = 2.0
    config.log_every_steps = 2
    config.pix2pix.grid = 4
  return config.lock()

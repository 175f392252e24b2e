r"""Imperial coursework UNets on CIFAR-10 (dljax/tasks/image_to_image.py, dljax/models/unet.py):
denoising (task 4) and colourisation (task 5).

UNet: Conv64, 128, 256, 512 (3x3 relu he_normal, Dropout .5 after 512), each followed by a 2x2
max-pool; bottleneck Conv1024 + Dropout .5; up: UpSampling 2 -> Conv(f) 2x2 -> concat skip ->
Conv(f) 3x3 for f = 512 ... 64; out Conv3x3 linear. Adam (1e-3), batch 128, 10 epochs,
validated on the test set.
  denoise  noisy -> clean, Gaussian noise sigma 0.1 (2020 report, CIFAR-100: not on these
           machines) added in the step, unclipped; `loss=mse|mae|mse+mae|ssim|ms_ssim|psnr`
           (2021 report, Tiny ImageNet 64 px, sigma 0.2: test MSE 0.0056 MAE loss, 0.0074
           1 - SSIM loss, 0.0055 1 / PSNR loss)
  colour   grey (luma) -> colour, MAE loss, 20 epochs (2021 report: test MAE 0.0442; pix2pix
           cGAN 0.0456, configs/pix2pix_cifar10.py)

    python -m dljax.main --config=configs/unet_cifar10.py --workdir=runs/denoise_mse
    python -m dljax.main --config=configs/unet_cifar10.py:loss=ssim --workdir=runs/denoise_ssim
    python -m dljax.main --config=configs/unet_cifar10.py:colour --workdir=runs/colour_unet

Arguments: `colour`, `loss=NAME`, `sigma=S` (0: 0.1), `width=F` (the first level's filters,
doubled each level, the bottleneck twice the last; 0: the reports' 64), `smoke`.

Measured: README "Autoencoders and image-to-image".
"""

from dljax import config_lib, optim
from dljax.data import data_config


def unet(width: int, levels: int = 4) -> dict:
  """`config.model` of the reports' UNet with `width` filters at its first level (64)."""
  features = tuple(width * 2**level for level in range(levels))
  return dict(name="unet", features=features, bottleneck=2 * features[-1], dropout=0.5,
              up_kernel=2, channels=3)


def get_config(arg: str | None = None):
  arg = config_lib.parse_arg(arg, smoke=False, colour=False, loss="", sigma=0.0, width=0)
  config = config_lib.trainer_config(
      task="image_to_image",
      batch_size=128,
      num_epochs=20.0 if arg.colour else 10.0,
      early_stopping=dict(metric="loss", mode="min", patience=0, restore_best=False),
  )
  config.image_to_image.inputs = "grey" if arg.colour else "noisy"
  config.image_to_image.noise_sigma = arg.sigma or 0.1
  config.image_to_image.loss = arg.loss or ("mae" if arg.colour else "mse")
  config.model = unet(arg.width or 64)
  config.optimizer = optim.optimizer_config("adam", learning_rate=1e-3)
  config.data = data_config("cifar10", validation="test")
  if arg.smoke:
    config.model = unet(arg.width or 4, levels=2)  # fewer layers: compiles in half the time
    config.data.train_limit = 64
    config.data.eval_limit = 32
    config.batch_size = 16
    config.num_epochs = 2.0
    config.log_every_steps = 2
    config.image_to_image.grid = 4
  return config.lock()

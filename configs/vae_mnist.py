r"""Imperial coursework VAEs on MNIST (dljax/tasks/vae.py, dljax/models/vae.py).

2020 (seed report 000): Flatten -> Dense256 relu -> mu, logvar Dense(latent); z = mu + sigma eps;
Dense256 relu -> Dense784 sigmoid; loss = summed pixel BCE + KL; RMSprop (Keras defaults), batch
50, 20 epochs, validated on the test set. The report's variants: latent 2 (test MAE 0.3318,
IS 4.59), latent 20 (MAE 0.1990, IS 5.79), latent 20 with an extra Dense256 in encoder and
decoder (MAE 0.1438, IS 5.96).
2021 (seed report 001): Conv64 5x5 s2 -> LReLU .2 -> Conv128 5x5 s2 -> LReLU -> mu, logvar
Dense(10); decoder = the DCGAN generator with a sigmoid output; Adam (1e-3), batch 50, 20 epochs;
with KL: test MSE 0.0117 (IS 7.23), without (beta=0): MSE 0.0109 (IS 5.52).

    python -m dljax.main --config=configs/vae_mnist.py --workdir=runs/vae_latent2
    python -m dljax.main --config=configs/vae_mnist.py:latent=20,extra_layer --workdir=runs/vae3
    python -m dljax.main --config=configs/vae_mnist.py:conv --workdir=runs/vae_conv
    python -m dljax.main --config=configs/vae_mnist.py:conv,beta=0 --workdir=runs/vae_conv_nokl

With a trained course classifier (configs/mnist_course_cnn.py), each evaluation also rates
10,000 samples: Inception Score and MNIST FID (`--config.vae.classifier_workdir=DIR`).
Latent space as PNGs: `python -m dljax.generate --workdir=runs/vae_latent2`.

Arguments: `latent=N` (0: the variant's, 2 dense and 10 conv), `extra_layer`, `conv`, `beta=B`
(the KL weight; 0 = KL off), `reconstruction=bce|mse`, `smoke` (seconds on a CPU).

Measured on the real MNIST (2-core CPU shared with other jobs, last state after 20 epochs; MSE
and MAE per pixel of [0, 1] images, loss = BCE + KL nats per image; README "Generative models"):

    latent 2                     test loss 155.67, MSE 0.0438, MAE 0.1028   50 s of training
    latent 20                    test loss 106.22, MSE 0.0139, MAE 0.0421   71 s
    latent 20, extra layer       test loss 104.70, MSE 0.0148, MAE 0.0435   89 s
    conv, latent 10 (10 epochs)  test loss 101.43, MSE 0.0140, MAE 0.0419   1,559 s

The reports' MAEs (0.33-0.14) are on another scale: an all-black image scores 0.1325 here.
Rated by configs/mnist_course_cnn.py (real test images: IS 9.27): latent 2, IS 2.19, MNIST FID
24.77 (the report: IS 4.59; this classifier reads the blurry means mostly as 8 and 6).
"""

from dljax import config_lib, optim
from dljax.data import data_config


def get_config(arg: str | None = None):
  arg = config_lib.parse_arg(arg, smoke=False, latent=0, extra_layer=False, conv=False, beta=1.0,
                             reconstruction="bce")
  config = config_lib.trainer_config(
      task="vae",
      batch_size=50,
      num_epochs=20.0,
      early_stopping=dict(metric="loss", mode="min", patience=0, restore_best=False),
  )
  config.vae.beta = arg.beta
  config.vae.reconstruction = arg.reconstruction
  if arg.conv:
    config.model = dict(name="vae_conv", latent=arg.latent or 10, features=(64, 128),
                        generator_features=64, channels=1)
    config.optimizer = optim.optimizer_config("adam", learning_rate=1e-3)
  else:
    config.model = dict(name="vae_dense", latent=arg.latent or 2,
                        hidden=(256, 256) if arg.extra_layer else (256,), image_shape=(28, 28, 1))
    config.optimizer = optim.optimizer_config("rmsprop", learning_rate=1e-3)
  config.data = data_config("mnist", validation="test")
  if arg.smoke:
    config.data.train_limit = 256
    config.data.eval_limit = 64
    config.batch_size = 32
    config.num_epochs = 2.0
    config.log_every_steps = 4
    if arg.conv:
      config.model.update(features=(16, 32), generator_features=16)  # 4-8x quicker
  return config.lock()

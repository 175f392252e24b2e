r"""Imperial coursework autoencoders on MNIST (dljax/tasks/autoencoder.py,
dljax/models/autoencoder.py): reconstruction MSE, and the representation rated by a majority-vote
KMeans(10) clustering and a linear probe, against PCA with as many components.

2020 (seed report 000), 28x28, Adam (1e-3), batch 128, 10 epochs, validated on the test set:
  linear   the tutorial's Dense(2) -> Dense(784), linear (report: test MSE 0.0544; tutorial
           0.0557, clustering accuracy 0.399)
  dense    784-128 relu-30 relu-50 (linear)-128 relu-784 sigmoid (report: test MSE 0.0094,
           clustering accuracy 0.592)
2021 (seed report 001), MNIST resized to 32x32 (anti-aliased), representation 10, 20 epochs:
  dense32  D256, D512, D2048, D1024, Rep10, D1024, D2048, D1024 pixels, relu (report: MSE
           0.0064 / 0.0078 train / validation, probe 93.73 / 93.97%)
  conv32   C128, MP, C256, MP, C512, MP, C1024, Rep10, D2048, D2048, D1024 pixels, 3x3 same, relu
           (report: MSE 0.0069 / 0.0081, probe 94.56 / 94.63%); PCA(10): MSE 0.0258 / 0.0256,
           probe 81.04 / 81.52%

    python -m dljax.main --config=configs/autoencoder_mnist.py:linear --workdir=runs/ae_linear
    python -m dljax.main --config=configs/autoencoder_mnist.py:dense --workdir=runs/ae_dense
    python -m dljax.main --config=configs/autoencoder_mnist.py:dense32 --workdir=runs/ae_dense32
    python -m dljax.main --config=configs/autoencoder_mnist.py:conv32 --workdir=runs/ae_conv32

Arguments: the variant (`linear`, `dense`, `dense32`, `conv32`; default `dense`),
`representation=N` (0: the variant's), `width=F` (the conv32 encoder's first width, doubled each
level; 0: the report's 128), `smoke` (seconds on a CPU). Layer widths are
`--config.model.encoder='(128, 30)'`, `--config.model.decoder='(128,)'`.

Measured on the real MNIST (2-core CPU shared with other jobs, load 14-34; README
"Autoencoders and image-to-image"), test set, last state:

    linear   MSE 0.0557, clustering 0.404, probe 43.8 / 44.3%; PCA(2) MSE 0.0557   115 s training
    dense    MSE 0.0098, clustering 0.587, probe 88.8 / 89.3%; PCA(50) MSE 0.0115  40 s training
"""

from dljax import config_lib, optim
from dljax.data import data_config
from dljax.errors import require

VARIANTS = ("linear", "dense", "dense32", "conv32")


def get_config(arg: str | None = None):
  arg = config_lib.parse_arg(arg, smoke=False, linear=False, dense=False, dense32=False,
                             conv32=False, representation=0, width=0)
  chosen = [name for name in VARIANTS if arg[name]] or ["dense"]
  require(len(chosen) == 1, "argument", ",".join(chosen), f"pick one of {', '.join(VARIANTS)}")
  variant = chosen[0]
  config = config_lib.trainer_config(
      task="autoencoder",
      batch_size=128,
      num_epochs=10.0 if variant in ("linear", "dense") else 20.0,
      early_stopping=dict(metric="loss", mode="min", patience=0, restore_best=False),
  )
  if variant == "linear":
    config.model = dict(name="autoencoder_dense", encoder=(),
                        representation=arg.representation or 2, decoder=(),
                        activation="linear", representation_activation="linear",
                        output_activation="linear",
                        image_shape=(28, 28, 1))
  elif variant == "dense":
    config.model = dict(name="autoencoder_dense", encoder=(128, 30),
                        representation=arg.representation or 50, decoder=(128,),
                        activation="relu", representation_activation="linear",
                        output_activation="sigmoid", image_shape=(28, 28, 1))
  else:
    config.autoencoder.image_size = 32
    common = dict(representation=arg.representation or 10, activation="relu",
                  representation_activation="linear", output_activation="relu",
                  image_shape=(32, 32, 1))
    if variant == "dense32":
      config.model = dict(name="autoencoder_dense", encoder=(256, 512, 2048, 1024),
                          decoder=(1024, 2048), **common)
    else:
      width = arg.width or 128
      config.model = dict(name="autoencoder_conv", features=tuple(width * 2**k for k in range(4)),
                          decoder=(2048, 2048), **common)
  config.optimizer = optim.optimizer_config("adam", learning_rate=1e-3)
  config.data = data_config("mnist", validation="test")
  if arg.smoke:
    config.data.train_limit = 256
    config.data.eval_limit = 64
    config.batch_size = 32
    config.num_epochs = 2.0
    config.log_every_steps = 4
    config.autoencoder.grid = 4
    if variant == "conv32":
      config.model.features = (4, 8, 8, 8)
      config.model.decoder = (32,)
    if variant == "dense32":
      config.model.encoder, config.model.decoder = (32,), (32,)
  return config.lock()

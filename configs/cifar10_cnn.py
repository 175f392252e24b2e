r"""Imperial Task 1 CIFAR-10 baseline: Conv32, MP, Conv64, MP, Conv128, MP, Conv256, GAP, Dense10.

Convs 3x3 'same', relu, glorot_uniform; Adam lr 3e-4, categorical cross-entropy, batch 32
(Keras' default), 40 epochs; inputs standardised per channel by the train split's mean/std
(Keras `Normalization()` adapted on x_train); validated on the test set, as the course did; the
result is the best validation accuracy. Source: MatchLab-Imperial deep-learning-course,
03_Network_Training.ipynb "Coursework Task 1"; results of seed report 001 (single runs), and
dljax's (best validation accuracy % at its epoch; `sweep_imperial` below, seed 0):

    argument                  variant                               report  dljax H200     CPU
    (none)                    vanilla (overfits after ~14 epochs)    79.48  79.39 @37   79.14 @29
    aug=light                 zoom .1, rotation .1, translation .1   76.25  80.43 @37
    aug=aggressive            zoom .5, rotation .5, translation .3,  59.89  64.45 @40
                              horizontal flip
    dropout=0.3               Dropout .3 after every conv block      82.67  81.96 @36   81.91 @39
    batchnorm                 BatchNorm in the first two conv layers 80.73  81.68 @29   81.22 @38
    batchnorm,dropout=0.3     both                                   83.55  82.82 @34
    init=zeros                every kernel initialised to zero       10.0   10.00 (chance)
    optimizer=sgd,lr=3e-3     SGD without momentum: 3e-3 fastest,    (no    71.95 @38
    optimizer=sgd,lr=1e-3       no divergence                        number) 60.43 @40
    optimizer=sgd,lr=3e-4                                                   45.29 @40

The H200 column is one sweep on one NVIDIA H200 (jax 0.11.2): seven trials trained at once on
the GPU (126-149 s of training each, 3.3 min wall in all), then vanilla, dropout and batchnorm
(70-77 s each, three at once); a variant alone on the 2-core CPU takes 19-22 min.

    python -m dljax.main --config=configs/cifar10_cnn.py --workdir=/tmp/cifar10_cnn
    python -m dljax.main --config=configs/cifar10_cnn.py:batchnorm,dropout=0.3 \
        --workdir=/tmp/cifar10_cnn_bn_dropout
    python -m dljax.main --config=configs/cifar10_cnn.py:smoke,aug=light --workdir=/tmp/smoke
"""

from dljax import config_lib, optim
from dljax.data import data_config
from dljax.registry import lookup

# Keras preprocessing layers RandomZoom, RandomRotation, RandomTranslation, RandomFlip (seed 001).
AUGMENTATIONS = {
    "none": dict(zoom=0.0, rotation=0.0, translation=0.0, flip=""),
    "light": dict(zoom=0.1, rotation=0.1, translation=0.1, flip=""),
    "aggressive": dict(zoom=0.5, rotation=0.5, translation=0.3, flip="horizontal"),
}


def get_config(arg: str | None = None):
  arg = config_lib.parse_arg(arg, smoke=False, aug="none", dropout=0.0, batchnorm=False,
                             init="glorot_uniform", optimizer="adam", lr=3e-4)
  config = config_lib.trainer_config(
      batch_size=32,
      num_epochs=40.0,
      early_stopping=dict(metric="accuracy", mode="max", patience=0, restore_best=False),
  )
  config.model = dict(name="cnn", conv_features=(32, 64, 128, 256), kernel_sizes=(3, 3, 3, 3),
                      strides=1, padding="SAME", batch_norm_after=(0, 1) if arg.batchnorm else (),
                      pool_after=(0, 1, 2), dropout_after=(0, 1, 2, 3), conv_dropout=arg.dropout,
                      global_pool=True, hidden=(), dropout=0.0, activation="relu",
                      kernel_init=arg.init, bias_init="zeros", num_classes=10)
  augment = lookup(AUGMENTATIONS, arg.aug, "config argument aug", "augmentation")
  config.data = data_config("cifar10", validation="test", normalize="per_channel",
                            augment=augment)
  config.optimizer = optim.optimizer_config(arg.optimizer, learning_rate=arg.lr)
  if arg.smoke:
    config.data.train_limit = 256
    config.data.eval_limit = 128
    config.num_epochs = 1.0
    config.log_every_steps = 4
  return config.lock()


def sweep_imperial():
  r"""Imperial task 1, the whole table above plus SGD's three learning rates, as one sweep.

      python -m launch.sweep --config=configs/cifar10_cnn.py --sweep=imperial \
          --workdir=runs/cifar10_imperial

  Small trials can share a GPU: `--parallel=7 --per_device=7` runs seven at once on one. (The
  table's H200 run gave each of its seven processes the same device and 10% of its memory
  through CUDA_VISIBLE_DEVICES=0,0,0,0,0,0,0 and XLA_PYTHON_CLIENT_MEM_FRACTION=0.10, what
  --per_device now sets up, with 0.9/7 of the memory each.)
  On a CPU, leave out --vmap (which would train vanilla with dropout 0.3, and the three SGD
  learning rates, together): vmapped over trials, each convolution becomes a grouped one, and
  XLA's CPU backend ran the vanilla and dropout trials together at 7.2 steps/s, 3.6 a trial,
  against 51 steps/s for one alone (2 cores). On an accelerator it is untested.
  """
  for arg in ("aug=none", "aug=light", "aug=aggressive", "dropout=0.3", "batchnorm",
              "batchnorm,dropout=0.3", "init=zeros", "optimizer=sgd,lr=3e-3",
              "optimizer=sgd,lr=1e-3", "optimizer=sgd,lr=3e-4"):
    yield {"config_arg": arg}

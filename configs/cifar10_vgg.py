r"""A VGG16 (or VGG19) pretrained on CIFAR-10 with dljax: the source network of the CPU transfer
study (`configs/tiny_imagenet.py`), standing in for Keras' ImageNet weights, which these
machines cannot download.

VGG16 as keras.applications lays it out (`dljax/models/vgg.py`), narrowed by `width` (1/16: 4-32
filters, what the shared 2-core CPU could train; 1.0 is Keras' network), with the tutorial top
(Flatten -> Dense top_width -> Dense top_width -> Dense 10; at 32 px the flatten is 1x1 x
filters); Adam 1e-3, batch 128, 6 epochs, inputs standardised per channel, validated on the test
set, the best validation state kept. Measured (2-core CPU at load ~30, stopped after 600 steps,
847 s of training): 29.17% test accuracy after epoch 1, the base of README "Transfer learning".

    python -m dljax.main --config=configs/cifar10_vgg.py --workdir=/tmp/cifar10_vgg
    python -m dljax.main --config=configs/cifar10_vgg.py:smoke --workdir=/tmp/smoke
"""

from dljax import config_lib, optim
from dljax.data import data_config


def get_config(arg: str | None = None):
  arg = config_lib.parse_arg(arg, smoke=False, depth=16, width=0.0625, top_width=128, epochs=6.0,
                             lr=1e-3)
  config = config_lib.trainer_config(
      batch_size=128,
      num_epochs=arg.epochs,
      early_stopping=dict(metric="accuracy", mode="max", patience=0, restore_best=True),
  )
  config.model = dict(name="vgg", depth=arg.depth, width=arg.width, include_top=True,
                      top_width=arg.top_width, pooling="flatten", dropout=0.0, num_classes=10,
                      resize_to=0, caffe_inputs=False)
  config.data = data_config("cifar10", validation="test", normalize="per_channel")
  config.optimizer = optim.optimizer_config("adam", learning_rate=arg.lr)
  if arg.smoke:
    config.data.train_limit = 256
    config.data.eval_limit = 128
    config.num_epochs = 1.0
    config.log_every_steps = 1
  return config.lock()

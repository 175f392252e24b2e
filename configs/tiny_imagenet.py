r"""Imperial task 2: transfer learning on Tiny ImageNet: the same network from scratch, from
pretrained weights with its base frozen (a new dense head only), and fine-tuned whole.

`model`: vgg16, vgg19 (keras.applications' layers; the tutorial head Flatten -> Dense top_width
-> Dense top_width -> Dense 200) or efficientnetb0 (its base, then global average pooling and a
new Dense 200). `mode`: scratch, frozen (the base loaded and frozen, its BatchNorm layers in
inference mode, as Keras' trainable=False), finetune (the base loaded, everything trained).
`weights`: where the base comes from: a dljax workdir (e.g. `configs/cifar10_vgg.py`'s run) or a
Keras ImageNet file (`python -m dljax.weights fetch vgg16_notop` prints its path), which also
switches the inputs to what Keras' weights expect (VGG: `caffe_inputs`; EfficientNet: the
ImageNet rescaling) instead of per-channel standardisation. `size`: resize the 64 px images
inside the step (224: the coursework's upscaled variant); `width`, `top_width`: a narrower
network (the CPU study: width=0.125, top_width=256; the coursework: 1.0 and 4096).
The coursework (2021): Adam 1e-4, batch 128, 20 epochs, EarlyStopping(patience 4,
restore_best_weights); train = images 0..449 of each class, validation 450..499, test = the
official val (`python -m dljax.data prepare tiny_imagenet --from PATH`).

    W=$(python -m dljax.weights fetch vgg16_notop)  # online; or with --from a copy of the file
    python -m dljax.main --config=configs/tiny_imagenet.py:mode=frozen,weights=$W \
        --workdir=runs/tiny_vgg16_frozen
    CPU=configs/tiny_imagenet.py:width=0.125,top_width=256  # the CPU study's network
    python -m dljax.main --config=$CPU,mode=finetune,weights=/tmp/cifar10_vgg \
        --workdir=/tmp/tiny_finetune
"""

from dljax import config_lib, optim
from dljax.data import data_config
from dljax.errors import ConfigError
from dljax.registry import lookup

# name: (config.model, the base's parameters as a regex on '/'-joined paths, the head's layers)
MODELS = {
    "vgg16": (dict(name="vgg", depth=16, include_top=True, pooling="flatten", dropout=0.0,
                   caffe_inputs=False), r"^block", r"(fc1|fc2|predictions)/"),
    "vgg19": (dict(name="vgg", depth=19, include_top=True, pooling="flatten", dropout=0.0,
                   caffe_inputs=False), r"^block", r"(fc1|fc2|predictions)/"),
    "efficientnetb0": (dict(name="efficientnet", include_top=False, pooling="avg",
                            imagenet_rescaling=False), r"^(?!predictions)", r"predictions/"),
}
MODES = ("scratch", "frozen", "finetune")


def get_config(arg: str | None = None):
  arg = config_lib.parse_arg(arg, smoke=False, model="vgg16", mode="scratch", weights="",
                             size=0, width=1.0, top_width=4096, epochs=20.0, lr=1e-4,
                             patience=4)
  model, base, head = lookup(MODELS, arg.model, "config argument model", "model")
  lookup({mode: mode for mode in MODES}, arg.mode, "config argument mode", "mode")
  if arg.mode != "scratch" and not arg.weights:
    raise ConfigError(f"config argument mode={arg.mode}: needs weights=PATH, the pretrained base "
                      "(a dljax workdir or a Keras .h5 file)")
  config = config_lib.trainer_config(
      batch_size=128,
      num_epochs=arg.epochs,
      early_stopping=dict(metric="accuracy", mode="max", patience=arg.patience,
                          restore_best=True),
  )
  keras_weights = arg.mode != "scratch" and arg.weights.endswith(".h5")
  config.model = dict(model, num_classes=200, resize_to=arg.size)
  if model["name"] == "vgg":
    config.model.update(width=arg.width, top_width=arg.top_width, caffe_inputs=keras_weights)
  else:
    config.model.update(width_coefficient=arg.width, imagenet_rescaling=keras_weights)
  config.data = data_config("tiny_imagenet", validation="dataset",
                            normalize="none" if keras_weights else "per_channel")
  config.optimizer = optim.optimizer_config(
      "adam", learning_rate=arg.lr, freeze=base if arg.mode == "frozen" else "")
  if arg.mode != "scratch":
    config.init_from.update(path=arg.weights, skip=head)
  if arg.smoke:
    config.data.train_limit = 256
    config.data.eval_limit = 128
    config.num_epochs = 1.0
    config.log_every_steps = 1
  return config.lock()

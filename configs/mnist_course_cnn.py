r"""The Imperial course's MNIST classifier for the Inception Score (dljax/tasks/sample_quality.py).

Conv32 3x3 -> BN -> ReLU -> MP2 -> Conv64 3x3 -> BN -> ReLU -> MP2 -> Conv128 3x3 -> BN -> ReLU
-> GlobalAvgPool -> Dense10 softmax (3x3 'same' convs); the course's 2025 repository gives this
architecture for its `inception_score_mnist.h5`, whose weights are not on these machines, so it
is trained here: Adam (1e-3, a tenth after 1,500 steps), batch 128, 4 epochs, validated on the
test set. The VAE and GAN configs name its workdir (`config.vae.classifier_workdir`,
`config.gan.classifier_workdir`) to rate their samples: p(y|x) for the Inception Score, the 128
pooled features for the MNIST FID.

    python -m dljax.main --config=configs/mnist_course_cnn.py --workdir=runs/mnist_course_cnn

Measured on the real MNIST (2-core CPU shared with other jobs, load 20-35, 1,834 s of training):
98.68% test accuracy (72.9 / 95.4 / 93.3% after epochs 1-3: BatchNorm's statistics lag the
weights at Adam 1e-3, hence the lower rate at the end). As a rater: Inception Score of the
10,000 test images 9.27; FID of the first 10,000 train images against them 0.023.
"""

from dljax import config_lib, optim
from dljax.data import data_config


def get_config(arg: str | None = None):
  arg = config_lib.parse_arg(arg, smoke=False)
  config = config_lib.trainer_config(
      batch_size=128,
      num_epochs=4.0,
      early_stopping=dict(metric="accuracy", mode="max", patience=0, restore_best=False),
  )
  config.model = dict(name="cnn", conv_features=(32, 64, 128), kernel_sizes=(3, 3, 3), strides=1,
                      padding="SAME", batch_norm_after=(0, 1, 2), pool_after=(0, 1),
                      dropout_after=(), conv_dropout=0.0, global_pool=True, hidden=(),
                      dropout=0.0, activation="relu", kernel_init="glorot_uniform",
                      bias_init="zeros", num_classes=10)
  config.data = data_config("mnist", validation="test")
  # BatchNorm's running statistics lag the weights while Adam moves them at 1e-3 (test accuracy
  # swung 73-95% over the first epochs); a tenth of the rate for the last 0.8 epoch settles both.
  config.optimizer = optim.optimizer_config("adam", learning_rate=1e-3, schedule="step",
                                            step_boundaries=(1500,), step_scales=(0.1,))
  if arg.smoke:
    config.data.train_limit = 256
    config.data.eval_limit = 128
    config.batch_size = 32
    config.num_epochs = 2.0
    config.log_every_steps = 4
  return config.lock()

"""The model registry: `config.model.name` picks a Flax Linen module; its other keys are fields.

Adding a model is one file in this package and one line below.
"""

import dataclasses

import ml_collections
from flax import linen as nn

from dljax.errors import ConfigError
from dljax.models import (
  autoencoder,
  cnn,
  dcgan,
  efficientnet,
  lstm,
  mlp,
  text_classifiers,
  unet,
  vae,
  vgg,
)
from dljax.registry import lookup

MODELS: dict[str, type[nn.Module]] = {
    "mlp": mlp.MLP,
    "cnn": cnn.CNN,
    "dcgan": dcgan.DCGAN,
    "vae_dense": vae.DenseVAE,
    "vae_conv": vae.ConvVAE,
    "vgg": vgg.VGG,  # VGG16 / VGG19 (depth), as keras.applications
    "efficientnet": efficientnet.EfficientNet,  # B0 by default, as keras.applications
    "lstm_lm": lstm.LanguageModel,
    "lstm_regressor": lstm.SequenceRegressor,
    "bag_of_embeddings": text_classifiers.BagOfEmbeddings,
    "lstm_classifier": text_classifiers.LSTMClassifier,
    "autoencoder_dense": autoencoder.DenseAE,
    "autoencoder_conv": autoencoder.ConvAE,
    "unet": unet.UNet,
    "pix2pix": unet.Pix2Pix,
}


def build(config: ml_collections.ConfigDict) -> nn.Module:
  """Instantiates `MODELS[config.name]` with every other key of `config` as a field."""
  model_class = lookup(MODELS, config.name, "config.model.name", "model")
  fields = {f.name for f in dataclasses.fields(model_class)} - {"parent", "name"}
  kwargs = {k: v for k, v in config.items() if k != "name"}
  for key in kwargs:
    if key not in fields:
      raise ConfigError(f"config.model.{key}: not a field of model {config.name!r}; "
                        f"allowed: {', '.join(sorted(fields))}")
  return model_class(**kwargs)

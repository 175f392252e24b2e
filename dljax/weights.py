"""Keras weight files (`.h5`) as dljax variables, and the official Keras ImageNet files.

Keras' application weight files (vgg16_weights_tf_dim_ordering_tf_kernels.h5,
efficientnetb0_notop.h5, ...) are in Keras' legacy HDF5 layout, which `keras.Model.save` to a
`.h5` path and Keras' `legacy_h5_format.save_weights_to_hdf5_group` still write: the root (or a
`model_weights` group) lists `layer_names`; each layer's group lists `weight_names`, its arrays
in the layer's own order. Keras itself loads these by layer name and, within a layer, by that
order (the names inside changed across Keras versions: `block1_conv1_W_1:0`, `kernel:0`,
`kernel`). So does `to_variables`, for a dljax model whose module names are Keras' layer names
(`models/vgg.py`, `models/efficientnet.py`):

    Conv2D, Dense         [kernel, bias]                          -> params/L/kernel, bias
    DepthwiseConv2D       [kernel (k, k, C, 1)]                   -> params/L/kernel (k, k, 1, C)
    BatchNormalization    [gamma, beta, moving_mean, moving_var]  -> params/L/scale, bias,
                                                                     batch_stats/L/mean, var
    Normalization         [mean, variance, count]                 -> batch_stats/L/mean, var

`config.init_from.path=FILE.h5` loads one into a run (`dljax.pretrained`), with `load`, `skip`
and the shape checks of any source. `python -m dljax.weights fetch NAME` downloads an official
file (Keras' URL, checked against the md5 Keras checks) into Keras' cache, or takes a local copy
with `--from FILE`, and proves it is NAME's by loading it into NAME's dljax model.
"""

import argparse
import dataclasses
import hashlib
import os
import shutil
import sys
import tempfile
import urllib.request

import h5py
import jax
import jax.numpy as jnp
import ml_collections
import numpy as np

from dljax import checkpoint, models
from dljax.errors import ConfigError, DataError, exit_status

# A layer's dljax variables in the order Keras keeps its weights.
KERAS_ORDER = ("params/{}/kernel", "params/{}/scale", "params/{}/bias", "batch_stats/{}/mean",
               "batch_stats/{}/var")
HEAD = "predictions"  # the classifier's Keras name


def read_h5(path: str) -> dict[str, list[np.ndarray]]:
  """{Keras layer name: its weights, in Keras' order} of a legacy-layout Keras `.h5` file;
  layers without weights are left out."""
  try:
    with h5py.File(path, "r") as f:
      group = f.get("model_weights", f)
      if "layer_names" not in group.attrs:
        raise DataError(f"{path}: not a Keras weights file in the applications' (legacy h5) "
                        "layout: no layer_names")
      layers = {}
      for layer in (_text(name) for name in group.attrs["layer_names"]):
        names = [_text(name) for name in group[layer].attrs.get("weight_names", [])]
        if names:
          layers[layer] = [np.asarray(group[layer][name]) for name in names]
      return layers
  except OSError as error:
    raise DataError(f"{path}: not a readable HDF5 file ({error})") from None


def to_variables(layers: dict[str, list[np.ndarray]], shapes: dict[str, tuple[int, ...]],
                 path: str) -> dict[str, np.ndarray]:
  """{dljax variable path: array} of Keras `layers` for a model whose variables have `shapes`
  ({path: shape}, e.g. of `checkpoint.flat(state)`); layers the model lacks are left out, and
  which of the model's variables the file lacks or holds in another shape is for the caller
  (`checkpoint.check_fits`) to say.

  Raises:
    ConfigError: no layer of the file is in the model (a file of another model), or a layer holds
      another number of weights than the model's layer of that name.
  """
  model_layers = {name.split("/")[1] for name in shapes}
  if not (model_layers - {HEAD}) & set(layers):  # every classifier is called predictions
    raise ConfigError(f"config.init_from.path={path!r}: holds the weights of another model "
                      f"(layers {_some(layers)}); this model's layers are {_some(model_layers)}")
  variables = {}
  for layer, arrays in layers.items():
    if layer not in model_layers:
      continue
    arrays = [array for array in arrays if array.ndim]  # Normalization's count
    targets = [p for p in (form.format(layer) for form in KERAS_ORDER) if p in shapes]
    if len(arrays) != len(targets):
      raise ConfigError(f"config.init_from.path={path!r}: layer {layer} holds "
                        f"{len(arrays)} weights, this model's {layer} has {len(targets)} "
                        f"({', '.join(targets)})")
    for target, array in zip(targets, arrays, strict=True):
      variables[target] = _depthwise(array, shapes[target])
  return variables


def check_head(variables: dict[str, np.ndarray], selected: dict[str, tuple[int, ...]],
               path: str) -> None:
  """A one-line ConfigError when the file's classifier is selected and has another number of
  classes than the model's (an ImageNet top of 1000 classes on a 200-class problem)."""
  kernel = f"params/{HEAD}/kernel"
  if kernel in selected and kernel in variables:
    theirs, ours = variables[kernel].shape[-1], selected[kernel][-1]
    if theirs != ours:
      raise ConfigError(f"config.init_from.path={path!r}: its {HEAD} layer has {theirs} classes, "
                        f"config.model.num_classes={ours}; leave it out with "
                        f"--config.init_from.skip={HEAD}")


def _depthwise(array: np.ndarray, shape: tuple[int, ...]) -> np.ndarray:
  """Keras' depthwise kernel (k, k, C, 1) as Flax's grouped-conv kernel (k, k, 1, C)."""
  if array.ndim == 4 and array.shape[3] == 1 and tuple(shape) == (*array.shape[:2], 1,
                                                                   array.shape[2]):
    return array.transpose(0, 1, 3, 2)
  return array


def _text(value) -> str:
  return value.decode("utf8") if isinstance(value, bytes) else str(value)


def _some(names) -> str:
  names = sorted(names)
  return ", ".join(names[:4]) + (f", ... ({len(names)} in all)" if len(names) > 4 else "")


@dataclasses.dataclass(frozen=True)
class KerasFile:
  url: str
  md5: str  # the file_hash keras.applications passes to get_file
  model: dict  # the dljax model (config.model) the file is for


_KERAS = "https://storage.googleapis.com/tensorflow/keras-applications/"
_EFFICIENTNET = "https://storage.googleapis.com/keras-applications/"
# The files keras.applications (Keras 3.15) downloads, with the hashes it checks.
KERAS_FILES = {
    "vgg16": KerasFile(_KERAS + "vgg16/vgg16_weights_tf_dim_ordering_tf_kernels.h5",
                       "64373286793e3c8b2b4e3219cbf3544b", dict(name="vgg", depth=16)),
    "vgg16_notop": KerasFile(_KERAS + "vgg16/vgg16_weights_tf_dim_ordering_tf_kernels_notop.h5",
                             "6d6bbae143d832006294945121d1f1fc",
                             dict(name="vgg", depth=16, include_top=False)),
    "vgg19": KerasFile(_KERAS + "vgg19/vgg19_weights_tf_dim_ordering_tf_kernels.h5",
                       "cbe5617147190e668d6c5d5026f83318", dict(name="vgg", depth=19)),
    "vgg19_notop": KerasFile(_KERAS + "vgg19/vgg19_weights_tf_dim_ordering_tf_kernels_notop.h5",
                             "253f8cb515780f3b799900260a226db6",
                             dict(name="vgg", depth=19, include_top=False)),
    "efficientnetb0": KerasFile(_EFFICIENTNET + "efficientnetb0.h5",
                                "902e53a9f72be733fc0bcb005b3ebbac",
                                dict(name="efficientnet")),
    "efficientnetb0_notop": KerasFile(_EFFICIENTNET + "efficientnetb0_notop.h5",
                                      "50bc09e76180e00e4465e1a485ddc09d",
                                      dict(name="efficientnet", include_top=False)),
}


def cache_dir() -> str:
  """Keras' own cache ($KERAS_HOME/models, default ~/.keras/models): files Keras downloaded are
  found, and files fetched here serve Keras too."""
  return os.path.join(os.environ.get("KERAS_HOME", os.path.expanduser("~/.keras")), "models")


def md5(path: str) -> str:
  digest = hashlib.md5()
  with open(path, "rb") as f:
    for chunk in iter(lambda: f.read(1 << 20), b""):
      digest.update(chunk)
  return digest.hexdigest()


def abstract_variables(model_config: dict,
                       image_size: int = 224) -> dict[str, jax.ShapeDtypeStruct]:
  """{variable path: shape and dtype} of a dljax model at `image_size` px, nothing computed."""
  model = models.build(ml_collections.ConfigDict(model_config))
  variables = jax.eval_shape(lambda: model.init(jax.random.key(0),
                                                jnp.zeros((1, image_size, image_size, 3)),
                                                train=False))
  return checkpoint.flat(variables)


def check_file(name: str, path: str) -> None:
  """Raises a one-line DataError unless `path` is Keras' file `name`: its md5, then its layers
  and their shapes against NAME's dljax model (without the new head a no-top model adds)."""
  keras_file = KERAS_FILES[name]
  found = md5(path)
  if found != keras_file.md5:
    raise DataError(f"{path}: md5 {found}, Keras' {name} file has {keras_file.md5}: "
                    "a damaged download or another file")
  expected = abstract_variables(keras_file.model)
  if not keras_file.model.get("include_top", True):
    expected = {p: leaf for p, leaf in expected.items() if p.split("/")[1] != HEAD}
  layers = read_h5(path)
  extra = set(layers) - {p.split("/")[1] for p in expected}
  try:
    variables = to_variables(layers, {p: leaf.shape for p, leaf in expected.items()}, path)
    if extra:
      raise ConfigError(f"holds layers {_some(extra)}, which {name} has not")
    checkpoint.check_fits(expected, {p: v.shape for p, v in variables.items()}, path)
  except (ConfigError, checkpoint.Mismatch) as error:
    raise DataError(f"{path}: not Keras' {name} weights: {error}") from None


def fetch(name: str, source: str | None = None, directory: str | None = None) -> str:
  """Keras' weight file `name` in `directory` (default `cache_dir()`), checked; returns its path.

  Taken from `source` (a local copy) if given, else from the cache, else downloaded from Keras'
  URL. A file that fails `check_file` is not kept.
  """
  if name not in KERAS_FILES:
    raise ConfigError(f"weights {name!r}: unknown; allowed: {', '.join(KERAS_FILES)}")
  directory = directory or cache_dir()
  target = os.path.join(directory, os.path.basename(KERAS_FILES[name].url))
  if source is None and os.path.isfile(target):
    check_file(name, target)
    return target
  os.makedirs(directory, exist_ok=True)
  with tempfile.TemporaryDirectory(dir=directory) as scratch:
    copy = os.path.join(scratch, "download")
    if source is not None:
      if not os.path.isfile(source):
        raise DataError(f"{source}: no such file")
      shutil.copyfile(source, copy)
    else:
      try:
        urllib.request.urlretrieve(KERAS_FILES[name].url, copy)
      except OSError as error:
        raise DataError(f"cannot download {KERAS_FILES[name].url} ({error}); copy the file here "
                        f"and use --from FILE") from None
    check_file(name, copy)
    os.replace(copy, target)
  return target


def main(argv: list[str] | None = None) -> int:
  parser = argparse.ArgumentParser(prog="python -m dljax.weights", description=__doc__,
                                   formatter_class=argparse.RawDescriptionHelpFormatter)
  commands = parser.add_subparsers(dest="command", required=True)
  fetch_parser = commands.add_parser("fetch", help="an official Keras ImageNet file, checked, "
                                                   "into Keras' cache; prints its path")
  fetch_parser.add_argument("name", choices=list(KERAS_FILES))
  fetch_parser.add_argument("--from", dest="source", metavar="FILE",
                            help="a local copy instead of the download")
  fetch_parser.add_argument("--dir", help=f"the cache (default: {cache_dir()})")
  args = parser.parse_args(argv)
  return exit_status(parser.prog, lambda: print(fetch(args.name, args.source, args.dir)))


if __name__ == "__main__":
  sys.exit(main())

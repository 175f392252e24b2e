"""The image-folder data set: a tiny folder the test writes, prepared offline and read back."""

import os

import numpy as np
import pytest
from PIL import Image

from dljax import data
from dljax.data import __main__ as data_main
from dljax.data import image_folder
from dljax.errors import ConfigError, DataError


def _write(path: str, pixels: np.ndarray) -> None:
  os.makedirs(os.path.dirname(path), exist_ok=True)
  Image.fromarray(pixels).save(path)


def _striped(height: int, width: int) -> np.ndarray:
  """Black, with a white square of the shorter side in the middle: what centre-cropping keeps."""
  pixels = np.zeros((height, width, 3), np.uint8)
  side = min(height, width)
  top, left = (height - side) // 2, (width - side) // 2
  pixels[top:top + side, left:left + side] = 255
  return pixels


def test_a_folder_of_class_folders_is_prepared_resized_centre_cropped_and_read(tmp_path):
  source = tmp_path / "shapes"
  for index in range(6):  # wide and tall images of two classes, PNG and JPEG, RGB and grey
    _write(str(source / "wide" / f"{index}.png"), _striped(8, 24))
    _write(str(source / "tall" / f"{index}.jpg"), _striped(40, 16)[..., 0])
  (source / "tall" / "notes.txt").write_text("not an image")
  data_dir = str(tmp_path / "tfds")
  args = ["prepare", "image_folder", "--from", str(source), "--data_dir", data_dir]
  assert data_main.main([*args, "--size", "8"]) == 0
  config = data.data_config("image_folder", dir=data_dir,
                            image_folder=dict(name="shapes", size=8, channels=3))
  splits = data.load(config, seed=0)
  assert (len(splits.train["image"]), len(splits.test["image"])) == (11, 1)
  assert splits.label_names == ("tall", "wide")
  images = np.concatenate([splits.train["image"], splits.test["image"]])
  labels = np.concatenate([splits.train["label"], splits.test["label"]])
  assert images.shape == (12, 8, 8, 3) and sorted(labels) == [0] * 6 + [1] * 6
  wide = images[labels == 1]
  np.testing.assert_array_equal(wide, 255)  # the crop is the white middle, unscaled
  # The tall JPEGs are halved, then cropped to their white middle: white up to JPEG's error.
  assert images[labels == 0].min() > 200
  assert data_main.main(args) == 0  # prepared already: left alone


def test_a_flat_folder_is_one_class_and_mistakes_are_one_line_errors(tmp_path, capsys):
  source = tmp_path / "faces"
  for index in range(3):
    _write(str(source / f"{index}.png"), _striped(10, 10))
  assert image_folder.image_files(str(source))[1] == ("faces",)
  _write(str(source / "extra" / "0.png"), _striped(10, 10))
  with pytest.raises(DataError, match=r"holds both images .* and class sub-folders"):
    image_folder.image_files(str(source))
  assert data_main.main(["prepare", "mnist", "--from", str(source), "--size", "8"]) == 2
  assert capsys.readouterr().err.strip().endswith("--size: only for image_folder")
  with pytest.raises(ConfigError, match=r"^config.data.image_folder.channels=2: allowed: 1, 3$"):
    image_folder.config_name(dict(name="faces", size=64, channels=2))
  config = data.data_config("image_folder", dir=str(tmp_path / "tfds"),
                            image_folder=dict(name="faces", size=64, channels=1))
  with pytest.raises(DataError, match=r"not found .* prepare it: python -m dljax.data prepare "
                                       r"image_folder --from DIR --size 64 --channels 1"):
    data.load(config, seed=0)

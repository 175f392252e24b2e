"""Tiny ImageNet prepared offline from the tiny-imagenet-200 layout (a folder or its zip): the
coursework's splits from the files present, grayscale JPEGs made RGB, a corrupt JPEG named in one
line; and the transfer configs train from a pretrained dljax run (smoke)."""

import io
import os
import shutil

import numpy as np
import pytest
from PIL import Image

from dljax.data import __main__ as data_main
from dljax.data import data_config, load, tiny_imagenet
from tests.conftest import run_main
from tests.test_contract import saved_state

WNIDS = ("n02124075", "n04067472", "n04540053")
PER_CLASS = 10  # train images a class: 9 train, 1 validation
VAL_LABELS = (2, 0, 1, 1)  # the official val images' classes, by wnid index


def jpeg(value: int, mode: str = "RGB") -> bytes:
  """A 64x64 JPEG whose pixels are all `value` (kept through JPEG's loss)."""
  buffer = io.BytesIO()
  Image.new(mode, (64, 64), value if mode == "L" else (value, value, 255 - value)).save(
      buffer, format="jpeg", quality=95)
  return buffer.getvalue()


def write_layout(top: str) -> None:
  """A tiny tiny-imagenet-200: 3 classes of PER_CLASS train images (the pixel value encodes
  class and number; class 1's image 3 grayscale) and 4 official val images."""
  os.makedirs(os.path.join(top, "val", "images"))
  with open(os.path.join(top, "wnids.txt"), "w") as f:
    f.write("".join(f"{wnid}\n" for wnid in WNIDS))
  with open(os.path.join(top, "words.txt"), "w") as f:
    f.write("n00000001\tentity\nn02124075\tEgyptian cat\nn04067472\treel\n")  # one missing
  for label, wnid in enumerate(WNIDS):
    images = os.path.join(top, "train", wnid, "images")
    os.makedirs(images)
    for k in range(PER_CLASS):
      mode = "L" if (label, k) == (1, 3) else "RGB"
      with open(os.path.join(images, f"{wnid}_{k}.JPEG"), "wb") as f:
        f.write(jpeg(label * 80 + k * 5, mode))
  with open(os.path.join(top, "val", "val_annotations.txt"), "w") as f:
    for index, label in enumerate(VAL_LABELS):
      with open(os.path.join(top, "val", "images", f"val_{index}.JPEG"), "wb") as image:
        image.write(jpeg(200 + index * 10))
      f.write(f"val_{index}.JPEG\t{WNIDS[label]}\t0\t0\t63\t63\n")


@pytest.fixture(scope="module")
def layout(tmp_path_factory) -> str:
  root = tmp_path_factory.mktemp("tiny")
  write_layout(str(root / "tiny-imagenet-200"))
  return str(root)


def prepare(source: str, data_dir: str) -> int:
  """`python -m dljax.data prepare tiny_imagenet`, in this process; its exit status."""
  return data_main.main(["prepare", "tiny_imagenet", "--from", source, "--data_dir", data_dir])


@pytest.fixture(scope="module")
def prepared(layout, tmp_path_factory) -> str:
  """The layout zipped (as ../shared/data holds it) and prepared; the TFDS data dir."""
  archive = shutil.make_archive(str(tmp_path_factory.mktemp("zip") / "tiny"), "zip", layout)
  data_dir = str(tmp_path_factory.mktemp("tfds"))
  assert prepare(archive, data_dir) == 0
  return data_dir


def test_splits_follow_the_coursework_rule_on_the_files_present(prepared):
  splits = load(data_config("tiny_imagenet", dir=prepared, validation="dataset"), seed=0)
  assert splits.train["image"].shape == (3 * (PER_CLASS - 1), 64, 64, 3)
  np.testing.assert_array_equal(splits.train["label"], np.repeat([0, 1, 2], PER_CLASS - 1))
  np.testing.assert_array_equal(splits.validation["label"], [0, 1, 2])
  np.testing.assert_array_equal(splits.test["label"], VAL_LABELS)
  # Pixel values tell which file each example is: the validation image is each class's last (k
  # = 9, numbers sorted as numbers: 9 comes after 2..8, not after 1 as a name would).
  red = splits.validation["image"][:, 32, 32, 0].astype(int)
  np.testing.assert_allclose(red, [0 + 45, 80 + 45, 160 + 45], atol=3)
  np.testing.assert_allclose(splits.test["image"][:, 32, 32, 0], [200, 210, 220, 230], atol=3)
  gray = splits.train["image"][PER_CLASS - 1 + 3]  # class 1, k = 3: a grayscale JPEG
  assert gray.shape == (64, 64, 3) and (gray[..., 0] == gray[..., 2]).all()
  assert splits.label_names == ("Egyptian cat", "reel", "n04540053")


def test_a_folder_prepares_as_its_zip(layout, prepared, tmp_path):
  data_dir = str(tmp_path / "tfds")
  assert prepare(layout, data_dir) == 0
  config = dict(validation="dataset")
  from_folder = load(data_config("tiny_imagenet", dir=data_dir, **config), seed=0)
  from_zip = load(data_config("tiny_imagenet", dir=prepared, **config), seed=0)
  for split in ("train", "validation", "test"):
    np.testing.assert_array_equal(getattr(from_folder, split)["image"],
                                  getattr(from_zip, split)["image"])


def test_a_corrupt_jpeg_is_one_line_naming_it(layout, tmp_path, capsys):
  broken = tmp_path / "broken"
  shutil.copytree(layout, broken)
  bad = broken / "tiny-imagenet-200" / "train" / WNIDS[2] / "images" / f"{WNIDS[2]}_4.JPEG"
  bad.write_bytes(bad.read_bytes()[:40])
  assert prepare(str(broken), str(tmp_path / "tfds")) == 2
  last_line = capsys.readouterr().err.splitlines()[-1]  # after TFDS's progress bars
  assert last_line.startswith(f"python -m dljax.data: error: {bad}: corrupt JPEG (")
  assert not os.path.exists(tiny_imagenet.directory(str(tmp_path / "tfds")))


def test_transfer_from_a_pretrained_run_freezes_the_base(prepared, tmp_path):
  """configs/cifar10_vgg's network (pretrained here on the tiny data itself: 3 classes), then
  configs/tiny_imagenet frozen on top of it: the base as loaded, the new head trained."""
  source, frozen = tmp_path / "source", tmp_path / "frozen"
  narrow = "width=0.0625,top_width=8"
  result = run_main(f"--config=configs/cifar10_vgg.py:smoke,{narrow}", f"--workdir={source}",
                    "--config.data.name=tiny_imagenet", f"--config.data.dir={prepared}",
                    "--config.model.num_classes=3", "--config.batch_size=9")
  assert result.returncode == 0, result.stderr
  result = run_main(f"--config=configs/tiny_imagenet.py:smoke,{narrow},mode=frozen,"
                    f"weights={source}", f"--workdir={frozen}", f"--config.data.dir={prepared}",
                    "--config.batch_size=9")
  assert result.returncode == 0, result.stderr
  before, after = saved_state(str(source)), saved_state(str(frozen))
  for variable in ("params/block1_conv1/kernel", "params/block5_conv3/bias"):
    np.testing.assert_array_equal(after[variable], before[variable])
  assert after["params/predictions/kernel"].shape == (8, 200)

"""Offline preparation of MNIST, Fashion-MNIST and CIFAR-10 from tiny original files; reading."""

import gzip
import json
import os
import re
import shutil
import subprocess
import sys

import numpy as np
import pytest
import tensorflow_datasets as tfds

from dljax import config_lib, data
from dljax.data import __main__ as cli
from dljax.data import prepare, raw, tfds_io
from dljax.errors import DataError

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
IDX_NAMES = {"train": ("train-images-idx3-ubyte.gz", "train-labels-idx1-ubyte.gz"),
             "test": ("t10k-images-idx3-ubyte.gz", "t10k-labels-idx1-ubyte.gz")}
SIZES = {"train": 10, "test": 5}


def idx_bytes(array: np.ndarray, magic: int | None = None) -> bytes:
  """`array` (uint8) in IDX format; `magic` overrides the right magic number."""
  magic = 0x800 + array.ndim if magic is None else magic
  header = magic.to_bytes(4, "big") + b"".join(d.to_bytes(4, "big") for d in array.shape)
  return header + array.astype(np.uint8).tobytes()


def write_gz(path, data: bytes) -> None:
  with gzip.open(path, "wb") as f:
    f.write(data)


def random_split(rng, num_examples: int, image_shape: tuple[int, ...]) -> raw.Split:
  # Random pixels make every image unique, so each read image identifies its original index.
  images = rng.integers(0, 256, (num_examples, *image_shape), dtype=np.uint8)
  return images, rng.integers(0, 10, num_examples, dtype=np.uint8)


@pytest.fixture
def idx_dir(tmp_path):
  """A directory with tiny MNIST IDX files; returns (directory, {split: (images, labels)})."""
  directory = tmp_path / "idx"
  directory.mkdir()
  rng = np.random.default_rng(0)
  splits = {split: random_split(rng, n, (28, 28)) for split, n in SIZES.items()}
  for split, (images_name, labels_name) in IDX_NAMES.items():
    write_gz(directory / images_name, idx_bytes(splits[split][0]))
    write_gz(directory / labels_name, idx_bytes(splits[split][1]))
  return str(directory), splits


@pytest.fixture
def cifar_dir(tmp_path):
  """Tiny CIFAR-10 npz parts (5 x 2 train, 3 test); returns (directory, {split: arrays})."""
  directory = tmp_path / "cifar"
  directory.mkdir()
  rng = np.random.default_rng(1)
  splits = {"train": random_split(rng, 10, (32, 32, 3)), "test": random_split(rng, 3, (32, 32, 3))}
  for part in range(5):
    rows = slice(2 * part, 2 * part + 2)
    np.savez(directory / f"cifar10-train-{part + 1}.npz", images=splits["train"][0][rows],
             labels=splits["train"][1][rows])
  np.savez(directory / "cifar10-test.npz", images=splits["test"][0], labels=splits["test"][1])
  return str(directory), splits


def original_index(read_images: np.ndarray, original_images: np.ndarray) -> np.ndarray:
  by_pixels = {image.tobytes(): index for index, image in enumerate(original_images)}
  return np.array([by_pixels[image.reshape(original_images.shape[1:]).tobytes()]
                   for image in read_images])


def catalogue_order(split: str, num_examples: int) -> list[int]:
  """The order TFDS stores examples keyed 0..n-1 in: the catalogue builders' keys and order."""
  hasher = tfds.core.hashing.Hasher(split)
  return sorted(range(num_examples), key=hasher.hash_key)


@pytest.mark.parametrize("name", ["mnist", "fashion_mnist"])
def test_prepared_idx_data_set_reads_back_like_a_download(name, idx_dir, tmp_path):
  source, originals = idx_dir
  data_dir = str(tmp_path / "tfds")
  prepare.prepare(name, source, data_dir, partial=True)
  for split, (images, labels) in originals.items():
    arrays = tfds_io.read_split(name, split, data_dir)
    assert sorted(arrays) == ["image", "label"]
    assert arrays["image"].shape == (SIZES[split], 28, 28, 1)
    assert arrays["image"].dtype == np.uint8 and arrays["label"].dtype == np.int64
    order = original_index(arrays["image"], images)
    assert list(order) == catalogue_order(split, SIZES[split])
    np.testing.assert_array_equal(arrays["image"][..., 0], images[order])
    np.testing.assert_array_equal(arrays["label"], labels[order])
    data_source = tfds.data_source(name, split=split, data_dir=data_dir, download=False)
    for index, example in enumerate(data_source):
      np.testing.assert_array_equal(example["image"], arrays["image"][index])
      assert example["label"] == arrays["label"][index]


@pytest.mark.parametrize("name", ["mnist", "fashion_mnist"])
def test_catalogue_builder_reads_the_metadata_a_download_writes(name, idx_dir, tmp_path):
  data_dir = str(tmp_path / "tfds")
  prepare.prepare(name, idx_dir[0], data_dir, partial=True)
  builder = tfds.builder(name, data_dir=data_dir)
  assert type(builder) is tfds.builder_cls(name)
  assert builder.is_prepared() and str(builder.version) == "3.0.1"
  unprepared = tfds.builder(name, data_dir=str(tmp_path / "empty"))
  assert builder.info.features.to_json() == unprepared.info.features.to_json()
  assert builder.info.features["label"].names == unprepared.info.features["label"].names
  with open(os.path.join(builder.data_dir, "dataset_info.json")) as f:
    info = json.load(f)
  assert info["moduleName"] == "tensorflow_datasets.image_classification.mnist"
  assert info["fileFormat"] == "array_record"
  assert int(info["downloadSize"]) == raw.ORIGINALS[name].download_size
  assert {s["name"]: s["shardLengths"] for s in info["splits"]} == {"train": ["10"], "test": ["5"]}


def test_download_sizes_are_the_catalogue_checksums():
  for name, originals in raw.ORIGINALS.items():
    path = tfds.core.utils.tfds_path() / "url_checksums" / f"{name}.txt"
    url_infos = tfds.core.download.checksums.load_url_infos(path)
    assert originals.download_size == sum(info.size for info in url_infos.values())


def test_prepared_cifar10_has_the_catalogue_ids_labels_and_features(cifar_dir, tmp_path):
  source, originals = cifar_dir
  data_dir = str(tmp_path / "tfds")
  prepare.prepare("cifar10", source, data_dir, partial=True)
  for split, (images, labels) in originals.items():
    arrays = tfds_io.read_split("cifar10", split, data_dir)
    assert arrays["image"].shape == (len(labels), 32, 32, 3)
    order = original_index(arrays["image"], images)
    assert list(order) == catalogue_order(split, len(labels))
    assert "id" not in arrays  # strings stay off the devices
    np.testing.assert_array_equal(arrays["image"], images[order])
    np.testing.assert_array_equal(arrays["label"], labels[order])
    catalogue = tfds.data_source("cifar10", split=split, data_dir=data_dir, download=False)
    assert [catalogue[i]["id"].decode() for i in range(len(catalogue))] == [
        f"{split}_{index:05d}" for index in order]
  builder = tfds.builder("cifar10", data_dir=data_dir)
  assert str(builder.version) == "3.0.2"
  assert builder.info.features["label"].names[:3] == ["airplane", "automobile", "bird"]


def test_read_idx_accepts_gzip_and_plain_files(tmp_path):
  labels = np.arange(7, dtype=np.uint8)
  write_gz(tmp_path / "labels.gz", idx_bytes(labels))
  (tmp_path / "labels").write_bytes(idx_bytes(labels))
  for name in ("labels.gz", "labels"):
    np.testing.assert_array_equal(raw.read_idx(str(tmp_path / name)), labels)


@pytest.mark.parametrize("data, problem", [
    (idx_bytes(np.zeros((10, 28, 28)))[:1000],
     "truncated: header says 10x28x28 = 7840 bytes, found 984"),
    (idx_bytes(np.zeros((3, 2, 2))) + b"extra", "corrupt: header says 3x2x2 = 12 bytes, found 17"),
    (idx_bytes(np.zeros(4), magic=0x12345678), "magic number 305419896"),
    (idx_bytes(np.zeros(4), magic=0x0D01), "dtype code 0x0d"),
    (b"\0\0", "truncated"),
])
def test_read_idx_rejects_bad_files_naming_them(tmp_path, data, problem):
  path = str(tmp_path / "train-images-idx3-ubyte.gz")
  write_gz(path, data)
  with pytest.raises(DataError, match=f"^{re.escape(path)}: .*{problem}"):
    raw.read_idx(path)


def test_read_idx_rejects_a_truncated_gzip_stream(tmp_path):
  path = tmp_path / "train-labels-idx1-ubyte.gz"
  path.write_bytes(gzip.compress(idx_bytes(np.zeros(1000)))[:30])
  with pytest.raises(DataError, match=f"^{re.escape(str(path))}: truncated or corrupt gzip"):
    raw.read_idx(str(path))


def test_prepare_names_missing_corrupt_and_misshapen_files(idx_dir, cifar_dir, tmp_path):
  source, _ = idx_dir
  os.remove(os.path.join(source, "t10k-labels-idx1-ubyte.gz"))
  with pytest.raises(DataError, match=r"missing t10k-labels-idx1-ubyte\.gz"):
    prepare.prepare("mnist", source, str(tmp_path / "a"))
  write_gz(os.path.join(source, "t10k-labels-idx1-ubyte.gz"), idx_bytes(np.zeros(4)))
  with pytest.raises(DataError, match="5 images but labels of shape"):
    prepare.prepare("mnist", source, str(tmp_path / "b"))
  part = os.path.join(cifar_dir[0], "cifar10-train-3.npz")
  with open(part, "r+b") as f:
    f.truncate(100)
  with pytest.raises(DataError, match=f"^{re.escape(part)}: truncated or corrupt npz"):
    prepare.prepare("cifar10", cifar_dir[0], str(tmp_path / "c"))
  small = tmp_path / "small"
  small.mkdir()
  for names in IDX_NAMES.values():
    write_gz(small / names[0], idx_bytes(np.zeros((2, 20, 20))))
    write_gz(small / names[1], idx_bytes(np.zeros(2)))
  with pytest.raises(DataError, match="images are 20x20x1, mnist needs 28x28x1"):
    prepare.prepare("mnist", str(small), str(tmp_path / "d"))
  assert not list(tmp_path.glob("*/*/3.0.*"))  # nothing prepared, nothing half-prepared


def test_missing_data_set_names_the_directory_and_the_prepare_command(tmp_path):
  with pytest.raises(DataError) as error:
    tfds_io.read_split("mnist", "train", str(tmp_path))
  assert str(error.value).startswith(
      f"mnist not found in {tmp_path} (looked for {tmp_path}/mnist/3.0.1).")
  assert str(error.value).endswith(
      f"python -m dljax.data prepare mnist --from DIR_WITH_IDX_FILES --data_dir {tmp_path}")


@pytest.mark.parametrize("damage", [
    ("mnist-train.array_record-00000-of-00001", lambda f: f.truncate(5000)),
    ("mnist-test.array_record-00000-of-00001", lambda f: (f.seek(20000), f.write(b"x" * 100))),
    ("dataset_info.json", lambda f: f.truncate(100)),
], ids=["truncated_train", "garbled_test", "truncated_info"])
def test_damaged_prepared_files_are_one_data_error_naming_the_fix(damage, tiny_mnist_dir,
                                                                  tmp_path):
  data_dir = str(tmp_path / "tfds")
  shutil.copytree(tiny_mnist_dir, data_dir)
  name, change = damage
  with open(os.path.join(data_dir, "mnist", "3.0.1", name), "r+b") as f:
    change(f)
  config = config_lib.load(os.path.join(REPO, "configs/mnist_mlp.py:smoke"))
  config.data.dir = data_dir
  with pytest.raises(DataError) as error:
    data.load(config.data, config.seed)
  message = str(error.value)
  assert message.startswith(f"mnist in {data_dir} cannot be read, its files may be damaged (")
  assert message.endswith(f"prepare it again: python -m dljax.data prepare mnist --from "
                          f"DIR_WITH_IDX_FILES --data_dir {data_dir} --force")
  assert "\n" not in message


def test_interrupted_preparation_leaves_nothing_that_reads(idx_dir, tmp_path, monkeypatch):
  data_dir = str(tmp_path / "tfds")
  encode, calls = prepare._encode_png, []

  def fail_midway(image):
    calls.append(1)
    if len(calls) == 7:
      raise KeyboardInterrupt
    return encode(image)

  monkeypatch.setattr(prepare, "_encode_png", fail_midway)
  with pytest.raises(KeyboardInterrupt):
    prepare.prepare("mnist", idx_dir[0], data_dir, partial=True)
  assert os.listdir(os.path.join(data_dir, "mnist")) == []
  with pytest.raises(DataError, match="not found"):
    tfds_io.read_split("mnist", "train", data_dir)


def test_killed_preparation_leaves_nothing_that_reads_and_can_be_redone(idx_dir, tmp_path):
  data_dir = str(tmp_path / "tfds")
  kill_midway = (
      "import os, signal, sys\n"
      "from dljax.data import prepare\n"
      "calls = []\n"
      "def encode(image):\n"
      "  calls.append(1)\n"
      "  if len(calls) == 7:\n"
      "    os.kill(os.getpid(), signal.SIGKILL)\n"
      "  return b''\n"
      "prepare._encode_png = encode\n"
      "prepare.prepare('mnist', sys.argv[1], sys.argv[2], partial=True)\n")
  killed = subprocess.run([sys.executable, "-c", kill_midway, idx_dir[0], data_dir], cwd=REPO,
                          capture_output=True)
  assert killed.returncode == -9
  assert [d for d in os.listdir(os.path.join(data_dir, "mnist")) if "3.0.1" in d]  # its leftovers
  with pytest.raises(DataError, match="not found"):
    tfds_io.read_split("mnist", "train", data_dir)
  prepare.prepare("mnist", idx_dir[0], data_dir, partial=True)
  assert len(tfds_io.read_split("mnist", "train", data_dir)["label"]) == SIZES["train"]


def test_cli_prepares_then_does_nothing_the_second_time_unless_forced(idx_dir, tmp_path, capsys):
  data_dir = str(tmp_path / "tfds")
  args = ["prepare", "mnist", "--from", idx_dir[0], "--data_dir", data_dir, "--partial"]
  assert cli.main(args) == 0
  path = os.path.join(data_dir, "mnist", "3.0.1")
  modified = {f: os.path.getmtime(os.path.join(path, f)) for f in os.listdir(path)}
  capsys.readouterr()
  assert cli.main(args) == 0
  assert f"mnist 3.0.1 is already prepared in {path}: nothing to do (--force prepares it again)" \
      in capsys.readouterr().out
  assert modified == {f: os.path.getmtime(os.path.join(path, f)) for f in os.listdir(path)}
  with open(os.path.join(path, "dataset_info.json"), "w") as f:
    f.write("{")  # damaged: only preparing it again helps
  assert cli.main([*args, "--force"]) == 0
  assert len(tfds_io.read_split("mnist", "train", data_dir)["label"]) == SIZES["train"]
  assert os.listdir(os.path.dirname(path)) == ["3.0.1"]  # the old copy is gone


def test_a_split_of_another_size_than_the_catalogues_needs_partial(idx_dir, tmp_path, capsys):
  args = ["prepare", "mnist", "--from", idx_dir[0], "--data_dir", str(tmp_path)]
  assert cli.main(args) == 2
  assert capsys.readouterr().err == (
      "python -m dljax.data: error: mnist train has 10 examples, the TFDS catalogue's has 60000: "
      "not mnist; --partial prepares it anyway (e.g. a test subset)\n")
  assert not os.path.exists(os.path.join(tmp_path, "mnist", "3.0.1"))
  assert cli.main([*args, "--partial"]) == 0
  assert "Warning: mnist test has 5 examples, the TFDS catalogue's has 10000 (--partial)" in (
      capsys.readouterr().out)


def test_a_failed_forced_preparation_keeps_the_old_copy(idx_dir, tmp_path):
  data_dir = str(tmp_path / "tfds")
  prepare.prepare("mnist", idx_dir[0], data_dir, partial=True)
  old = tfds_io.read_split("mnist", "train", data_dir)
  with pytest.raises(DataError, match="the TFDS catalogue's has 60000"):
    prepare.prepare("mnist", idx_dir[0], data_dir, force=True)
  assert os.listdir(os.path.join(data_dir, "mnist")) == ["3.0.1"]
  np.testing.assert_array_equal(tfds_io.read_split("mnist", "train", data_dir)["image"],
                                old["image"])


def test_cli_reports_a_data_error_in_one_line(tmp_path, capsys):
  args = ["prepare", "cifar10", "--from", str(tmp_path / "nowhere"), "--data_dir", str(tmp_path)]
  assert cli.main(args) == 2
  err = capsys.readouterr().err
  assert err == f"python -m dljax.data: error: {tmp_path / 'nowhere'}: no such directory\n"


@pytest.mark.parametrize("name, image_shape", [("mnist", (28, 28, 1)), ("cifar10", (32, 32, 3))])
def test_read_split_works_under_tfds_mock_data(name, image_shape, tmp_path):
  with tfds.testing.mock_data(num_examples=4):
    arrays = tfds_io.read_split(name, "train", str(tmp_path))
  assert arrays["image"].shape == (4, *image_shape) and arrays["label"].shape == (4,)


def test_data_dir_prefers_explicit_then_environment_then_tfds_default(monkeypatch, tmp_path):
  monkeypatch.setenv(tfds_io.DATA_DIR_ENV, str(tmp_path / "env"))
  assert tfds_io.data_dir(str(tmp_path / "x")) == str(tmp_path / "x")
  assert tfds_io.data_dir(None) == str(tmp_path / "env")
  monkeypatch.delenv(tfds_io.DATA_DIR_ENV)
  assert tfds_io.data_dir("") == os.path.abspath(tfds.core.constants.DATA_DIR)


def test_a_split_is_decoded_once_and_again_when_its_files_change(tiny_mnist_dir, tmp_path,
                                                                 monkeypatch):
  data_dir = str(tmp_path / "tfds")
  shutil.copytree(tiny_mnist_dir, data_dir, ignore=shutil.ignore_patterns("dljax_decoded"))
  decode = tfds_io._decode
  decoded_keys = []
  monkeypatch.setattr(tfds_io, "_decode", lambda source, keys: (
      decoded_keys.append(len(keys)), decode(source, keys))[1])
  source = tfds_io.open_split("mnist", "train", data_dir)
  part = tfds_io.read(source, list(range(10)))  # a small part: decoded alone, not kept
  first = tfds_io.read_split("mnist", "train", data_dir)  # whole: decoded and kept
  again = tfds_io.read_split("mnist", "train", data_dir)  # from the decoded copy
  assert decoded_keys == [10, 640]
  for name in ("image", "label"):
    np.testing.assert_array_equal(again[name], first[name])
    np.testing.assert_array_equal(part[name], first[name][:10])
  # Prepared again (the split's files change): decoded again.
  train_file = os.path.join(data_dir, "mnist", "3.0.1", "mnist-train.array_record-00000-of-00001")
  os.utime(train_file, ns=(0, os.stat(train_file).st_mtime_ns + 1))
  tfds_io.read_split("mnist", "train", data_dir)
  assert decoded_keys == [10, 640, 640]

"""The clocks data set: generated on first use, deterministic, atomic, reused; the course files."""

import os

import ml_collections
import numpy as np
import pytest

from dljax import data
from dljax.data import __main__ as cli
from dljax.data import clock_render, clocks, tfds_io
from dljax.errors import ConfigError, DataError

TINY = dict(clocks.OPTIONS, size=32, num_examples=40, seed=3)


def _data_config(data_dir: str, pipeline: str = "auto", **options) -> ml_collections.ConfigDict:
  return data.data_config("clocks", dir=data_dir, pipeline=pipeline, clocks=dict(TINY, **options))


@pytest.fixture(scope="module")
def tiny_dir(tmp_path_factory) -> str:
  """A data dir holding the TINY clocks data set, generated once for the module."""
  data_dir = str(tmp_path_factory.mktemp("tfds"))
  clocks.prepared(TINY, data_dir)
  return data_dir


def test_generated_data_set_reads_back_as_the_rendered_clocks_split_80_20(tiny_dir):
  name = f"clocks/{clocks.config_for(TINY).name}"
  assert name == "clocks/render_32px_n40_d1_seed3"
  train, test = (tfds_io.read_split(name, split, tiny_dir) for split in ("train", "test"))
  assert {key: (value.shape, value.dtype.kind) for key, value in train.items()} == {
      "image": ((32, 32, 32, 1), "u"), "hour": ((32,), "i"), "minute": ((32,), "i")}
  assert len(test["image"]) == 8
  assert set(tfds_io.open_split(name, "train", tiny_dir).dataset_info.splits) == {"train", "test"}
  images_NHW, hours_N, minutes_N = clock_render.render_clocks(3, 40, 32, 1.0)
  for part, index in ((train, slice(0, 32)), (test, slice(32, 40))):
    np.testing.assert_array_equal(part["image"][..., 0], images_NHW[index])
    np.testing.assert_array_equal(part["hour"], hours_N[index])
    np.testing.assert_array_equal(part["minute"], minutes_N[index])


def test_data_set_is_reused_and_loads_through_datasets(tiny_dir, monkeypatch):
  def fail(*args):
    raise AssertionError("generated again")

  monkeypatch.setattr(clocks, "_download_and_prepare", fail)
  splits = data.load(_data_config(tiny_dir, pipeline="device"), seed=0)
  assert splits.train["image"].shape == (32, 32, 32, 1) and len(splits.test["hour"]) == 8


def test_interrupted_generation_leaves_nothing_that_looks_complete(tmp_path, monkeypatch):
  options = dict(TINY, num_examples=12)

  def broken_render(*args):
    raise KeyboardInterrupt

  monkeypatch.setattr(clock_render, "render", broken_render)
  with pytest.raises(KeyboardInterrupt):
    clocks.prepared(options, str(tmp_path))
  assert not os.path.exists(clocks.directory(options, str(tmp_path)))
  monkeypatch.undo()
  reader = clocks.prepared(options, str(tmp_path))
  assert reader.info.splits["train"].num_examples == 10


def test_losing_a_generation_race_to_another_process_is_fine(tmp_path, monkeypatch):
  options = dict(TINY, num_examples=6)
  generate = clocks.Clocks.download_and_prepare

  def lose_the_race(self, **kwargs):
    monkeypatch.setattr(clocks.Clocks, "download_and_prepare", generate)
    clocks.prepared(options, str(tmp_path))  # another process, finishing first
    raise OSError("Directory not empty")  # what renaming our copy into place then meets

  monkeypatch.setattr(clocks.Clocks, "download_and_prepare", lose_the_race)
  assert clocks.prepared(options, str(tmp_path)).info.splits["test"].num_examples == 1


@pytest.mark.parametrize("key, value, message", [
    ("size", 4, "config.data.clocks.size=4: must be >= 8"),
    ("difficulty", 1.5, "config.data.clocks.difficulty=1.5: must be in [0, 1]"),
    ("source", "web", "config.data.clocks.source='web': allowed: render, course"),
    ("sizes", 64, "config.data.clocks.sizes: unknown key"),
    ("held_out", ("dial=oval",), "config.data.clocks.held_out: 'dial=oval' is not a style family"),
    ("held_out", ("hands",), "config.data.clocks.held_out: 'hands' is not a style family"),
    ("held_out", "dial=ellipse", "config.data.clocks.held_out='dial=ellipse': must be a tuple"),
    ("test_split", "test_styles", "test_split='test_styles': holds the held-out styles"),
])
def test_bad_options_are_one_line_config_errors(key, value, message):
  with pytest.raises(ConfigError, match=message.replace("[", r"\[").replace("]", r"\]")):
    clocks.config_for({**TINY, key: value})


def test_testing_on_held_out_styles_needs_styles_held_out(tmp_path):
  config = _data_config(str(tmp_path))
  config.extra_tests = ("test_styles",)
  with pytest.raises(ConfigError, match=r"^config\.data\.extra_tests: 'test_styles' holds the "
                                        r"held-out styles; name them in config\.data\.clocks"):
    data.load(config, seed=0)


HELD_OUT = dict(TINY, held_out=("hands=lance", "dial=ellipse", "dial=ellipse"))


def test_held_out_style_families_are_never_trained_on_and_are_all_of_test_styles(tmp_path):
  name = f"clocks/{clocks.config_for(HELD_OUT).name}"
  assert name == "clocks/render_32px_n40_d1_seed3_heldout-dial.ellipse+hands.lance"
  clocks.prepared(HELD_OUT, str(tmp_path))
  held_out = (("dial", "ellipse"), ("hands", "lance"))
  for split, count, held in (("train", 32, False), ("test", 8, False), ("test_styles", 8, True)):
    stored = tfds_io.read_split(name, split, str(tmp_path))
    style = clocks.split_styles(HELD_OUT, split)
    # The recorded styles are those the stored images were drawn with ...
    np.testing.assert_array_equal(
        clock_render.render(stored["hour"], stored["minute"], style, 32), stored["image"][..., 0])
    # ... and only test_styles has the held-out families, in every image.
    assert len(stored["image"]) == count
    np.testing.assert_array_equal(clock_render.in_families(style, held_out), [held] * count)
  families = {family: clock_render.family_values(clocks.split_styles(HELD_OUT, "train"), family)
              for family in ("dial", "hands")}
  assert "ellipse" not in families["dial"] and "lance" not in families["hands"]
  assert {"round", "square"} <= set(families["dial"])  # the other families stay
  config = _data_config(str(tmp_path), held_out=HELD_OUT["held_out"], test_split="test_styles")
  with pytest.raises(ConfigError, match="would pick the model on the held-out styles"):
    data.load(config, seed=0)
  config.validation = "last"
  config.validation_size = 0.1
  splits = data.load(config, seed=0)
  np.testing.assert_array_equal(splits.test["image"],
                                tfds_io.read_split(name, "test_styles", str(tmp_path))["image"])
  # Served as 'test' or not, test_styles is the data set's split of that name: an extra test.
  config.clocks.test_split = "test"
  config.extra_tests = ("test_styles",)
  splits = data.load(config, seed=0)
  np.testing.assert_array_equal(splits.extra_tests["test_styles"]["image"],
                                tfds_io.read_split(name, "test_styles", str(tmp_path))["image"])


def test_held_out_families_too_rare_at_the_difficulty_are_a_config_error():
  with pytest.raises(ConfigError, match=r"held_out=\('dial=ellipse',\): at difficulty 0, 0 of"):
    clocks.split_indices(clocks.config_for(dict(TINY, difficulty=0.0, held_out=("dial=ellipse",))))


def _write_course(directory, num_examples: int = 10, seed: int = 0):
  rng = np.random.default_rng(seed)
  images_NHW = rng.integers(0, 256, (num_examples, 150, 150), dtype=np.uint8)
  labels_N2 = np.stack([rng.integers(0, 12, num_examples), rng.integers(0, 60, num_examples)], 1)
  os.makedirs(directory, exist_ok=True)
  np.save(os.path.join(directory, "images.npy"), images_NHW)
  np.save(os.path.join(directory, "labels.npy"), labels_N2)
  return images_NHW, labels_N2


def test_course_files_prepare_offline_into_the_same_data_set(tmp_path):
  images_NHW, labels_N2 = _write_course(tmp_path / "course")
  data_dir = str(tmp_path / "tfds")
  with pytest.raises(DataError, match="prepare clocks --from DIR"):
    data.load(_data_config(data_dir, source="course"), seed=0)
  assert cli.main(["prepare", "clocks", "--from", str(tmp_path / "course"),
                   "--data_dir", data_dir]) == 0
  test_N, train_N = clocks._course_split(10)
  assert len(test_N) == 2 and sorted([*test_N, *train_N]) == list(range(10))
  for split, index_N in (("train", train_N), ("test", test_N)):
    arrays = tfds_io.read_split("clocks/course", split, data_dir)
    np.testing.assert_array_equal(arrays["image"][..., 0], images_NHW[index_N])
    np.testing.assert_array_equal(arrays["hour"], labels_N2[index_N, 0])
    np.testing.assert_array_equal(arrays["minute"], labels_N2[index_N, 1])
  splits = data.load(_data_config(data_dir, source="course"), seed=0)
  assert len(splits.train["image"]) == 8 and len(splits.test["image"]) == 2


def test_course_files_prepare_again_only_with_force(tmp_path, capsys):
  _write_course(tmp_path / "course")
  data_dir = str(tmp_path / "tfds")
  args = ["prepare", "clocks", "--from", str(tmp_path / "course"), "--data_dir", data_dir]
  assert cli.main(args) == 0
  images_NHW, _ = _write_course(tmp_path / "course", seed=1)
  capsys.readouterr()
  assert cli.main(args) == 0
  assert "clocks/course is already prepared in" in capsys.readouterr().out
  assert cli.main([*args, "--force"]) == 0
  _, train_N = clocks._course_split(10)
  arrays = tfds_io.read_split("clocks/course", "train", data_dir)
  np.testing.assert_array_equal(arrays["image"][..., 0], images_NHW[train_N])
  capsys.readouterr()
  assert cli.main([*args, "--partial"]) == 2
  assert capsys.readouterr().err.startswith("python -m dljax.data: error: --partial: clocks has")


@pytest.mark.parametrize("change, message", [
    (lambda images, labels: (images[:, :100], labels), r"expected uint8 \(N, 150, 150\)"),
    (lambda images, labels: (images, labels[:5]), r"expected integer \(10, 2\)"),
    (lambda images, labels: (images, labels + np.array([12, 0])),
     r"hours in \d+\.\.\d+, expected 0\.\.11"),
])
def test_bad_course_files_are_data_errors_naming_the_file(tmp_path, change, message):
  images_NHW, labels_N2 = change(*_write_course(tmp_path))
  np.save(tmp_path / "images.npy", images_NHW)
  np.save(tmp_path / "labels.npy", labels_N2)
  with pytest.raises(DataError, match=message):
    clocks.read_course(str(tmp_path))
  os.remove(tmp_path / "labels.npy")
  with pytest.raises(DataError, match=r"labels\.npy: no such file"):
    clocks.read_course(str(tmp_path))


def test_show_writes_a_png_of_the_first_clocks(tmp_path):
  path = str(tmp_path / "clocks.png")
  assert cli.main(["show", "clocks", "--size", "32", "--count", "8", "--out", path]) == 0
  with open(path, "rb") as f:
    assert f.read(8) == b"\x89PNG\r\n\x1a\n"

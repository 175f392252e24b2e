"""A trained run, used: `dljax.load` restores what the run tested, `python -m dljax.predict`
reads image files, folders and .npy arrays the way training saw them, and a mistake is one line."""

import contextlib
import csv
import io
import json
import os
import re
import shutil
import subprocess
import sys

import jax
import numpy as np
import pytest
import tensorflow_datasets as tfds
from PIL import Image

import dljax
from dljax import checkpoint, config_lib, data, predict, tasks, train
from dljax.errors import ConfigError, DataError
from tests.conftest import REPO, cpu_env

SMOKE_STEPS = 8  # a few steps: the outputs need not be good, only the same everywhere


def train_smoke(spec: str, workdir: str, mock_data: bool = True, **overrides) -> dict:
  """Trains `spec` for SMOKE_STEPS in `workdir` (on TFDS's mock data, or the data set's own);
  returns its config, results and data."""
  config = config_lib.load(os.path.join(REPO, spec))
  config.num_steps = SMOKE_STEPS
  for key, value in overrides.items():
    config_lib.override(config, key, value)
  with tfds.testing.mock_data(num_examples=600) if mock_data else contextlib.nullcontext():
    results = train.run(config, workdir)
    splits = data.load(config.data, config.seed)  # small: read into arrays
  return {"config": config, "results": results, "workdir": workdir, "splits": splits}


@pytest.fixture(scope="module")
def mnist(tmp_path_factory) -> dict:
  """The smoke MLP, checkpointed at steps 4 and 8 (tested: the last)."""
  return train_smoke("configs/mnist_mlp.py:smoke", str(tmp_path_factory.mktemp("mnist_run")),
                     eval_every_steps=4)


@pytest.fixture(scope="module")
def run(mnist):
  return dljax.load(mnist["workdir"])


def predict_main(capsys, *args: str) -> tuple[int, str, str]:
  """`python -m dljax.predict ARGS` in this process: (exit status, stdout, stderr)."""
  capsys.readouterr()  # what came before (a training's progress) is not its output
  status = predict.main(list(args))
  captured = capsys.readouterr()
  return status, captured.out, captured.err


def expected_rows(run, names, images_NHWC) -> list[dict]:
  return [{"input": name, **row} for name, row in
          zip(names, run.describe(run.predict(images_NHWC)), strict=True)]


def assert_rows_match(rows: list[dict], expected: list[dict]) -> None:
  """CSV or JSON rows against `expected`: the same names and classes, probabilities to 6 digits."""
  assert [list(row) for row in rows] == [list(row) for row in expected]
  for row, want in zip(rows, expected, strict=True):
    assert row["input"] == want["input"] and row["class"] == want["class"]
    np.testing.assert_allclose([float(row[k]) for k in list(row)[2:]],
                               [want[k] for k in list(want)[2:]], rtol=1e-5)


def read_csv(text: str) -> list[dict]:
  return list(csv.DictReader(io.StringIO(text)))


# dljax.load -------------------------------------------------------------------------------------

def assert_state_is_checkpoint(run, step: int) -> None:
  """`run` holds checkpoint `step` of its workdir, every variable of it."""
  assert run.step == step
  saved = checkpoint.read_state(os.path.join(run.workdir, "checkpoints"), step)
  restored = checkpoint.flat(run.state)
  assert restored.keys() == saved.keys()
  for path, value in restored.items():
    np.testing.assert_array_equal(np.asarray(value), saved[path], err_msg=path)


def test_load_restores_the_tested_checkpoint(mnist, run):
  assert_state_is_checkpoint(run, mnist["results"]["tested_step"])
  assert run.label_names == tuple(str(k) for k in range(10))
  assert run.config.model.hidden == [512, 512]  # rebuilt from config.json (lists, not tuples)


def test_load_takes_the_tested_step_else_the_newest(mnist, tmp_path):
  workdir = shutil.copytree(mnist["workdir"], tmp_path / "run")
  with open(workdir / "results.json") as f:
    results = json.load(f)
  results["tested_step"] = 4  # as a run that restored its best checkpoint says
  with open(workdir / "results.json", "w") as f:
    json.dump(results, f)
  assert_state_is_checkpoint(dljax.load(str(workdir)), 4)
  os.remove(workdir / "results.json")  # a run still training
  assert_state_is_checkpoint(dljax.load(str(workdir)), 8)


def test_load_predicts_as_the_run_did(mnist, run):
  images, labels = mnist["splits"].test["image"], mnist["splits"].test["label"]
  outputs = run.predict(images)
  np.testing.assert_array_equal(outputs["label"], outputs["probabilities"].argmax(-1))
  # The task the run built from its own config and data, on the restored state.
  task = tasks.build(mnist["config"], mnist["splits"], SMOKE_STEPS)
  reference = jax.device_get(task.predict(run.state, {"image": images}, jax.random.key(1)))
  np.testing.assert_allclose(outputs["probabilities"], reference["probabilities"], rtol=1e-5)
  # Within one example of the run's own test accuracy (float rounding could flip a near tie).
  accuracy = np.mean(outputs["label"] == labels)
  assert accuracy == pytest.approx(mnist["results"]["test"]["accuracy"], abs=1.01 / len(labels))
  assert run.describe(outputs)[0].keys() == {"class", "probability",
                                             *(f"p({k})" for k in range(10))}


def test_predict_takes_a_batch_dict_and_refuses_other_shapes(mnist, run):
  images = mnist["splits"].test["image"][:4]
  np.testing.assert_array_equal(run.predict({"image": images})["probabilities"],
                                run.predict(images)["probabilities"])
  with pytest.raises(DataError, match=r"\[4, 28, 28\].*takes \[N, 28, 28, 1\] uint8"):
    run.predict(images[..., 0])
  with pytest.raises(DataError, match=r"float32.*uint8"):
    run.predict(images.astype(np.float32))


def test_a_workdir_without_a_run_is_one_line(tmp_path):
  with pytest.raises(ConfigError, match=r"holds no trained run"):
    dljax.load(str(tmp_path))


def test_standardised_inputs_read_the_data_set_or_say_which(mnist, tmp_path):
  """A run whose inputs were standardised needs its train statistics: read from the data set,
  they give the run's own predictions; without the data set, one line names it."""
  standardised = train_smoke("configs/mnist_mlp.py:smoke", str(tmp_path / "run"),
                             **{"data.normalize": "per_channel", "num_steps": 2})
  with tfds.testing.mock_data(num_examples=600):
    loaded = dljax.load(standardised["workdir"])
  task = tasks.build(standardised["config"], standardised["splits"], 2)
  images = standardised["splits"].test["image"]
  np.testing.assert_allclose(
      loaded.predict(images)["probabilities"],
      task.predict(loaded.state, {"image": images}, jax.random.key(0))["probabilities"],
      rtol=1e-5)
  with open(tmp_path / "run" / "config.json") as f:
    info = json.load(f)
  info["config"]["data"]["dir"] = str(tmp_path / "empty")
  with open(tmp_path / "run" / "config.json", "w") as f:
    json.dump(info, f)
  with pytest.raises(DataError, match=r"^data set 'mnist' is needed .*normalize='per_channel'"):
    dljax.load(str(tmp_path / "run"))


# python -m dljax.predict ------------------------------------------------------------------------

@pytest.fixture
def digits(mnist, tmp_path) -> dict:
  """Three test digits as grey PNG files in a folder (named out of order), and their arrays."""
  images = mnist["splits"].test["image"][:3]
  folder = tmp_path / "digits"
  folder.mkdir()
  names = ["b.png", "c.png", "a.png"]
  for name, image in zip(names, images, strict=True):
    Image.fromarray(image[..., 0]).save(folder / name)
  (folder / "notes.txt").write_text("not an image")  # skipped in a folder
  return {"folder": str(folder), "paths": [str(folder / name) for name in names],
          "images": images}


def test_cli_on_png_files_writes_csv(mnist, run, digits, tmp_path, capsys):
  out = str(tmp_path / "predictions.csv")
  status, stdout, stderr = predict_main(capsys, f"--workdir={mnist['workdir']}", *digits["paths"],
                                        "--out", out)
  assert (status, stdout) == (0, ""), stderr
  with open(out) as f:
    assert_rows_match(read_csv(f.read()), expected_rows(run, digits["paths"], digits["images"]))


def test_cli_on_a_folder_prints_its_images_by_name(mnist, run, digits, capsys):
  status, stdout, stderr = predict_main(capsys, f"--workdir={mnist['workdir']}", digits["folder"],
                                        "--batch_size=2")
  assert status == 0, stderr
  by_name = sorted(zip(digits["paths"], digits["images"], strict=True))
  assert_rows_match(read_csv(stdout), expected_rows(
      run, [path for path, _ in by_name], np.stack([image for _, image in by_name])))


def test_cli_on_npy_arrays_writes_json(mnist, run, tmp_path, capsys):
  images = mnist["splits"].test["image"][:5]
  np.save(tmp_path / "grey.npy", images[..., 0])  # [N, 28, 28] uint8
  np.save(tmp_path / "floats.npy", images[:2].astype(np.float32) / 255)  # [N, H, W, C] in [0, 1]
  out = str(tmp_path / "predictions.json")
  status, _, stderr = predict_main(capsys, f"--workdir={mnist['workdir']}",
                                   str(tmp_path / "grey.npy"), str(tmp_path / "floats.npy"),
                                   f"--out={out}")
  assert status == 0, stderr
  with open(out) as f:
    rows = json.load(f)
  names = [f"{tmp_path / 'grey.npy'}[{i}]" for i in range(5)] + [
      f"{tmp_path / 'floats.npy'}[{i}]" for i in range(2)]
  assert_rows_match(rows, expected_rows(run, names, np.concatenate([images, images[:2]])))


def test_cli_converts_and_resizes_an_rgb_image(mnist, run, tmp_path, capsys):
  rgb = np.random.default_rng(0).integers(0, 256, (40, 40, 3), dtype=np.uint8)
  path = str(tmp_path / "rgb.png")
  Image.fromarray(rgb).save(path)
  status, stdout, stderr = predict_main(capsys, f"--workdir={mnist['workdir']}", path)
  assert status == 0, stderr
  grey = Image.fromarray(rgb).convert("L").resize((28, 28), Image.Resampling.BILINEAR)
  assert_rows_match(read_csv(stdout),
                    expected_rows(run, [path], np.asarray(grey)[None, :, :, None]))


@pytest.mark.parametrize("make_input, message", [
    (lambda d: d / "missing.png", r"missing\.png: no such file or folder"),
    (lambda d: d / "text.png", r"text\.png: not an image Pillow can read"),
    (lambda d: d / "cube.npy", r"cube\.npy: an array of shape \[2, 2, 2, 2, 2\]"),
    (lambda d: d / "loud.npy", r"loud\.npy: float images must lie in \[0, 1\]"),
])
def test_cli_unreadable_inputs_are_one_line(mnist, tmp_path, capsys, make_input, message):
  (tmp_path / "text.png").write_text("not an image")
  np.save(tmp_path / "cube.npy", np.zeros((2, 2, 2, 2, 2), np.uint8))
  np.save(tmp_path / "loud.npy", np.full((1, 28, 28), 2.0))
  status, stdout, stderr = predict_main(capsys, f"--workdir={mnist['workdir']}",
                                        str(make_input(tmp_path)))
  assert (status, stdout) == (2, "")
  assert re.fullmatch(f"dljax: error: .*{message}.*\n", stderr)


def test_cli_errors_exit_2_with_one_line(tmp_path):
  """As a command line: a workdir without a run is one line on stderr, no traceback."""
  Image.fromarray(np.zeros((28, 28), np.uint8)).save(tmp_path / "zero.png")
  result = subprocess.run(
      [sys.executable, "-m", "dljax.predict", f"--workdir={tmp_path}",
       str(tmp_path / "zero.png")], env=cpu_env(1), cwd=REPO, capture_output=True, text=True,
      timeout=120)
  assert result.returncode == 2
  assert result.stdout == ""
  assert re.fullmatch(r"dljax: error: .*: holds no trained run .*\n", result.stderr)


# A clock run ---------------------------------------------------------------------------------

def test_a_clock_run_predicts_times(tmp_path, capsys):
  clock_run = train_smoke("configs/clock_quick.py:smoke", str(tmp_path / "run"), mock_data=False,
                          **{"data.dir": str(tmp_path / "tfds"), "num_steps": 2})
  images = clock_run["splits"].test["image"][:3]
  np.save(tmp_path / "clocks.npy", images)
  status, stdout, stderr = predict_main(capsys, f"--workdir={clock_run['workdir']}",
                                        str(tmp_path / "clocks.npy"))
  assert status == 0, stderr
  rows = read_csv(stdout)
  assert [list(row) for row in rows] == [["input", "time"]] * 3
  assert all(re.fullmatch(r"(1[01]|\d):[0-5]\d", row["time"]) for row in rows)

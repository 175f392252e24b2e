"""What a run leaves for people to read: metrics JSONL, TensorBoard events, a progress bar.

Only process 0 writes. TensorBoard events are written with the `tensorboard` package's own
event writer and protos, so no TensorFlow is needed.
"""

import io
import itertools
import json
import os
import socket
import sys
import time

import jax
import numpy as np
import tqdm
from PIL import Image
from tensorboard.compat.proto import event_pb2, summary_pb2, tensor_pb2, types_pb2
from tensorboard.summary.writer.record_writer import RecordWriter

METRICS_FILE = "metrics.jsonl"
# The splits whose records a run writes while it trains; the others ('test', `data.extra_tests`)
# it writes once it has finished.
TRAINING_SPLITS = ("train", "validation")
FLUSH_SECONDS = 30  # how stale TensorBoard's view of a running run may get
_EVENT_FILES = itertools.count()


def write_json(path: str, value) -> None:
  """Writes `value` as JSON atomically (a crash leaves the old file or the new one, never half of
  one); only process 0 writes."""
  if jax.process_index() != 0:
    return
  with open(path + ".tmp", "w") as f:
    json.dump(value, f, indent=2)
  os.replace(path + ".tmp", path)


def read_metrics(workdir: str) -> list[dict]:
  """All records of `metrics.jsonl` (an empty list if there is none).

  A line that is not a record (a JSON object with an int "step" and a str "split"), e.g. one
  half-written when a run was killed, is skipped with a one-line warning naming the file and the
  line: it must not block every resume and report. `MetricWriter.truncate_after` then rewrites
  the file without it.
  """
  path = os.path.join(workdir, METRICS_FILE)
  if not os.path.exists(path):
    return []
  records = []
  with open(path, errors="replace") as f:
    for number, line in enumerate(f, start=1):
      if not line.strip():
        continue
      record = _parse_record(line)
      if record is None:
        print(f"Warning: {path}:{number}: not a metrics record, skipped", file=sys.stderr)
      else:
        records.append(record)
  return records


def _parse_record(line: str) -> dict | None:
  """The metrics record on `line`, or None if it is not one."""
  try:
    record = json.loads(line)
  except ValueError:
    return None
  is_record = (isinstance(record, dict) and isinstance(record.get("step"), int)
               and isinstance(record.get("split"), str))
  return record if is_record else None


class _EventFile:
  """A TensorBoard event file, written in the calling thread and flushed every FLUSH_SECONDS
  and at close.

  tensorboard's own EventFileWriter starts a thread per file, which each event wakes: the DQN
  study's 128 trials trained together spent 33 ms an episode writing their 128 records that
  way, 6 ms this way.
  """

  def __init__(self, directory: str):
    os.makedirs(directory, exist_ok=True)
    name = (f"events.out.tfevents.{int(time.time()):010d}.{socket.gethostname()}.{os.getpid()}."
            f"{next(_EVENT_FILES)}")
    self._file = open(os.path.join(directory, name), "wb")  # noqa: SIM115 (closed by close())
    self._records = RecordWriter(self._file)
    self._flushed = time.monotonic()
    self.add(event_pb2.Event(wall_time=time.time(), file_version="brain.Event:2"))
    self.flush()

  def add(self, event: event_pb2.Event) -> None:
    self._records.write(event.SerializeToString())
    if time.monotonic() - self._flushed > FLUSH_SECONDS:
      self.flush()

  def flush(self) -> None:
    self._file.flush()
    self._flushed = time.monotonic()

  def close(self) -> None:
    self._file.close()


class MetricWriter:
  """Appends `{"step", "split", metrics...}` records to metrics.jsonl and TensorBoard.

  `truncate_after(step)` drops records a crashed run wrote after its last checkpoint, and the
  test splits' records (a finishing run writes them again), so a resumed run's metrics file
  equals an uninterrupted run's.
  """

  def __init__(self, workdir: str):
    self._active = jax.process_index() == 0
    self._path = os.path.join(workdir, METRICS_FILE)
    self._tensorboard = None
    if self._active:
      self._tensorboard = _EventFile(os.path.join(workdir, "tensorboard"))

  def truncate_after(self, step: int) -> None:
    if not self._active:
      return
    kept = [r for r in read_metrics(os.path.dirname(self._path))
            if r["step"] <= step and r["split"] in TRAINING_SPLITS]
    with open(self._path + ".tmp", "w") as f:
      f.writelines(json.dumps(r) + "\n" for r in kept)
    os.replace(self._path + ".tmp", self._path)

  def write(self, step: int, split: str, metrics: dict[str, float]) -> None:
    if not self._active:
      return
    record = {"step": step, "split": split, **{k: float(v) for k, v in metrics.items()}}
    with open(self._path, "a") as f:
      f.write(json.dumps(record) + "\n")
    values = [summary_pb2.Summary.Value(tag=f"{split}/{name}", simple_value=float(value))
              for name, value in metrics.items()]
    self._tensorboard.add(event_pb2.Event(
        wall_time=time.time(), step=step, summary=summary_pb2.Summary(value=values)))

  def summary(self, step: int, value: summary_pb2.Summary.Value) -> None:
    """Adds one TensorBoard summary value (an image, a text) at `step`."""
    if self._active:
      self._tensorboard.add(event_pb2.Event(
          wall_time=time.time(), step=step, summary=summary_pb2.Summary(value=[value])))

  def close(self) -> None:
    if self._tensorboard is not None:
      self._tensorboard.close()


SAMPLES_DIR = "samples"


class Artefacts:
  """What an evaluator shows people at one evaluation: PNGs and text files under
  WORKDIR/samples/NAME/ (`step_00001200.png`, or `test.png` for the tested state) and the same
  as TensorBoard images and text. Only process 0 writes."""

  def __init__(self, workdir: str, writer: MetricWriter, step: int, split: str):
    self._directory = os.path.join(workdir, SAMPLES_DIR)
    self._writer = writer
    self._step = step
    self._stem = "test" if split == "test" else f"step_{step:08d}"
    self._active = jax.process_index() == 0

  def _path(self, name: str, suffix: str) -> str:
    os.makedirs(os.path.join(self._directory, name), exist_ok=True)
    return os.path.join(self._directory, name, self._stem + suffix)

  def image(self, name: str, image_HWC: np.ndarray) -> None:
    """Writes an image: uint8, or floats in [0, 1]; 1 or 3 channels."""
    if not self._active:
      return
    image_HWC = np.asarray(image_HWC)
    if image_HWC.dtype != np.uint8:
      image_HWC = np.round(np.clip(image_HWC, 0.0, 1.0) * 255).astype(np.uint8)
    buffer = io.BytesIO()
    Image.fromarray(image_HWC[..., 0] if image_HWC.shape[-1] == 1 else image_HWC).save(
        buffer, format="png")
    with open(self._path(name, ".png"), "wb") as f:
      f.write(buffer.getvalue())
    height, width, channels = image_HWC.shape
    self._writer.summary(self._step, summary_pb2.Summary.Value(tag=name, image=(
        summary_pb2.Summary.Image(height=height, width=width, colorspace=channels,
                                  encoded_image_string=buffer.getvalue()))))

  def text(self, name: str, text: str) -> None:
    if not self._active:
      return
    with open(self._path(name, ".txt"), "w") as f:
      f.write(text)
    self._writer.summary(self._step, summary_pb2.Summary.Value(
        tag=name,
        metadata=summary_pb2.SummaryMetadata(
            plugin_data=summary_pb2.SummaryMetadata.PluginData(plugin_name="text")),
        tensor=tensor_pb2.TensorProto(dtype=types_pb2.DT_STRING, string_val=[text.encode()])))


class Progress:
  """A progress bar with steps/s, ETA and the latest metrics; silent on processes other than 0.

  Off a terminal (batch jobs), tqdm redraws at most every 30 s so logs stay readable.
  """

  def __init__(self, total_steps: int, initial_step: int):
    interactive = sys.stderr.isatty()
    self._bar = tqdm.tqdm(
        total=total_steps, initial=initial_step, unit="step", dynamic_ncols=True,
        mininterval=0.2 if interactive else 30.0, disable=jax.process_index() != 0)

  def update(self, steps: int, metrics: dict[str, float] | None = None) -> None:
    if metrics:
      self._bar.set_postfix({k: f"{v:.4g}" for k, v in metrics.items()}, refresh=False)
    self._bar.update(steps)

  def close(self) -> None:
    self._bar.close()

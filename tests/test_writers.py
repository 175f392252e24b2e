"""metrics.jsonl: damaged lines are skipped with a warning and dropped on resume."""

import json
import os

from dljax import writers

RECORDS = [{"step": 1, "split": "train", "loss": 2.0}, {"step": 2, "split": "validation",
                                                        "loss": 1.5}]


def write_lines(workdir, lines: list[str]) -> str:
  path = os.path.join(workdir, writers.METRICS_FILE)
  with open(path, "w") as f:
    f.writelines(line + "\n" for line in lines)
  return path


def test_lines_that_are_not_records_are_skipped_with_a_warning_naming_file_and_line(tmp_path,
                                                                                    capsys):
  path = write_lines(tmp_path, [json.dumps(RECORDS[0]), '{"step": 3, "spl', "", "[1, 2]",
                                json.dumps(RECORDS[1]), '{"split": "train"}', "\x00\x01"])
  assert writers.read_metrics(str(tmp_path)) == RECORDS
  assert capsys.readouterr().err.splitlines() == [
      f"Warning: {path}:{number}: not a metrics record, skipped" for number in (2, 4, 6, 7)]


def test_truncate_after_rewrites_the_file_without_the_damaged_lines(tmp_path, capsys):
  path = write_lines(tmp_path, [json.dumps(RECORDS[0]), '{"step": 3, "spl',
                                json.dumps(RECORDS[1])])
  writer = writers.MetricWriter(str(tmp_path))
  writer.truncate_after(2)
  writer.close()
  capsys.readouterr()
  with open(path) as f:
    assert [json.loads(line) for line in f] == RECORDS
  assert writers.read_metrics(str(tmp_path)) == RECORDS
  assert capsys.readouterr().err == ""


def test_tensorboard_reads_the_scalars_written(tmp_path):
  from tensorboard.backend.event_processing import event_accumulator

  writer = writers.MetricWriter(str(tmp_path))
  for record in RECORDS:
    writer.write(record["step"], record["split"], {"loss": record["loss"]})
  writer.close()
  events = event_accumulator.EventAccumulator(str(tmp_path / "tensorboard"))
  events.Reload()
  assert [(e.step, e.value) for e in events.Scalars("train/loss")] == [(1, 2.0)]
  assert [(e.step, e.value) for e in events.Scalars("validation/loss")] == [(2, 1.5)]


def test_many_curves_are_drawn_by_worker_processes_as_here(tmp_path, monkeypatch):
  from dljax import plots

  monkeypatch.setattr(os, "cpu_count", lambda: 2)
  jobs = [([{**record, "loss": record["loss"] * k} for record in RECORDS], None,
           str(tmp_path / f"{k}.png")) for k in range(2 * plots.FIGURES_PER_WORKER)]
  wait = plots.draw_curves(jobs)
  plots.curves(*jobs[-1][:2], str(tmp_path / "here.png"))
  wait()
  assert (tmp_path / "here.png").read_bytes() == (tmp_path / f"{len(jobs) - 1}.png").read_bytes()
  assert all(os.path.getsize(path) > 1000 for _, _, path in jobs)

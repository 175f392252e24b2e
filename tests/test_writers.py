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

r"""Trains one experiment: `python -m dljax.main --config=configs/X.py[:arg] --workdir=DIR`.

Any config field can be overridden, e.g. `--config.optimizer.learning_rate=0.1`. Running again
on a workdir that has checkpoints resumes from the newest intact one, if the config is the one
it was trained with (how long to train, how often to log and where the data lives may change);
`--allow_changes` resumes with another config anyway, `--restart` starts over. A mistake in the
config stops the run before training with one line naming the key, the value and what is allowed
(exit code 2); a workdir another run is using, or a training that diverged, stops it with one
line too (exit code 1).
"""

import json
import sys

from absl import app, flags, logging

from dljax import config_lib, evaluation, sharding, train
from dljax.errors import ConfigError, DataError, RunError

_CONFIG = flags.DEFINE_string(
    "config", None, "Experiment config file[:arg]; override fields with --config.KEY=VALUE.")
_WORKDIR = flags.DEFINE_string("workdir", None, "Directory for checkpoints, metrics and results.")
_DISTRIBUTED = flags.DEFINE_bool(
    "distributed", False,
    "Call jax.distributed.initialize() (automatic under SLURM and on TPU pods).")
_COORDINATOR = flags.DEFINE_string(
    "coordinator_address", None, "host:port of process 0, for a multi-process run without SLURM.")
_NUM_PROCESSES = flags.DEFINE_integer("num_processes", None, "Processes in a multi-process run.")
_PROCESS_ID = flags.DEFINE_integer("process_id", None, "This process's index (multi-process).")
_MODE = flags.DEFINE_enum(
    "mode", "train", ["train", "evaluate"],
    "train: train (or resume) in --workdir. evaluate: score the run in --workdir on the data of "
    "--config (another data set or split) into WORKDIR/eval_NAME.json, without training.")
_EVAL_NAME = flags.DEFINE_string("eval_name", "",
                                 "--mode=evaluate: NAME (default: the data set's name).")
_EVAL_SPLIT = flags.DEFINE_enum("eval_split", "test", list(evaluation.SPLITS),
                                "--mode=evaluate: the split of --config's data to score.")
_RESTART = flags.DEFINE_bool(
    "restart", False, "Delete what an earlier run left in --workdir and train from scratch.")
_ALLOW_CHANGES = flags.DEFINE_bool(
    "allow_changes", False,
    "Resume from the workdir's checkpoints although the config differs from the one that "
    "trained them (e.g. a lower learning rate after a divergence); config.json records it.")
flags.mark_flags_as_required(["config", "workdir"])

_OVERRIDE_PREFIX = "--config."
_overrides: list[str] = []


def _parse_flags(argv: list[str]) -> list[str]:
  """absl parses the plain flags; `--config.KEY=VALUE` overrides are kept for `config_lib`."""
  _overrides.extend(a for a in argv[1:] if a.startswith(_OVERRIDE_PREFIX))
  return app.parse_flags_with_usage([a for a in argv if not a.startswith(_OVERRIDE_PREFIX)])


def _fail(error: Exception, code: int) -> None:
  print(f"dljax: error: {error}", file=sys.stderr)
  sys.exit(code)


def main(argv: list[str]) -> None:
  if len(argv) > 1:
    raise app.UsageError(f"unexpected arguments: {' '.join(argv[1:])}")
  if not flags.FLAGS["verbosity"].present:
    # Orbax logs every save at INFO; the progress bar and metrics files say what matters.
    logging.set_verbosity(logging.WARNING)
  sharding.maybe_initialize_distributed(
      _DISTRIBUTED.value, _COORDINATOR.value, _NUM_PROCESSES.value, _PROCESS_ID.value)
  try:
    config = config_lib.load(_CONFIG.value)
    for item in _overrides:
      key, has_value, value = item.removeprefix(_OVERRIDE_PREFIX).partition("=")
      if not has_value:
        raise ConfigError(f"{item}: needs a value, e.g. {item}=VALUE")
      config_lib.override(config, key, value)
    if _MODE.value == "evaluate":
      evaluated = evaluation.evaluate(config, _WORKDIR.value, _EVAL_NAME.value, _EVAL_SPLIT.value)
      print(json.dumps(evaluated["metrics"], indent=2))
      return
    results = train.run(config, _WORKDIR.value, restart=_RESTART.value,
                        allow_changes=_ALLOW_CHANGES.value)
  except (ConfigError, DataError) as error:
    _fail(error, 2)
  except RunError as error:
    _fail(error, 1)
  if results is None:
    logging.warning("Stopped by a signal after a checkpoint; run the same command to resume.")


if __name__ == "__main__":
  app.run(main, flags_parser=_parse_flags)

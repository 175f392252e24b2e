"""The one trainer: jit, sharding, the loop, evaluation, early stopping, checkpoints, results.

`run(config, workdir)` reads top to bottom as a run happens:
  1. validate the config and load the data (any mistake stops here, before compiling);
  2. build the task and compile its steps for the mesh;
  3. start from the latest checkpoint in the workdir, or from scratch;
  4. train: log, evaluate, stop early and checkpoint on schedule; SIGTERM checkpoints and exits;
  5. test the best (or last) state and write results.json and curves.png.

Every random number comes from one root seed, split into named streams and folded with the step
or epoch, so a resumed run replays exactly what an uninterrupted run would have done.
"""

import json
import os
import platform
import signal
import time
from typing import Any

import jax
import jax.numpy as jnp
import ml_collections
import numpy as np
from jax.experimental import multihost_utils

import dljax
from dljax import checkpoint, config_lib, data, plots, sharding, tasks, writers
from dljax.data import pipeline
from dljax.errors import ConfigError

# Named random streams: fold_in(root, id). Fixed ids keep old runs reproducible as streams grow.
STREAMS = {"params": 0, "train": 1, "data": 2}


def run(config: ml_collections.ConfigDict, workdir: str) -> dict[str, Any] | None:
  """Trains `config` in `workdir` and returns results.json's contents (None if preempted)."""
  # 1. Config and data. -------------------------------------------------------------------------
  config_lib.validate(config)
  mesh = sharding.make_mesh()
  splits = data.load(config.data, config.seed)
  train_data = pipeline.make(splits.train, mesh, config.data)
  eval_data = {name: pipeline.make(split, mesh, config.data)
               for name, split in (("validation", splits.validation), ("test", splits.test))
               if split is not None}
  batch_size = config.batch_size
  eval_batch_size = config.eval_batch_size or batch_size
  steps_per_epoch = train_data.num_examples // batch_size
  if steps_per_epoch == 0:
    raise ConfigError(f"config.batch_size={batch_size}: larger than the "
                      f"{train_data.num_examples} train examples")
  total_steps = config.num_steps or max(1, round(config.num_epochs * steps_per_epoch))
  eval_every = config.eval_every_steps or max(1, round(config.eval_every_epochs * steps_per_epoch))
  root = jax.random.key(config.seed)
  params_key, train_key, data_key = (jax.random.fold_in(root, STREAMS[name])
                                     for name in ("params", "train", "data"))

  # 2. The task, compiled for the mesh. ----------------------------------------------------------
  task = tasks.build(config, splits, total_steps)
  replicated = sharding.replicated(mesh)
  example_batch = train_data.train_batch(data_key, 0, batch_size)
  abstract_state = checkpoint.abstract_like(
      jax.eval_shape(task.init, params_key, example_batch), replicated)
  example_eval_batch = next(next(iter(eval_data.values())).eval_batches(eval_batch_size))
  stopping = config.early_stopping
  track_best = "validation" in eval_data
  metric_names = jax.eval_shape(task.eval_step, abstract_state, example_eval_batch[0])
  if track_best and stopping.metric not in metric_names:
    raise ConfigError(f"config.early_stopping.metric={stopping.metric!r}: not a metric of task "
                      f"{config.task!r}; allowed: {', '.join(sorted(metric_names))}")

  def train_step(state, batch, step):
    return task.train_step(state, batch, jax.random.fold_in(train_key, step))

  def eval_sums(state, batch, mask_B):
    metrics = task.eval_step(state, batch)
    return {name: jnp.sum(jnp.where(mask_B, value_B, 0.0)) for name, value_B in metrics.items()}

  compile_start = time.perf_counter()
  init = jax.jit(task.init, out_shardings=replicated)
  train_step = jax.jit(train_step, donate_argnums=0, out_shardings=replicated).lower(
      abstract_state, example_batch, np.int32(0)).compile()
  eval_sums = jax.jit(eval_sums, out_shardings=replicated).lower(
      abstract_state, *example_eval_batch).compile()
  compile_seconds = time.perf_counter() - compile_start

  def evaluate(state, split: str) -> dict[str, float]:
    sums = [eval_sums(state, batch, mask) for batch, mask in eval_data[split].eval_batches(
        eval_batch_size)]
    totals = {name: sum(float(s[name]) for s in jax.device_get(sums)) for name in sums[0]}
    return {name: total / eval_data[split].num_examples for name, total in totals.items()}

  # 3. Start or resume. --------------------------------------------------------------------------
  os.makedirs(workdir, exist_ok=True)
  _write_json(os.path.join(workdir, "config.json"), _run_info(config))
  checkpointer = checkpoint.Checkpointer(
      os.path.join(workdir, "checkpoints"), stopping.metric if track_best else None, stopping.mode)
  writer = writers.MetricWriter(workdir)
  start_step = checkpointer.latest_step()
  if start_step is None:
    state = init(params_key, example_batch)
    meta = {"step": 0, "seed": config.seed, "best": None, "evals_without_improvement": 0,
            "stopped_early": False, "train_seconds": 0.0}
  else:
    state, meta = checkpointer.restore(start_step, abstract_state)
    if meta["seed"] != config.seed:
      raise ConfigError(f"config.seed={config.seed}: the checkpoints in {workdir} were trained "
                        f"with seed {meta['seed']}; use that seed or a new workdir")
    writer.truncate_after(start_step)

  # 4. Train. ------------------------------------------------------------------------------------
  preempted = _PreemptionFlag()
  progress = writers.Progress(total_steps, meta["step"])
  window = []  # train metrics (on device) since the last log line
  step = first_step = meta["step"]
  segment_start = time.perf_counter()  # train time excludes evaluation and checkpointing
  while step < total_steps and not meta["stopped_early"]:
    batch = train_data.train_batch(data_key, step, batch_size)
    state, metrics = train_step(state, batch, np.int32(step))
    step += 1
    window.append(metrics)
    is_eval = step % eval_every == 0 or step == total_steps
    stop = False
    if step % config.log_every_steps == 0 or is_eval:
      # Logs close at every evaluation too, and SIGTERM is only acted on when a log closes, so
      # log windows line up however often a run is stopped and resumed.
      means = {name: float(np.mean([m[name] for m in jax.device_get(window)])) for name in metrics}
      writer.write(step, "train", means)
      progress.update(len(window), means)
      window = []
      stop = preempted(step)
    if is_eval or stop:
      jax.block_until_ready(state)
      meta.update(step=step,
                  train_seconds=meta["train_seconds"] + time.perf_counter() - segment_start)
      validation = evaluate(state, "validation") if is_eval and track_best else None
      if validation is not None:
        writer.write(step, "validation", validation)
        _update_early_stopping(meta, validation, step, stopping)
      checkpointer.save(step, state, meta, validation)
      segment_start = time.perf_counter()
    if stop:
      checkpointer.wait()
      progress.close()
      writer.close()
      return None
  progress.close()
  checkpointer.wait()
  steps_run = step - first_step

  # 5. Test and write results. -------------------------------------------------------------------
  best = meta["best"]
  if stopping.restore_best and best is not None and best["step"] != step:
    state, _ = checkpointer.restore(best["step"], abstract_state)
  test_start = time.perf_counter()
  test = evaluate(state, "test")
  test_seconds = time.perf_counter() - test_start
  if task.analyze is not None:
    outputs, examples = _gather_test(state, task, eval_data["test"], eval_batch_size)
    if jax.process_index() == 0:
      test.update(task.analyze(outputs, examples, workdir))
  results = {
      "best_validation": best and {
          "metric": stopping.metric, "mode": stopping.mode, "value": best["value"],
          "step": best["step"], "epoch": best["step"] / steps_per_epoch,
          "metrics": best["metrics"]},
      "test": test,
      "tested_step": best["step"] if stopping.restore_best and best else step,
      "steps": step,
      "epochs": step / steps_per_epoch,
      "stopped_early": meta["stopped_early"],
      "parameters": int(sum(np.prod(x.shape) for x in jax.tree.leaves(state.params))),
      "train_seconds": meta["train_seconds"],
      "compile_seconds": compile_seconds,
      "examples_per_second": steps_run * batch_size / meta["train_seconds"] if steps_run else None,
      "inference_ms_per_example": 1000 * test_seconds / eval_data["test"].num_examples,
  }
  writer.write(step, "test", test)
  writer.close()
  checkpointer.close()
  if jax.process_index() == 0:
    _write_json(os.path.join(workdir, "results.json"), results)
    plots.curves(writers.read_metrics(workdir), steps_per_epoch,
                 os.path.join(workdir, "curves.png"))
  return results


def _gather_test(state, task: tasks.Task, test_data, batch_size: int):
  """Per-example `eval_step` outputs and the test examples themselves, on the host, in order.

  Reads the examples back from the eval batches, so it works for either input pipeline and for
  any number of processes (each batch is gathered from all of them).
  """
  eval_step = jax.jit(task.eval_step)
  outputs, examples = [], []
  for batch, mask_B in test_data.eval_batches(batch_size):
    batch_outputs, batch, mask_B = multihost_utils.process_allgather(
        (eval_step(state, batch), batch, mask_B), tiled=True)
    outputs.append({name: value[mask_B] for name, value in batch_outputs.items()})
    examples.append({name: value[mask_B] for name, value in batch.items()})
  concatenate = lambda parts: {name: np.concatenate([p[name] for p in parts]) for name in parts[0]}
  return concatenate(outputs), concatenate(examples)


def _update_early_stopping(meta: dict, validation: dict[str, float], step: int,
                           stopping: ml_collections.ConfigDict) -> None:
  """Tracks the best validation value; stops after `patience` evaluations without a better one."""
  value = validation[stopping.metric]
  best = meta["best"]
  improved = best is None or (value < best["value"] if stopping.mode == "min"
                              else value > best["value"])
  if improved:
    meta["best"] = {"value": value, "step": step, "metrics": validation}
    meta["evals_without_improvement"] = 0
  else:
    meta["evals_without_improvement"] += 1
  meta["stopped_early"] = bool(stopping.patience and
                               meta["evals_without_improvement"] >= stopping.patience)


class _PreemptionFlag:
  """True once SIGTERM (or SIGUSR2, SLURM's time-limit warning as submitit asks for it) has
  arrived, on every process at the same step.

  A single process just checks a flag its handler set. Several processes must agree on the step
  they checkpoint at (the save is collective), which JAX's preemption sync point arranges.
  """

  def __init__(self):
    self._received = False
    self._multi_process = jax.process_count() > 1
    if not self._multi_process:
      for signum in (signal.SIGTERM, signal.SIGUSR2):
        signal.signal(signum, self._handle)

  def _handle(self, signum, frame):
    del signum, frame
    self._received = True

  def __call__(self, step: int) -> bool:
    if self._multi_process:
      return multihost_utils.reached_preemption_sync_point(step)
    return self._received


def _run_info(config: ml_collections.ConfigDict) -> dict[str, Any]:
  devices = jax.devices()
  return {
      "config": config.to_dict(),
      "dljax_version": dljax.__version__,
      "jax_version": jax.__version__,
      "python_version": platform.python_version(),
      "platform": devices[0].platform,
      "device_kind": devices[0].device_kind,
      "device_count": len(devices),
      "process_count": jax.process_count(),
  }


def _write_json(path: str, value: Any) -> None:
  """Writes atomically: a crash leaves the old file or the new one, never half of one."""
  if jax.process_index() != 0:
    return
  with open(path + ".tmp", "w") as f:
    json.dump(value, f, indent=2)
  os.replace(path + ".tmp", path)

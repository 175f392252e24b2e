"""The one trainer: jit, sharding, the loop, evaluation, early stopping, checkpoints, results.

`run(config, workdir)` trains one config. `run_together(configs, workdirs)` trains several that
differ only in values (seeds, learning rates, dropout rates, ...; `dljax.trials`) at once: their
states stacked, every step vmapped, each trial's files in its own workdir; `run` is its one-trial
case. It reads top to bottom as a run happens:
  1. validate the config and load the data (any mistake stops here, before compiling);
  2. build the task and compile its steps for the mesh;
  3. start from the latest checkpoint in the workdir, or from scratch;
  4. train: log, evaluate, stop early and checkpoint on schedule; SIGTERM checkpoints and exits;
  5. test the best (or last) state and write results.json and curves.png.

Every random number comes from one root seed, split into named streams and folded with the step
or epoch, so a resumed run replays exactly what an uninterrupted run would have done.
"""

import dataclasses
import json
import os
import platform
import signal
import time
from collections.abc import Sequence
from typing import Any

import jax
import jax.numpy as jnp
import ml_collections
import numpy as np
from jax.experimental import multihost_utils

import dljax
from dljax import checkpoint, config_lib, data, plots, sharding, tasks, trials, writers
from dljax.data import pipeline
from dljax.errors import ConfigError

# Named random streams: fold_in(root, id). Fixed ids keep old runs reproducible as streams grow.
STREAMS = {"params": 0, "train": 1, "data": 2}
Batch = dict[str, jax.Array]


def run(config: ml_collections.ConfigDict, workdir: str) -> dict[str, Any] | None:
  """Trains `config` in `workdir` and returns results.json's contents (None if preempted)."""
  return run_together([config], [workdir])[0]


@dataclasses.dataclass
class _Trial:
  """One trial's own part of a run: its config, workdir, files and progress."""
  config: ml_collections.ConfigDict
  workdir: str
  checkpointer: checkpoint.Checkpointer
  writer: writers.MetricWriter
  meta: dict[str, Any]  # saved with each checkpoint: step, seed, best, early stopping, seconds

  @property
  def active(self) -> bool:
    return not self.meta["stopped_early"]


def run_together(configs: Sequence[ml_collections.ConfigDict],
                 workdirs: Sequence[str]) -> list[dict[str, Any] | None]:
  """Trains trials that differ only in values (`trials.VALUE_KEYS`) together, one per workdir.

  The trials' states are stacked on a leading axis and every step is vmapped over it, in one
  jit; each workdir ends up as that trial's own `run` would leave it (within float rounding), so
  one trial is just `run`. Returns each trial's results (None for all if preempted).
  """
  # 1. Config and data. -------------------------------------------------------------------------
  if len(configs) != len(workdirs) or len({os.path.abspath(w) for w in workdirs}) < len(configs):
    raise ConfigError(f"{len(configs)} trials need {len(configs)} different workdirs, got "
                      f"{list(workdirs)}")
  for config in configs:
    config_lib.validate(config)
  values_K = trials.stacked_values(configs)  # {key: [K]}: what the task sees differ
  config = configs[0]  # all else is the same for every trial
  num_trials = len(configs)
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
  replicated = sharding.replicated(mesh)
  stack = trials.Stack(num_trials, replicated)
  roots = [jax.random.key(c.seed) for c in configs]
  params_key_K = sharding.put_replicated(stack.stack(
      [jax.random.fold_in(root, STREAMS["params"]) for root in roots], replicated), mesh)
  # The train keys and the values are constants of the compiled step, not arguments: passing
  # them every step cost the MNIST MLP 8% of its examples/s.
  train_keys = [jax.random.fold_in(root, STREAMS["train"]) for root in roots]
  train_key_K = train_keys[0] if num_trials == 1 else jnp.stack(train_keys)
  # Trials with one seed see the same batches: one batch then serves them all.
  data_keys = [jax.random.fold_in(root, STREAMS["data"]) for root in roots]
  shared_batches = len({c.seed for c in configs}) == 1
  batch_axis = None if shared_batches else 0

  def train_feed(step: int):
    """What the host sends the train step for its batch (`pipeline`: indices or the batch)."""
    if shared_batches:
      return train_data.train_feed(data_keys[0], step, batch_size)
    return stack.stack([train_data.train_feed(key, step, batch_size) for key in data_keys],
                       sharding.data_sharded(mesh, axis=1))

  # 2. The task, built inside the trace from each trial's values, compiled for the mesh. --------
  task = tasks.build(config, splits, total_steps)

  def task_with(values):
    """The task of one trial, its values traced; the one task when all trials share them."""
    return tasks.build(trials.with_values(config, values), splits, total_steps) if values else task

  def init(params_key_K, batch):
    return stack.vmap(lambda values, params_key, batch: task_with(values).init(params_key, batch),
                      in_axes=(0, 0, batch_axis))(values_K, params_key_K, batch)

  def train_step(state, data_arrays, feed, step):
    # The batch is made inside the step (for data on the devices, gathered): one dispatch a step.
    batch = train_data.batch_from(data_arrays, feed)
    # A trial that stopped early trains on with the others (no masking: it would cost every
    # step); its results come from its checkpoints, the last of which it saved when it stopped.
    return stack.vmap(lambda values, train_key, state, batch: task_with(values).train_step(
        state, batch, jax.random.fold_in(train_key, step)),
        in_axes=(0, 0, 0, batch_axis))(values_K, train_key_K, state, batch)

  def eval_sums(state, batch, mask_B):
    metrics = stack.vmap(lambda values, state: task_with(values).eval_step(state, batch),
                         in_axes=(0, 0))(values_K, state)
    return {name: jnp.sum(jnp.where(mask_B, value_B, 0.0), axis=-1)
            for name, value_B in metrics.items()}

  example_feed = train_feed(0)
  example_batch = jax.jit(train_data.batch_from)(train_data.arrays, example_feed)
  example_eval_batch = next(next(iter(eval_data.values())).eval_batches(eval_batch_size))
  compile_start = time.perf_counter()
  try:
    init = jax.jit(init, out_shardings=replicated)
    abstract_state = checkpoint.abstract_like(
        jax.eval_shape(init, params_key_K, example_batch), replicated)
    train_step = jax.jit(train_step, donate_argnums=0, out_shardings=replicated).lower(
        abstract_state, train_data.arrays, example_feed, np.int32(0)).compile()
    eval_sums = jax.jit(eval_sums, out_shardings=replicated).lower(
        abstract_state, *example_eval_batch).compile()
  except jax.errors.ConcretizationTypeError as error:
    raise ConfigError(f"trials differing in {', '.join(values_K)} cannot train together: the "
                      f"task needs one of them as a Python number ({error})") from None
  compile_seconds = time.perf_counter() - compile_start
  abstract_trial_state = stack.one(abstract_state)  # what a trial's checkpoints hold
  stopping = config.early_stopping
  track_best = "validation" in eval_data
  metric_names = jax.eval_shape(task.eval_step, abstract_trial_state, example_eval_batch[0])
  if track_best and stopping.metric not in metric_names:
    raise ConfigError(f"config.early_stopping.metric={stopping.metric!r}: not a metric of task "
                      f"{config.task!r}; allowed: {', '.join(sorted(metric_names))}")

  def evaluate(state, split: str) -> list[dict[str, float]]:
    """Each trial's mean metrics on `split`."""
    sums = jax.device_get([eval_sums(state, batch, mask)
                           for batch, mask in eval_data[split].eval_batches(eval_batch_size)])
    totals_K = {name: np.sum([stack.per_trial(s[name]) for s in sums], axis=0)
                for name in sums[0]}
    return [{name: float(total_K[k]) / eval_data[split].num_examples
             for name, total_K in totals_K.items()} for k in range(num_trials)]

  # 3. Start or resume. --------------------------------------------------------------------------
  runs = []
  for trial_config, workdir in zip(configs, workdirs, strict=True):
    os.makedirs(workdir, exist_ok=True)
    _write_json(os.path.join(workdir, "config.json"), _run_info(trial_config, num_trials))
    runs.append(_Trial(
        config=trial_config, workdir=workdir,
        # Trials trained together keep two latest checkpoints: a crash between two trials'
        # saves leaves the previous step for every trial to resume from.
        checkpointer=checkpoint.Checkpointer(
            os.path.join(workdir, "checkpoints"), stopping.metric if track_best else None,
            stopping.mode, keep_latest=1 if num_trials == 1 else 2),
        writer=writers.MetricWriter(workdir),
        meta={"step": 0, "seed": trial_config.seed, "best": None, "evals_without_improvement": 0,
              "stopped_early": False, "train_seconds": 0.0}))
  state, step = _start(runs, abstract_trial_state,
                       lambda states: stack.stack(states, replicated),
                       lambda: init(params_key_K, example_batch))

  # 4. Train. ------------------------------------------------------------------------------------
  preempted = _PreemptionFlag()
  progress = writers.Progress(total_steps, step)
  window = []  # train metrics (on device) since the last log line
  first_step = step
  segment_start = time.perf_counter()  # train time excludes evaluation and checkpointing
  while step < total_steps and any(r.active for r in runs):
    state, metrics = train_step(state, train_data.arrays, train_feed(step), np.int32(step))
    step += 1
    window.append(metrics)
    is_eval = step % eval_every == 0 or step == total_steps
    stop = False
    if step % config.log_every_steps == 0 or is_eval:
      # Logs close at every evaluation too, and SIGTERM is only acted on when a log closes, so
      # log windows line up however often a run is stopped and resumed.
      means_K = {name: np.mean([stack.per_trial(m[name]) for m in jax.device_get(window)],
                               axis=0) for name in metrics}
      for k, run_k in enumerate(runs):
        if run_k.active:
          run_k.writer.write(step, "train", {name: float(m[k]) for name, m in means_K.items()})
      progress.update(len(window), {name: float(np.mean([m[k] for k, r in enumerate(runs)
                                                          if r.active]))
                                    for name, m in means_K.items()})
      window = []
      stop = preempted(step)
    if is_eval or stop:
      jax.block_until_ready(state)
      seconds = time.perf_counter() - segment_start
      validation = evaluate(state, "validation") if is_eval and track_best else None
      for k, run_k in enumerate(runs):
        if not run_k.active:
          continue
        run_k.meta.update(step=step, train_seconds=run_k.meta["train_seconds"] + seconds)
        if validation is not None:
          run_k.writer.write(step, "validation", validation[k])
          _update_early_stopping(run_k.meta, validation[k], step, stopping)
        run_k.checkpointer.save(step, stack.take(state, k), run_k.meta,
                                validation and validation[k])
      segment_start = time.perf_counter()
    if stop:
      for run_k in runs:
        run_k.checkpointer.wait()
        run_k.writer.close()
      progress.close()
      return [None] * num_trials
  progress.close()
  for run_k in runs:
    run_k.checkpointer.wait()

  # 5. Test and write results. -------------------------------------------------------------------
  tested_states = []
  for k, run_k in enumerate(runs):
    best, last_step = run_k.meta["best"], run_k.meta["step"]
    run_k.meta["tested_step"] = (best["step"] if stopping.restore_best and best is not None
                                 else last_step)
    tested_states.append(
        stack.take(state, k) if run_k.meta["tested_step"] == step
        else run_k.checkpointer.restore(run_k.meta["tested_step"], abstract_trial_state)[0])
  state = stack.stack(tested_states, replicated)
  test_start = time.perf_counter()
  tests = evaluate(state, "test")
  test_seconds = time.perf_counter() - test_start
  results = []
  for k, run_k in enumerate(runs):
    test, meta = tests[k], run_k.meta
    if task.analyze is not None:
      outputs, examples = _gather_test(tested_states[k], task, eval_data["test"], eval_batch_size)
      if jax.process_index() == 0:
        test.update(task.analyze(outputs, examples, run_k.workdir))
    best, steps_run = meta["best"], meta["step"] - first_step
    results.append({
        "best_validation": best and {
            "metric": stopping.metric, "mode": stopping.mode, "value": best["value"],
            "step": best["step"], "epoch": best["step"] / steps_per_epoch,
            "metrics": best["metrics"]},
        "test": test,
        "tested_step": meta["tested_step"],
        "steps": meta["step"],
        "epochs": meta["step"] / steps_per_epoch,
        "stopped_early": meta["stopped_early"],
        "parameters": int(sum(np.prod(x.shape) for x in jax.tree.leaves(tested_states[k].params))),
        "train_seconds": meta["train_seconds"],
        "compile_seconds": compile_seconds,
        "examples_per_second": (steps_run * batch_size / meta["train_seconds"]
                                if steps_run > 0 else None),
        "inference_ms_per_example": 1000 * test_seconds / num_trials / eval_data[
            "test"].num_examples,
        "trials_together": num_trials,
    })
    run_k.writer.write(meta["step"], "test", test)
    run_k.writer.close()
    run_k.checkpointer.close()
    if jax.process_index() == 0:
      _write_json(os.path.join(run_k.workdir, "results.json"), results[-1])
      plots.curves(writers.read_metrics(run_k.workdir), steps_per_epoch,
                   os.path.join(run_k.workdir, "curves.png"))
  return results


def _start(runs: list[_Trial], abstract_trial_state, stack_states, init) -> tuple[Any, int]:
  """The trials' stacked state and the step to go on from: their checkpoints, or `init()`.

  Trials still training resume from the latest step all of them have (they save together;
  a crash between two saves leaves one trial a step ahead, and its later checkpoints are
  dropped: they will be made again, the same). A trial that stopped early resumes stopped.
  """
  latest = [r.checkpointer.latest_step() for r in runs]
  if all(step is None for step in latest):
    return init(), 0
  if None in latest:
    raise ConfigError(
        f"{runs[latest.index(None)].workdir} has no checkpoints but {runs[0].workdir} has: "
        "trials trained together resume together; train the new ones separately")
  metas = [r.checkpointer.restore_meta(s) for r, s in zip(runs, latest, strict=True)]
  still_training = [s for s, meta in zip(latest, metas, strict=True) if not meta["stopped_early"]]
  step = min(still_training, default=max(latest))
  states = []
  for run_k, latest_k, meta in zip(runs, latest, metas, strict=True):
    resume_step = latest_k if meta["stopped_early"] else step
    if resume_step not in run_k.checkpointer.all_steps():
      raise ConfigError(f"{run_k.workdir}: no checkpoint at step {resume_step}, where the trials "
                        f"trained with it resume; train it separately")
    run_k.checkpointer.delete_after(resume_step)
    state_k, run_k.meta = run_k.checkpointer.restore(resume_step, abstract_trial_state)
    if run_k.meta["seed"] != run_k.config.seed:
      raise ConfigError(f"config.seed={run_k.config.seed}: the checkpoints in {run_k.workdir} "
                        f"were trained with seed {run_k.meta['seed']}; use that seed or a new "
                        "workdir")
    run_k.writer.truncate_after(resume_step)
    states.append(state_k)
  return stack_states(states), step


def _gather_test(state, task: tasks.Task, test_data, batch_size: int):
  """Per-example `predict` (else `eval_step`) outputs and the test examples, on the host, in order.

  Reads the examples back from the eval batches, so it works for either input pipeline and for
  any number of processes (each batch is gathered from all of them).
  """
  predict = jax.jit(task.predict or task.eval_step)
  outputs, examples = [], []
  for batch, mask_B in test_data.eval_batches(batch_size):
    batch_outputs, batch, mask_B = multihost_utils.process_allgather(
        (predict(state, batch), batch, mask_B), tiled=True)
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


def _run_info(config: ml_collections.ConfigDict, trials_together: int) -> dict[str, Any]:
  devices = jax.devices()
  return {
      "config": config.to_dict(),
      "trials_together": trials_together,
      "dljax_version": dljax.__version__,
      "jax_version": jax.__version__,
      "python_version": platform.python_version(),
      "platform": devices[0].platform,
      "device_kind": devices[0].device_kind,
      "device_count": len(devices),
      "process_count": jax.process_count(),
      # Process settings that change speed, not results (dljax/__init__.py sets both).
      "xla_flags": os.environ.get("XLA_FLAGS", ""),
      "glibc_tunables": os.environ.get("GLIBC_TUNABLES", ""),
  }


def _write_json(path: str, value: Any) -> None:
  """Writes atomically: a crash leaves the old file or the new one, never half of one."""
  if jax.process_index() != 0:
    return
  with open(path + ".tmp", "w") as f:
    json.dump(value, f, indent=2)
  os.replace(path + ".tmp", path)

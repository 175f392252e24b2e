"""The one trainer: jit, sharding, the loop, evaluation, early stopping, checkpoints, results.

`run(config, workdir)` trains one config. `run_together(configs, workdirs)` trains several that
differ only in values (seeds, learning rates, dropout rates, ...; `dljax.trials`) at once: their
states stacked, every step vmapped, each trial's files in its own workdir; `run` is its one-trial
case. It reads top to bottom as a run happens:
  1. validate the config, claim the workdir, load the data (any mistake stops here);
  2. build the task and compile its steps for the mesh;
  3. start from the newest intact checkpoint in the workdir, or from scratch (or pretrained);
  4. train: log, stop on divergence, evaluate, stop early and checkpoint on schedule; SIGTERM
     checkpoints and returns;
  5. test the best (or last) state, on the test split and any `data.extra_tests`, and write
     results.json and curves.png.

Every random number comes from one root seed, split into named streams and folded with the step
or epoch, so a resumed run replays exactly what an uninterrupted run would have done.
"""

import contextlib
import dataclasses
import math
import os
import platform
import signal
import time
from collections.abc import Callable, Sequence
from typing import Any

import jax
import jax.numpy as jnp
import ml_collections
import numpy as np
from absl import logging
from jax.experimental import multihost_utils

import dljax
from dljax import checkpoint, config_lib, data, plots, pretrained, sharding, tasks, trials, writers
from dljax import workdir as workdir_lib
from dljax.data import pipeline
from dljax.errors import ConfigError, RunError

# Named random streams: fold_in(root, id). Fixed ids keep old runs reproducible as streams grow.
STREAMS = {"params": 0, "train": 1, "data": 2, "eval": 3, "evaluators": 4}
Batch = dict[str, jax.Array]


def run(config: ml_collections.ConfigDict, workdir: str, *, restart: bool = False,
        allow_changes: bool = False) -> dict[str, Any] | None:
  """Trains `config` in `workdir` and returns results.json's contents (None if preempted).

  A workdir with checkpoints resumes, if `config` is the one they were trained with (up to
  `workdir.RESUMABLE_KEYS`) or `allow_changes`; `restart` deletes the earlier run's files first.
  Raises RunError if the workdir is in use or training diverged.
  """
  return run_together([config], [workdir], restart=restart, allow_changes=allow_changes)[0]


def run_together(configs: Sequence[ml_collections.ConfigDict], workdirs: Sequence[str], *,
                 restart: bool = False, allow_changes: bool = False) -> list[dict[str, Any] | None]:
  """Trains trials that differ only in values (`trials.VALUE_KEYS`) together, one per workdir.

  The trials' states are stacked on a leading axis and every step is vmapped over it, in one
  jit; each workdir ends up as that trial's own `run` would leave it (within float rounding), so
  one trial is just `run`. Returns each trial's results (None for all if preempted). A trial
  that diverges stops; the others finish, and then RunError names it.
  """
  with contextlib.ExitStack() as held:  # the workdir locks and the signal handlers
    return _train(configs, workdirs, restart, allow_changes, held)


@dataclasses.dataclass
class _Trial:
  """One trial's own part of a run: its config, workdir, files and progress."""
  config: ml_collections.ConfigDict
  workdir: str
  checkpointer: checkpoint.Checkpointer
  writer: writers.MetricWriter
  changes: dict[str, list[Any]]  # config keys changed since its checkpoints: {key: [old, new]}
  # Saved with each checkpoint: the step, the best validation, early stopping, seconds trained.
  meta: dict[str, Any] = dataclasses.field(default_factory=lambda: {
      "step": 0, "best": None, "evals_without_improvement": 0, "stopped_early": False,
      "train_seconds": 0.0})
  diverged_at: int | None = None  # the step of its first non-finite train metric

  @property
  def active(self) -> bool:
    return not self.meta["stopped_early"] and self.diverged_at is None

  def close(self) -> None:
    self.writer.close()
    self.checkpointer.close()


class _Data:
  """The data side of a run: the splits as pipelines, and what each train step gets from the
  host. A task with no `data` section makes its own experience: no splits, empty batches."""

  def __init__(self, configs: Sequence[ml_collections.ConfigDict], mesh: jax.sharding.Mesh,
               stack: trials.Stack):
    config = configs[0]
    self.splits, self.train, self.eval = None, None, {}
    self.batch_size = config.batch_size
    self.eval_batch_size = config.eval_batch_size or config.batch_size
    self.steps_per_epoch = None
    if "data" not in config:
      return
    self.splits = data.load(config.data, config.seed)
    self.train = pipeline.make(self.splits.train, mesh, config.data)
    self.eval = {name: pipeline.make(split, mesh, config.data)
                 for name, split in (("validation", self.splits.validation),
                                     ("test", self.splits.test),
                                     *self.splits.extra_tests.items()) if split is not None}
    self.steps_per_epoch = self.train.num_examples // self.batch_size
    if self.steps_per_epoch == 0:
      raise ConfigError(f"config.batch_size={self.batch_size}: larger than the "
                        f"{self.train.num_examples} train examples")
    # Trials with one seed see the same batches: one batch then serves them all.
    self._data_keys = [jax.random.fold_in(jax.random.key(c.seed), STREAMS["data"])
                       for c in configs]
    self.shared_batches = len({c.seed for c in configs}) == 1
    self._stack, self._mesh = stack, mesh

  @property
  def arrays(self) -> data.Arrays:
    """What the train step takes whole each step: the train split where it lives on devices."""
    return self.train.arrays if self.train else {}

  @property
  def batch_axis(self) -> int | None:
    """The trials' axis of a train batch: 0 where trials draw batches of their own."""
    return None if self.train is None or self.shared_batches else 0

  def total_steps(self, config: ml_collections.ConfigDict) -> int:
    return config.num_steps or max(1, round(config.num_epochs * self.steps_per_epoch))

  def eval_every(self, config: ml_collections.ConfigDict) -> int:
    return config.eval_every_steps or max(1, round(config.eval_every_epochs *
                                                   self.steps_per_epoch))

  def epochs(self, step: int) -> float | None:
    return step / self.steps_per_epoch if self.steps_per_epoch else None

  def feed(self, step: int) -> Any:
    """What the host sends the train step for its batch (`pipeline`: indices or the batch)."""
    if self.train is None:
      return None
    if self.shared_batches:
      return self.train.train_feed(self._data_keys[0], step, self.batch_size)
    feeds = [self.train.train_feed(key, step, self.batch_size) for key in self._data_keys]
    return self._stack.stack(feeds, sharding.data_sharded(self._mesh, axis=1))

  def feeds(self, step: int, count: int) -> Any:
    """The feeds of steps `step` .. `step + count - 1`, stacked on a leading steps axis, for a
    compiled call that runs `count` steps."""
    feeds = [self.feed(s) for s in range(step, step + count)]
    return jax.tree.map(lambda *leaves: np.stack(leaves) if isinstance(leaves[0], np.ndarray)
                        else trials.stack_leading(leaves), *feeds)

  def batch_from(self, arrays: data.Arrays, feed: Any) -> Batch:
    """Inside jit: the batch of a feed (for data on the devices, gathered there)."""
    return {} if self.train is None else self.train.batch_from(arrays, feed)

  def example_eval_batch(self) -> tuple[Batch, jax.Array] | None:
    return next(next(iter(self.eval.values())).eval_batches(self.eval_batch_size)) if (
        self.eval) else None


def _train(configs, workdirs, restart: bool, allow_changes: bool,
           held: contextlib.ExitStack) -> list[dict[str, Any] | None]:
  # 1. Config, workdirs and data. ---------------------------------------------------------------
  if len(configs) != len(workdirs) or len({os.path.abspath(w) for w in workdirs}) < len(configs):
    raise ConfigError(f"{len(configs)} trials need {len(configs)} different workdirs, got "
                      f"{list(workdirs)}")
  for config in configs:
    config_lib.validate(config)
  preempted = held.enter_context(_PreemptionFlag())  # from here on SIGTERM stops cleanly
  changes = _claim(configs, workdirs, restart, allow_changes, held)
  values_K = trials.stacked_values(configs)  # {key: [K]}: what the task sees differ
  config = configs[0]  # all else is the same for every trial
  num_trials = len(configs)
  mesh = sharding.make_mesh()
  replicated = sharding.replicated(mesh)
  # A task with no data set has no batch to split over the devices, so its trials are split
  # instead, where the devices divide them: each device steps its share (DQN's 128 trials on 2
  # CPU devices, XLA_FLAGS=--xla_force_host_platform_device_count=2: 2x the trials a second of
  # one CPU device, whose XLA threads gained nothing on the small per-trial work). In one
  # process, which holds every trial to write its files.
  devices = mesh.devices.size
  stack = trials.Stack(num_trials, mesh, split="data" not in config and devices > 1 and (
      num_trials % devices == 0) and jax.process_count() == 1)
  feed = _Data(configs, mesh, stack)
  total_steps, eval_every = feed.total_steps(config), feed.eval_every(config)
  roots = [jax.random.key(c.seed) for c in configs]
  params_key_K = sharding.put_replicated(stack.stack(
      [jax.random.fold_in(root, STREAMS["params"]) for root in roots], replicated), mesh)
  # The train and eval keys and the values are constants of the compiled steps, not arguments:
  # passing them every step cost the MNIST MLP 8% of its examples/s.
  stream_keys = lambda name: [jax.random.fold_in(root, STREAMS[name]) for root in roots]
  train_key_K, eval_key_K = (keys[0] if num_trials == 1 else jnp.stack(keys)
                             for keys in (stream_keys("train"), stream_keys("eval")))
  evaluator_keys = stream_keys("evaluators")

  # 2. The task, built inside the trace from each trial's values, compiled for the mesh. --------
  task = tasks.build(config, feed.splits, total_steps)

  def task_with(values) -> tasks.Task:
    """The task of one trial, its values traced; the one task when all trials share them."""
    return tasks.build(trials.with_values(config, values), feed.splits, total_steps) if (
        values) else task

  def init(params_key_K, batch):
    return stack.vmap(lambda values, params_key, batch: task_with(values).init(params_key, batch),
                      in_axes=(0, 0, feed.batch_axis))(values_K, params_key_K, batch)

  def train_step(state, data_arrays, batch_feed, step):
    # The batch is made inside the step (for data on the devices, gathered): one dispatch a step.
    batch = feed.batch_from(data_arrays, batch_feed)
    # A trial that stopped early trains on with the others (no masking: it would cost every
    # step); its results come from its checkpoints, the last of which it saved when it stopped.
    return stack.vmap(lambda values, train_key, state, batch: task_with(values).train_step(
        state, batch, jax.random.fold_in(train_key, step)),
        in_axes=(0, 0, 0, feed.batch_axis))(values_K, train_key_K, state, batch)

  def eval_sums(state, batch, mask_B, batch_index):
    return stack.vmap(lambda values, eval_key, state: masked_sums(
        task_with(values).eval_step, eval_key)(state, batch, mask_B, batch_index),
        in_axes=(0, 0, 0))(values_K, eval_key_K, state)

  def train_steps(state, data_arrays, feeds, first_step):
    # `steps_per_call` steps in one compiled call, a lax.scan: one dispatch (and one wake-up of
    # the host) for all of them. Each step is the step above, with its own feed and step number.
    return jax.lax.scan(
        lambda state, feed_and_step: train_step(state, data_arrays, *feed_and_step), state,
        (feeds, first_step + jnp.arange(config.steps_per_call, dtype=jnp.int32)))

  example_batch = jax.jit(feed.batch_from)(feed.arrays, feed.feed(0))
  example_eval_batch = feed.example_eval_batch()
  compile_start = time.perf_counter()
  with _traced_values(values_K):
    init = jax.jit(init, out_shardings=stack.sharding)
    abstract_state = checkpoint.abstract_like(
        jax.eval_shape(init, params_key_K, example_batch), stack.sharding)
    if example_eval_batch is not None:
      eval_sums = jax.jit(eval_sums, out_shardings=replicated).lower(
          abstract_state, *example_eval_batch, np.int32(0)).compile()
  compile_seconds = time.perf_counter() - compile_start
  compiled_calls = {}  # steps per call (1 or steps_per_call) -> the call, compiled when needed

  def train_call(count: int) -> Callable:
    nonlocal compile_seconds
    if count not in compiled_calls:
      start = time.perf_counter()
      with _traced_values(values_K):
        compiled_calls[count] = jax.jit(
            train_step if count == 1 else train_steps, donate_argnums=0,
            out_shardings=(stack.sharding, replicated)).lower(  # (state, metrics)
                abstract_state, feed.arrays,
                feed.feed(0) if count == 1 else feed.feeds(0, count), np.int32(0)).compile()
      compile_seconds += time.perf_counter() - start
    return compiled_calls[count]

  train_call(config.steps_per_call)  # compiled before anything is restored or trained
  abstract_trial_state = stack.one(abstract_state)  # what a trial's checkpoints hold
  stopping = config.early_stopping
  split_metric_names = _split_metric_names(task, abstract_trial_state, example_eval_batch)
  track_best = "validation" in feed.eval or bool(task.evaluators)
  if track_best and not task.evaluators and stopping.metric not in split_metric_names:
    raise ConfigError(f"config.early_stopping.metric={stopping.metric!r}: not a metric of task "
                      f"{config.task!r}; allowed: {', '.join(sorted(split_metric_names))}")

  def evaluate(state, split: str) -> list[dict[str, float]]:
    return split_metrics(eval_sums, state, task, feed.eval[split], feed.eval_batch_size, stack)

  def assess(state, split: str, step: int, runs: list[_Trial]) -> list[dict[str, float] | None]:
    """The metrics of each active trial on `split` ('validation' or 'test'): the split's, if
    the data has it, and the evaluators' (which also write their artefacts)."""
    metrics = evaluate(state, split) if split in feed.eval else [{} for _ in runs]
    for k, run_k in enumerate(runs):
      if not (run_k.active if split == "validation" else run_k.diverged_at is None):
        metrics[k] = None
        continue
      artefacts = writers.Artefacts(run_k.workdir, run_k.writer, step, split)
      for evaluator in task.evaluators:
        metrics[k].update(evaluator(stack.take(state, k), evaluator_keys[k], artefacts))
    return metrics

  # 3. Start or resume. --------------------------------------------------------------------------
  runs = [_Trial(config=c, workdir=w, changes=changes_k,
                 checkpointer=checkpoint.Checkpointer(os.path.join(w, "checkpoints")),
                 writer=writers.MetricWriter(w))
          for c, w, changes_k in zip(configs, workdirs, changes, strict=True)]
  state, step = _start(runs, abstract_trial_state, stack,
                       lambda: init(params_key_K, example_batch))
  for run_k in runs:
    writers.write_json(os.path.join(run_k.workdir, workdir_lib.CONFIG_FILE),
                _run_info(run_k, stack, step, feed.splits, example_batch,
                          example_axis=1 if feed.batch_axis is None else 2))

  # 4. Train. ------------------------------------------------------------------------------------
  startup_seconds = _seconds_since_process_start()  # the command to its first train step
  progress = writers.Progress(total_steps, step)
  window = []  # (steps, train metrics on device) of each call since the last log line
  unwritten = []  # (step, window) of logs closed but not yet written

  def write_logs() -> None:
    """Writes the closed logs: each active trial's train record (the means over its window)
    unless the window shows it diverged, and the progress bar."""
    for end_step, closed in unwritten:
      window_K = {name: np.concatenate([np.reshape(m[name], (steps, stack.size))
                                        for steps, m in jax.device_get(closed)])
                  for name in closed[0][1]}  # {name: [steps, K]}
      window_steps = sum(steps for steps, _ in closed)
      # Every trial's means and finiteness at once (a trial's values are a row: summed as
      # np.mean of its own values sums them).
      means_K = {name: np.ascontiguousarray(values.T).mean(axis=1)
                 for name, values in window_K.items()}
      finite_KS = np.all([np.isfinite(values.T) for values in window_K.values()], axis=0) if (
          window_K) else np.ones((stack.size, window_steps), bool)  # a task with no train metrics
      for k, run_k in enumerate(runs):
        if run_k.active:
          run_k.diverged_at = _first_non_finite(finite_KS[k], end_step - window_steps + 1)
          if run_k.active:
            run_k.writer.write(end_step, "train", {name: float(mean_K[k])
                                                   for name, mean_K in means_K.items()})
      active = [k for k, r in enumerate(runs) if r.active]
      progress.update(window_steps, {name: float(np.mean(values[:, active]))
                                     for name, values in window_K.items()} if active else None)
    unwritten.clear()

  def draw_curves() -> Callable[[], None]:
    """Starts drawing each trial's curves.png (but a diverged one's); returns a function that
    waits until they are drawn. Many trials' are drawn by worker processes while this one goes
    on (saves checkpoints, tests): the DQN study's 128 took 0.1 s of CPU each."""
    if jax.process_index() != 0:
      return lambda: None
    return plots.draw_curves([
        (writers.read_metrics(r.workdir), feed.steps_per_epoch,
         os.path.join(r.workdir, "curves.png")) for r in runs if r.diverged_at is None])

  curves_drawn = None  # once they are being drawn, the function that waits for them
  segment_start = time.perf_counter()  # train time excludes evaluation and checkpointing
  stop = preempted(step)  # SIGTERM while loading or compiling: nothing to save yet
  while not stop and step < total_steps and any(r.active for r in runs):
    # A call never runs past a log line, an evaluation or the end, so every run (resumed or
    # not) splits its steps into calls the same way.
    next_stop = min(_next_multiple(step, config.log_every_steps),
                    _next_multiple(step, eval_every), total_steps)
    count = config.steps_per_call if next_stop - step >= config.steps_per_call else 1
    state, metrics = train_call(count)(
        state, feed.arrays, feed.feed(step) if count == 1 else feed.feeds(step, count),
        np.int32(step))
    # The logs closed before this call are written while it runs: written before it (the
    # devices idle meanwhile), the DQN study's 128 trials' records of an episode took a tenth
    # of its time. So a run whose last active trial diverged makes one call more.
    write_logs()
    step += count
    window.append((count, metrics))
    is_eval = step % eval_every == 0 or step == total_steps
    if step % config.log_every_steps == 0 or is_eval:
      # Logs close at every evaluation too, and SIGTERM is only acted on when a log closes, so
      # log windows line up however often a run is stopped and resumed; and divergence is seen
      # (the logs written) before any checkpoint could hold it.
      unwritten.append((step, window))
      window = []
      stop = preempted(step)
      if is_eval or stop:
        write_logs()
    if (is_eval or stop) and any(r.active for r in runs):
      jax.block_until_ready(state)
      seconds = time.perf_counter() - segment_start
      validation = assess(state, "validation", step, runs) if is_eval and track_best else None
      saving = [k for k, run_k in enumerate(runs) if run_k.active]
      for k in saving:
        run_k = runs[k]
        run_k.meta.update(step=step, train_seconds=run_k.meta["train_seconds"] + seconds)
        if validation is not None:
          _check_metric(stopping, validation[k], config.task)
          run_k.writer.write(step, "validation", validation[k])
          _update_early_stopping(run_k.meta, validation[k], step, stopping)
      if not stop and (step == total_steps or not any(r.active for r in runs)):
        curves_drawn = draw_curves()  # every metric is in: drawn while the checkpoints are saved
      for k in saving:
        best = runs[k].meta["best"]
        runs[k].checkpointer.save(step, stack.take(state, k), runs[k].meta, best and best["step"])
      segment_start = time.perf_counter()
  write_logs()  # of that one call more
  progress.close()
  if curves_drawn is None:  # no last evaluation: the trials had stopped early or diverged
    curves_drawn = draw_curves() if not stop else lambda: None
  diverged = [r for r in runs if r.diverged_at is not None]
  for run_k in runs:
    run_k.checkpointer.wait()
  if stop or len(diverged) == num_trials:
    for run_k in runs:
      run_k.close()
    if stop:
      return [None] * num_trials
    raise RunError("; ".join(_divergence_message(r) for r in diverged))

  # 5. Test and write results. -------------------------------------------------------------------
  for run_k in runs:
    best, last_step = run_k.meta["best"], run_k.meta["step"]
    run_k.meta["tested_step"] = (best["step"] if stopping.restore_best and best is not None
                                 else last_step)
  # Trials tested at an earlier step (their best) are restored from their checkpoints; the
  # others are tested as they are. Where none is restored, the state stays as it is: taking the
  # trials apart and stacking them again compiled a jit of 128 states for the DQN study (seconds).
  restored = {k: run_k.checkpointer.restore(run_k.meta["tested_step"], abstract_trial_state)[0]
              for k, run_k in enumerate(runs)
              if run_k.meta["tested_step"] != step and run_k not in diverged}
  if restored:
    state = stack.stack([restored[k] if k in restored else stack.take(state, k)
                         for k in range(num_trials)], stack.sharding)
  test_start = time.perf_counter()
  tests = assess(state, "test", step, runs)
  test_seconds = time.perf_counter() - test_start
  # `data.extra_tests` (e.g. clocks of styles never trained on): the same tested state, scored
  # like the test split, so one run reports both side by side. Evaluators take no data: they
  # would only repeat the test's.
  extra_tests = {name: evaluate(state, name) for name in feed.splits.extra_tests} if (
      feed.splits) else {}
  results = []
  for k, run_k in enumerate(runs):
    if run_k in diverged:
      run_k.close()
      results.append(None)
      continue
    tested = {"test": tests[k], **{name: metrics[k] for name, metrics in extra_tests.items()}}
    for name, metrics in tested.items():
      if task.analyze is not None and name in feed.eval:
        tested_state = stack.take(state, k)
        outputs, examples = gather_outputs(tested_state, task, feed.eval[name],
                                           feed.eval_batch_size, stream_keys("eval")[k])
        # The test split's analysis goes into the workdir, an extra test's into WORKDIR/NAME/.
        analysis_dir = run_k.workdir if name == "test" else os.path.join(run_k.workdir, name)
        if jax.process_index() == 0:
          os.makedirs(analysis_dir, exist_ok=True)
          metrics.update(task.analyze(tested_state, outputs, examples, analysis_dir))
      run_k.writer.write(run_k.meta["step"], name, metrics)
    results.append(_results(run_k.meta, tested, abstract_trial_state, feed, stopping, num_trials,
                            startup_seconds, compile_seconds, test_seconds / num_trials))
    run_k.close()
    writers.write_json(os.path.join(run_k.workdir, "results.json"), results[-1])
  curves_drawn()
  if diverged:
    raise RunError("; ".join(_divergence_message(r) for r in diverged))
  return results


def _results(meta: dict[str, Any], tested: dict[str, dict[str, float]], abstract_state: Any,
             feed: _Data, stopping: ml_collections.ConfigDict, num_trials: int,
             startup_seconds: float | None, compile_seconds: float,
             test_seconds: float) -> dict[str, Any]:
  """results.json of one trial; `tested`: the metrics of 'test' and of each extra test split."""
  best, seconds = meta["best"], meta["train_seconds"]
  return {
      "best_validation": best and {
          "metric": stopping.metric, "mode": stopping.mode, "value": best["value"],
          "step": best["step"], "epoch": feed.epochs(best["step"]), "metrics": best["metrics"]},
      **tested,  # "test", then the extra tests under their names
      "tested_step": meta["tested_step"],
      "steps": meta["step"],
      "epochs": feed.epochs(meta["step"]),
      "stopped_early": meta["stopped_early"],
      "parameters": int(sum(np.prod(x.shape) for x in jax.tree.leaves(abstract_state.params))),
      "train_seconds": seconds,
      # Of this process: from its command (python's start) to its first train step, and the
      # part of that spent compiling the steps.
      "startup_seconds": startup_seconds,
      "compile_seconds": compile_seconds,
      # Over every step the run took and every second it trained, across resumptions.
      "steps_per_second": meta["step"] / seconds if seconds else None,
      "examples_per_second": meta["step"] * feed.batch_size / seconds if (
          seconds and feed.train) else None,
      "inference_ms_per_example": 1000 * test_seconds / feed.eval["test"].num_examples if (
          "test" in feed.eval) else None,
      "trials_together": num_trials,
  }


def split_metrics(eval_sums: Callable, state, task: tasks.Task, split_data,
                  batch_size: int, stack: trials.Stack) -> list[dict[str, float]]:
  """Each trial's metrics on a split: `eval_sums(state, batch, mask, batch_index)` (the trials'
  masked sums of `eval_step`'s values) added up over the split's batches, then `finalize`d."""
  sums = jax.device_get([eval_sums(state, batch, mask, np.int32(index)) for index, (
      batch, mask) in enumerate(split_data.eval_batches(batch_size))])
  totals_K = {name: np.sum([stack.per_trial(s[name]) for s in sums], axis=0) for name in sums[0]}
  return [task.finalize({name: float(total_K[k]) for name, total_K in totals_K.items()},
                        split_data.num_examples) for k in range(stack.size)]


def masked_sums(eval_step: Callable, eval_key: jax.Array) -> Callable:
  """eval_sums(state, batch, mask_B, batch_index) of one task: `eval_step`'s values summed over
  the batch's real examples. The eval key depends on the batch, not the step: every evaluation
  sees the same noise."""
  def eval_sums(state, batch, mask_B, batch_index):
    values = eval_step(state, batch, jax.random.fold_in(eval_key, batch_index))
    return {name: jnp.sum(jnp.where(mask_B, value_B, 0.0), axis=-1)
            for name, value_B in values.items()}
  return eval_sums


def _claim(configs, workdirs, restart: bool, allow_changes: bool,
           held: contextlib.ExitStack) -> list[dict[str, list[Any]]]:
  """Locks each workdir (until `held` closes), clears it if `restart`, and returns each one's
  config changes since its checkpoints (`workdir.changes`: refused unless `allow_changes`)."""
  for workdir in workdirs:
    if jax.process_index() == 0:
      workdir_lib.lock(workdir, held)
      if restart:
        workdir_lib.start_over(workdir)
  if restart and jax.process_count() > 1:
    multihost_utils.sync_global_devices("dljax: earlier run deleted")
  return [workdir_lib.changes(workdir, config, allow_changes)
          for config, workdir in zip(configs, workdirs, strict=True)]


def _start(runs: list[_Trial], abstract_trial_state, stack: trials.Stack,
           init: Callable[[], Any]) -> tuple[Any, int]:
  """The trials' stacked state and the step to go on from: their checkpoints, or a fresh start.

  Each trial goes on from its newest intact checkpoint (a damaged one is passed over with a
  warning). Trials still training resume from the latest step all of them have (they save
  together; a crash between two saves leaves one trial a step ahead, and its later checkpoints
  are dropped: they will be made again, the same). A trial that stopped early resumes stopped.
  A fresh start loads `config.init_from`'s weights into the initial state, if it names any.
  """
  def restore(run_k: _Trial, at_most: int | None):
    try:
      return run_k.checkpointer.newest_intact(abstract_trial_state, at_most)
    except checkpoint.Mismatch as error:
      raise ConfigError(f"{error}: the checkpoints were trained with another model; use "
                        "--restart or another --workdir") from None

  found = [restore(run_k, None) if run_k.checkpointer.all_steps() else None for run_k in runs]
  if all(f is None for f in found):
    for run_k in runs:  # what a run that died before its first checkpoint wrote
      run_k.writer.truncate_after(0)
    state = init()
    if runs[0].config.init_from.path:
      state = stack.stack([pretrained.load_into(stack.take(state, k), r.config.init_from)
                           for k, r in enumerate(runs)], stack.sharding)
    return state, 0
  if None in found:
    raise ConfigError(
        f"{runs[found.index(None)].workdir} has no intact checkpoints but {runs[0].workdir} has: "
        "trials trained together resume together; train the new ones separately")
  still_training = [f[0] for f in found if not f[2]["stopped_early"]]
  step = min(still_training, default=max(f[0] for f in found))
  states = []
  for run_k, (found_step, state_k, meta) in zip(runs, found, strict=True):
    resume_step = found_step if meta["stopped_early"] else step
    if found_step != resume_step:
      found_step, state_k, meta = restore(run_k, resume_step) or (None, None, None)
      if found_step != resume_step:
        raise ConfigError(f"{run_k.workdir}: no intact checkpoint at step {resume_step}, where "
                          "the trials trained with it resume; train it separately")
    run_k.checkpointer.delete_after(resume_step)
    run_k.meta = meta
    run_k.writer.truncate_after(resume_step)
    states.append(state_k)
  return stack.stack(states, stack.sharding), step


def _seconds_since_process_start() -> float | None:
  """Wall seconds since this process started, its restart by exec (dljax/__init__.py) included;
  None where /proc cannot tell."""
  try:
    with open("/proc/self/stat") as f:  # field 22, counted after the ')' ending field 2
      start_ticks = int(f.read().rsplit(")", 1)[1].split()[19])
    with open("/proc/uptime") as f:
      uptime = float(f.read().split()[0])
  except (OSError, ValueError, IndexError):
    return None
  return uptime - start_ticks / os.sysconf("SC_CLK_TCK")


def _next_multiple(step: int, every: int) -> int:
  """The first multiple of `every` after `step`."""
  return (step // every + 1) * every


@contextlib.contextmanager
def _traced_values(values_K: dict[str, Any]):
  """Compiling steps whose trials differ in values the task needs as Python numbers fails with
  a one-line ConfigError naming them."""
  try:
    yield
  except jax.errors.ConcretizationTypeError as error:
    raise ConfigError(f"trials differing in {', '.join(values_K)} cannot train together: the "
                      f"task needs one of them as a Python number ({error})") from None


def _split_metric_names(task: tasks.Task, abstract_state, example_eval_batch) -> set[str]:
  """The metrics `finalize` makes of `eval_step`'s values (none without eval data)."""
  if example_eval_batch is None:
    return set()
  values = jax.eval_shape(task.eval_step, abstract_state, example_eval_batch[0],
                          jax.random.key(0))
  return set(task.finalize(dict.fromkeys(values, 1.0), 1))


def _check_metric(stopping: ml_collections.ConfigDict, metrics: dict[str, float],
                  task_name: str) -> None:
  if stopping.metric not in metrics:
    raise ConfigError(f"config.early_stopping.metric={stopping.metric!r}: not a metric of task "
                      f"{task_name!r}; allowed: {', '.join(sorted(metrics))}")


def _first_non_finite(finite_S: np.ndarray, first_step: int) -> int | None:
  """The step of a trial's first non-finite train metric in a log window (finite_S: whether
  all its metrics were finite at each step), if any."""
  return None if finite_S.all() else first_step + int(np.argmin(finite_S))


def _divergence_message(run_k: _Trial) -> str:
  where = f"{run_k.workdir}: training diverged: a non-finite loss at step {run_k.diverged_at}"
  if not run_k.meta["step"]:
    return f"{where}, before its first checkpoint: rerun with a changed config (e.g. a lower "\
           "learning rate)"
  return (f"{where}; its last checkpoint (step {run_k.meta['step']}) is finite: resume from it "
          "with a changed config (e.g. a lower learning rate) and --allow_changes, or --restart")


def gather_outputs(state, task: tasks.Task, test_data, batch_size: int, eval_key: jax.Array):
  """Per-example `eval_step` values and `predict` outputs, and the test examples, on the host, in
  order.

  Reads the examples back from the eval batches, so it works for either input pipeline and for
  any number of processes (each batch is gathered from all of them).
  """
  def outputs(state, batch, rng):
    return {**task.eval_step(state, batch, rng),
            **(task.predict(state, batch, rng) if task.predict else {})}

  outputs = jax.jit(outputs)
  gathered_outputs, examples = [], []
  for index, (batch, mask_B) in enumerate(test_data.eval_batches(batch_size)):
    batch_outputs, batch, mask_B = multihost_utils.process_allgather(
        (outputs(state, batch, jax.random.fold_in(eval_key, index)), batch, mask_B), tiled=True)
    gathered_outputs.append({name: value[mask_B] for name, value in batch_outputs.items()})
    examples.append({name: value[mask_B] for name, value in batch.items()})
  concatenate = lambda parts: {name: np.concatenate([p[name] for p in parts]) for name in parts[0]}
  return concatenate(gathered_outputs), concatenate(examples)


def _update_early_stopping(meta: dict, validation: dict[str, float], step: int,
                           stopping: ml_collections.ConfigDict) -> None:
  """Tracks the best validation value; stops after `patience` evaluations without a better one,
  or once the value reaches `target` (time to accuracy).

  The one rule for "best": strictly better than the best so far, so of equal values the first
  stays best; a non-finite value is never best (the checkpointer keeps whichever step this
  selects).
  """
  value = validation[stopping.metric]
  best = meta["best"]
  improved = math.isfinite(value) and (best is None or (
      value < best["value"] if stopping.mode == "min" else value > best["value"]))
  if improved:
    meta["best"] = {"value": value, "step": step, "metrics": validation}
    meta["evals_without_improvement"] = 0
  else:
    meta["evals_without_improvement"] += 1
  reached = stopping.target is not None and math.isfinite(value) and (
      value <= stopping.target if stopping.mode == "min" else value >= stopping.target)
  meta["stopped_early"] = reached or bool(
      stopping.patience and meta["evals_without_improvement"] >= stopping.patience)


class _PreemptionFlag:
  """True once SIGTERM (or SIGUSR2, SLURM's time-limit warning as submitit asks for it) has
  arrived, on every process at the same step; the previous handlers come back on exit.

  A single process just checks a flag its handler set. Several processes must agree on the step
  they checkpoint at (the save is collective), which JAX's preemption sync point arranges.
  """

  _SIGNALS = (signal.SIGTERM, signal.SIGUSR2)

  def __init__(self):
    self._received = False
    self._multi_process = jax.process_count() > 1
    self._previous = {}

  def __enter__(self):
    if not self._multi_process:
      self._previous = {signum: signal.signal(signum, self._handle) for signum in self._SIGNALS}
    return self

  def __exit__(self, *exc_info):
    for signum, handler in self._previous.items():
      signal.signal(signum, handler)
    return False

  def _handle(self, signum, frame):
    del signum, frame
    self._received = True

  def __call__(self, step: int) -> bool:
    if self._multi_process:
      return multihost_utils.reached_preemption_sync_point(step)
    return self._received


def _run_info(run_k: _Trial, stack: trials.Stack, step: int, splits: data.Splits | None,
              example_batch: Batch, example_axis: int) -> dict[str, Any]:
  """config.json: the config, what one example looks like (so the trained model can be used
  without its data set: `dljax.load`), the software and hardware that ran it, and every config
  change a resumption made (with the step it took effect)."""
  devices = jax.devices()
  earlier = workdir_lib.read_info(run_k.workdir) if step else None
  history = list((earlier or {}).get("changes", []))
  if run_k.changes:
    history.append({"step": step, "changed": run_k.changes})
  if unusual := {key: change for key, change in run_k.changes.items()
                 if key not in workdir_lib.RESUMABLE_KEYS}:
    logging.warning("%s: resuming at step %d with a changed config: %s", run_k.workdir, step,
                    ", ".join(f"{key} {old!r} -> {new!r}" for key, (old, new) in unusual.items()))
  return {
      "config": run_k.config.to_dict(),
      "changes": history,
      "label_names": splits and splits.label_names,
      # One example's arrays: the batch's leading axes (trials, examples) left out.
      "example_spec": {name: {"shape": list(value.shape[example_axis:]), "dtype": str(value.dtype)}
                       for name, value in example_batch.items()},
      "trials_together": stack.size,
      # Whether each device stepped its share of the trials, not all of them (trials.Stack).
      "trials_split_over_devices": stack.split,
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
      "compilation_cache": jax.config.jax_compilation_cache_dir,
  }

"""The pre-training loop, top to bottom: config -> mesh -> data -> state -> compile -> steps.

Side effects (files, logging, checkpoints, signals) live here; the math is in `steps.py`,
`objective.py` and `model.py`.
"""

from __future__ import annotations

import contextlib
import dataclasses
import functools
import json
import os
import shutil
import signal
import tempfile
import time
from typing import Any, Iterator

import jax
import jax.numpy as jnp
import ml_collections
import numpy as np
import tensorflow as tf
from absl import logging
from jax.experimental import multihost_utils

from electra_jax import files
from electra_jax import reporting
from electra_jax.core import flops as flops_lib
from electra_jax.core import objective
from electra_jax.core import optimizer as optimizer_lib
from electra_jax.data import bad_records
from electra_jax.errors import UserError
from electra_jax.interop import checkpoint as checkpoint_lib
from electra_jax.interop import pretrained as pretrained_lib
from electra_jax.interop.train_state import TrainState
from electra_jax.parallel import mesh as mesh_lib
from electra_jax.parallel import sharding
from electra_jax.pretraining import inputs as inputs_lib
from electra_jax.pretraining import steps
from electra_jax.spec import run as run_spec

COMPLETED_MARKER = 'COMPLETED'
# Sections whose change makes an existing workdir's checkpoints a different model.
_IDENTITY_SECTIONS = ('model', 'electra')


class NonFiniteLossError(UserError):
  """More non-finite steps in a row than train.max_consecutive_nonfinite: one `error:` line."""


# ---- Preemption -----------------------------------------------------------------------------

class PreemptionWatcher:
  """Tells the loop, at a step boundary, that the job was asked to stop (SIGTERM).

  On several processes jax's own preemption service (started by jax.distributed.initialize)
  catches SIGTERM and makes every host agree on the same step; on one process a signal handler
  sets a flag.
  """

  def __init__(self):
    self._multi_process = jax.process_count() > 1
    self._requested = False
    if not self._multi_process:
      self._previous = signal.signal(signal.SIGTERM, self._on_signal)

  def _on_signal(self, signum, frame):
    del signum, frame
    logging.warning('SIGTERM received: saving a checkpoint at the next step boundary.')
    self._requested = True

  def should_stop(self, step: int) -> bool:
    if self._multi_process:
      return multihost_utils.reached_preemption_sync_point(step)
    return self._requested

  def close(self):
    if not self._multi_process:
      signal.signal(signal.SIGTERM, self._previous)


# ---- Profiling ------------------------------------------------------------------------------

class ProfileWindow:
  """A jax.profiler trace of `train.profile_steps` steps into WORKDIR/profile, started after
  `train.profile_warmup_steps` steps of this invocation (the step is compiled before the loop).

  The trace holds whole steps: the device is drained before it starts and before it stops.
  Every host writes its own file; TensorBoard's profile plugin and XProf read the folder. The
  profiler writes local files only, so a remote (gs://) workdir gets a copy when the trace ends.
  """

  def __init__(self, train_config: ml_collections.ConfigDict, workdir: str, start_step: int):
    self._first = start_step + train_config.profile_warmup_steps  # steps done when it starts
    self._last = self._first + train_config.profile_steps  # steps done when it stops
    self._enabled = train_config.profile_steps > 0
    self.log_dir = f'{workdir}/profile'
    self._trace_dir = None  # where the profiler writes: log_dir, or a local folder to copy
    self._active = False

  @contextlib.contextmanager
  def step(self, steps_done: int, state):
    """Around the dispatch of step `steps_done + 1`; `state` is its input."""
    if self._active and steps_done == self._last:
      self.stop(state)
    if self._enabled and steps_done == self._first:
      jax.block_until_ready(state)
      self._trace_dir = tempfile.mkdtemp() if '://' in self.log_dir else self.log_dir
      jax.profiler.start_trace(self._trace_dir)
      self._active = True
    if not self._active:
      yield
      return
    with jax.profiler.StepTraceAnnotation('train', step_num=steps_done + 1):
      yield

  def stop(self, state):
    """Ends the trace (if one is running) once `state` is computed."""
    if not self._active:
      return
    jax.block_until_ready(state)
    jax.profiler.stop_trace()
    self._active = False
    if self._trace_dir != self.log_dir:
      for folder, _, names in os.walk(self._trace_dir):
        target = f'{self.log_dir}/{os.path.relpath(folder, self._trace_dir)}'
        tf.io.gfile.makedirs(target)
        for name in names:
          tf.io.gfile.copy(os.path.join(folder, name), f'{target}/{name}', overwrite=True)
      shutil.rmtree(self._trace_dir)
    logging.info('Profile of steps %d-%d written to %s: view it with `tensorboard --logdir %s` '
                 '(profile plugin) or XProf.', self._first + 1, self._last, self.log_dir,
                 self.log_dir)


# ---- Data -----------------------------------------------------------------------------------

def _to_global(batch: dict[str, Any], sharding) -> dict[str, jax.Array]:
  """Host-local numpy rows -> global jax.Arrays sharded over the data-parallel axes."""
  return {k: jax.make_array_from_process_local_data(sharding, np.asarray(batch[k]))
          for k in steps.BATCH_KEYS}


# ---- Workdir guard --------------------------------------------------------------------------

def _check_same_run(saved_config: dict, config: ml_collections.ConfigDict, workdir: str):
  """Refuses to resume a workdir whose checkpoints belong to a different model. A field added
  since the run was saved counts at its default, which the run used (`run_spec.upgrade`)."""
  saved_config = run_spec.upgrade(saved_config)
  for section in _IDENTITY_SECTIONS:
    saved = json.loads(json.dumps(saved_config[section].to_dict()))
    current = json.loads(json.dumps(config[section].to_dict()))
    if saved != current:
      changed = sorted(k for k in set(saved) | set(current) if saved.get(k) != current.get(k))
      raise UserError(
          f'{workdir} holds checkpoints of a different run: config.{section} differs in '
          f'{changed}. Use a new --workdir, or restore the original values to resume.')


# ---- Set-up ----------------------------------------------------------------------------------

@dataclasses.dataclass
class Run:
  """What the loop needs, made once by `setup`: mesh, inputs, state, compiled steps, writers."""
  spec: run_spec.RunSpec
  workdir: str
  mesh: Any
  rules: tuple
  checkpointer: checkpoint_lib.Checkpointer
  inputs: inputs_lib.HostInputs
  schedule: Any  # step -> learning rate
  train_step: Any  # compiled: (state, batch) -> (state, stats); the state is donated
  eval_step: Any  # jitted: (params, batch, batch index) -> stats
  batch_sharding: Any
  state: TrainState
  start_step: int
  host_batches: Iterator[dict[str, np.ndarray]]
  first_batch: dict[str, jax.Array]
  throughput: reporting.Throughput
  writer: reporting.MetricsWriter
  resume: dict  # the restart/skip record saved with every checkpoint (`_resume_point`)

  def save(self, step: int, force: bool = False):
    self.checkpointer.save(step, self.state, data_iterator=self.inputs.checkpoint_iterator,
                           config=self.spec.config.to_dict(),
                           tokenizer_files=self.inputs.tokenizer_files, force=force,
                           resume=self.resume)

  def next_batch(self) -> dict[str, jax.Array]:
    return _to_global(next(self.host_batches), self.batch_sharding)

  def close(self):
    self.checkpointer.close()
    self.writer.close()


def _resume_point(config, checkpointer: checkpoint_lib.Checkpointer, existing_steps: list[int],
                  workdir: str) -> tuple[int | None, dict, int]:
  """Where this invocation resumes: (step to restore or None = the latest, the resume record
  to save with every checkpoint, batches to skip now).

  `train.restart_from_step=N` and `data.skip_batches=K` act once: every checkpoint records the
  pair it was written under, and a checkpoint written under the same pair is resumed plainly (a
  rerun of the same command after a preemption neither goes back again nor skips again). The
  record also counts all batches skipped so far, which places synthetic data (a function of
  the batch number, with no iterator state).
  """
  t, skip = config.train, config.data.skip_batches
  latest = checkpointer.restore_resume(existing_steps[-1]) if existing_steps else {}
  requested = {'restart_from_step': t.restart_from_step, 'skip_batches': skip}
  if not (t.restart_from_step or skip) or all(latest.get(k) == v for k, v in requested.items()):
    return None, {**latest, **requested, 'batches_skipped': latest.get('batches_skipped', 0)}, 0
  step = None
  if t.restart_from_step:
    step = t.restart_from_step
    if step not in existing_steps:
      raise UserError(
          f'train.restart_from_step={step}: {checkpoint_lib.checkpoint_dir(workdir)} holds'
          f' no checkpoint of that step; the kept steps are {existing_steps or "none"}.')
    latest = checkpointer.restore_resume(step)
  return step, {**requested, 'batches_skipped': latest.get('batches_skipped', 0) + skip}, skip


def _initial_state(spec, checkpointer, inputs, program: Program, mesh, rules, pretrained,
                   workdir, restart_step: int | None = None) -> tuple[int, TrainState]:
  """(step, state): the checkpoint of `restart_step` (later ones are set aside), else the latest
  one, else fresh (from `init_from` when given)."""
  if restart_step is not None:
    moved = checkpointer.set_aside_after(restart_step)
    if moved:
      logging.warning('train.restart_from_step=%d: the later checkpoints %s were moved to %s '
                      '(nothing is deleted).', restart_step, moved[0], moved[1])
    try:
      return restart_step, checkpointer.restore(restart_step, program.abstract_state,
                                                data_iterator=inputs.checkpoint_iterator)
    except Exception as error:  # noqa: BLE001 - reported as what it means for the user
      raise UserError(f'train.restart_from_step={restart_step}: that checkpoint cannot be '
                      f'restored ({type(error).__name__}: {error}); choose another kept step.'
                      ) from error
  restored = checkpointer.restore_latest(program.abstract_state,
                                         data_iterator=inputs.checkpoint_iterator)
  if restored is not None:
    logging.info('Resumed from the checkpoint at step %d in %s.', restored[0], workdir)
    return restored
  state = sharding.init_state(program.init_fn, program.init_rng, mesh, rules,
                              program.state_shardings)
  if spec.config.init_from:
    if pretrained is None:  # checkpoints were listed at start-up, but none restored
      pretrained = pretrained_lib.load_checkpoint(spec.config.init_from)
    state = state.replace(params=pretrained_lib.initial_params(spec, state.params, pretrained))
  return 0, state


def spec_and_mesh(config: ml_collections.ConfigDict, devices: list[jax.Device],
                 process_count: int) -> tuple[run_spec.RunSpec, Any]:
  """(run spec, mesh) after every config check that needs no data or files."""
  spec = run_spec.load(config, num_devices=len(devices), process_count=process_count)
  return spec, mesh_lib.make_mesh(spec.mesh, devices)


@dataclasses.dataclass(frozen=True)
class Program:
  """The run's jitted program, built by `build_program` for training and the compile check alike.

  Nothing here touches data, files or device memory: the state and batch are abstract
  (`jax.ShapeDtypeStruct`s carrying their shardings), so the same program can be lowered for
  devices this host does not have (`electra_jax.compile_check`).
  """
  model: Any
  tx: Any
  schedule: Any  # step -> learning rate
  init_fn: Any  # rng -> boxed TrainState
  init_rng: jax.Array
  train_rng: jax.Array
  abstract_state: Any  # TrainState of ShapeDtypeStructs with their shardings
  state_shardings: Any
  batch_sharding: Any
  abstract_batch: dict[str, jax.ShapeDtypeStruct]
  train_step: Any  # jitted: (state, batch) -> (state, stats); the state is donated
  eval_step: Any  # jitted: (params, batch, batch index) -> stats


def build_program(spec: run_spec.RunSpec, mesh) -> Program:
  """Model, optimizer, sharded abstract state and the jitted train/eval steps over `mesh`."""
  jax.config.update('jax_threefry_partitionable', True)  # random bits independent of the mesh
  config, rules = spec.config, spec.mesh.rules
  model = spec.objective.build_model(spec)
  schedule = optimizer_lib.learning_rate_schedule(config.train)
  tx = optimizer_lib.make_optimizer(config.train, schedule)
  init_fn = steps.make_init_fn(model, tx, spec.seq_length, spec.max_predictions)
  # train.prng_impl, resolved for the mesh's platform (a TPU's, also in the compile check).
  platform = mesh.devices.flat[0].platform
  init_rng, train_rng = jax.random.split(jax.random.key(
      config.seed, dtype=spec.prng_impl(platform)))
  abstract_state, state_shardings = sharding.state_shardings(init_fn, init_rng, mesh, rules)
  batch_sharding = sharding.batch_sharding(mesh, rules)
  train_step = jax.jit(
      functools.partial(steps.train_step, model=model, tx=tx, spec=spec, base_rng=train_rng),
      in_shardings=(state_shardings, batch_sharding),
      out_shardings=(state_shardings, None), donate_argnums=(0,))
  eval_step = jax.jit(
      functools.partial(steps.eval_step, model=model, spec=spec, base_rng=train_rng),
      in_shardings=(state_shardings.params, batch_sharding, None))
  abstract_batch = {
      key: jax.ShapeDtypeStruct(shape, dtype, sharding=batch_sharding)
      for key, (shape, dtype) in steps.batch_shapes(
          spec.batch_size, spec.seq_length, spec.max_predictions).items()}
  return Program(model, tx, schedule, init_fn, init_rng, train_rng, abstract_state,
                 state_shardings, batch_sharding, abstract_batch, train_step, eval_step)


def setup(config: ml_collections.ConfigDict, workdir: str,
          devices: list[jax.Device]) -> Run | None:
  """Checks, mesh, inputs, state (resumed or fresh) and the compiled steps; None when `workdir`
  is already trained to `train.num_steps`. `config` is the run's private copy: the tokenizer
  choice is recorded in it."""
  process_index, process_count = jax.process_index(), jax.process_count()
  # ---- Config and mesh: all checks before anything expensive.
  spec, mesh = spec_and_mesh(config, devices, process_count)
  config, rules = spec.config, spec.mesh.rules  # the upgraded config, where the tokenizer goes
  tf.io.gfile.makedirs(workdir)
  checkpointer = checkpoint_lib.Checkpointer(
      workdir, save_every=config.train.checkpoint_every, keep=config.train.keep_checkpoints,
      keep_period=config.train.keep_period)
  existing_steps = checkpointer.all_steps()
  if existing_steps:
    _check_same_run(checkpointer.restore_config(existing_steps[-1]), config, workdir)
  restart_step, resume, skip_now = _resume_point(config, checkpointer, existing_steps, workdir)

  # ---- Input pipeline (per host); a fresh start from init_from reads that checkpoint once.
  pretrained = (pretrained_lib.load_checkpoint(config.init_from)
                if config.init_from and not existing_steps else None)
  tokenizer = inputs_lib.resolve_tokenizer(spec, workdir, pretrained)
  inputs = inputs_lib.HostInputs(spec, tokenizer, process_index)

  # ---- The jitted program (shared with the compile check); the state, resumed or fresh.
  program = build_program(spec, mesh)
  start_step, state = _initial_state(spec, checkpointer, inputs, program, mesh, rules,
                                     pretrained, workdir, restart_step)
  del pretrained  # the host copy of the weights
  completed_path = f'{workdir}/{COMPLETED_MARKER}'
  if start_step >= config.train.num_steps:
    logging.info('%s is already trained to step %d (train.num_steps=%d): nothing to do.',
                 workdir, start_step, config.train.num_steps)
    checkpointer.close()
    _mark_completed(completed_path, start_step)  # a kill may have come between save and marker
    return None
  if process_index == 0 and tf.io.gfile.exists(completed_path):
    tf.io.gfile.remove(completed_path)  # training continues past an earlier end

  # ---- Compile ahead of time, and say what the run looks like.
  batch_sharding = program.batch_sharding
  host_batches = _train_batches(inputs, start_step, resume, skip_now)
  first_batch = _to_global(next(host_batches), batch_sharding)
  counts = flops_lib.param_counts(spec.discriminator, spec.generator, spec.embedding_sharing)
  logging.info('Parameters: %s', ', '.join(f'{k} {v:,}' for k, v in counts.items()))
  logging.info('Mesh: %s', mesh_lib.describe(mesh))
  with sharding.mesh_scope(mesh, rules):
    compiled_train_step = program.train_step.lower(state, first_batch).compile()
  reporting.log_memory_analysis(compiled_train_step)

  tokens_per_step = spec.batch_size * spec.seq_length
  throughput = reporting.Throughput(
      tokens_per_step=tokens_per_step,
      flops_per_step=spec.train_flops_per_token() * tokens_per_step,
      num_devices=len(devices),
      peak_tflops=reporting.peak_tflops_per_device(devices[0],
                                                   config.train.peak_tflops_per_device))
  return Run(spec, workdir, mesh, rules, checkpointer, inputs, program.schedule,
             compiled_train_step, program.eval_step, batch_sharding, state, start_step,
             host_batches, first_batch, throughput, reporting.MetricsWriter(workdir), resume)


def _train_batches(inputs: inputs_lib.HostInputs, start_step: int, resume: dict,
                   skip_now: int) -> Iterator[dict[str, np.ndarray]]:
  """This host's training batches from `start_step` on, past every batch skipped so far.

  A restored tf.data iterator already stands past earlier skips; `skip_now` batches are drawn
  and dropped here, so the next checkpoint's iterator state records them. Synthetic batches are
  a function of their number: they start at `start_step` plus all batches ever skipped.
  """
  if inputs.synthetic:
    return inputs.train_batches(start_step + resume['batches_skipped'])
  batches = inputs.train_batches(start_step)
  for _ in range(skip_now):
    next(batches)
  return batches


# ---- Evaluation ------------------------------------------------------------------------------

_add_stats = jax.jit(lambda a, b: jax.tree.map(jnp.add, a, b))


def evaluate(run: Run, step: int, token_reference: dict[str, Any]) -> dict[str, float]:
  """Eval metrics over `train.eval_steps` fixed batches, written and logged.

  `token_reference`: recent training stats (per-token-id counts) for the token-only baseline.
  """
  totals = None
  eval_iterator = run.inputs.eval_batches()
  for index in range(run.spec.config.train.eval_steps):
    batch = _to_global(next(eval_iterator), run.batch_sharding)
    batch_stats = run.eval_step(run.state.params, batch, jnp.int32(index))
    totals = batch_stats if totals is None else _add_stats(totals, batch_stats)
  summary = run.spec.objective.summarize(jax.device_get(totals),
                                                jax.device_get(token_reference))
  metrics = {f'eval_{k}': float(v) for k, v in summary.items()}
  run.writer.write(step, metrics)
  logging.info(reporting.eval_line(step, metrics))
  return metrics


# ---- Non-finite steps -----------------------------------------------------------------------

class NonFiniteSteps:
  """Counts the steps whose update the train step skipped (non-finite loss or gradients) and
  stops the run after more than `train.max_consecutive_nonfinite` of them in a row.

  Each step's flags are read one step late (`add`), or at once before a log line or a save
  (`check`), so the host never waits on the device. Skipped steps never poison the state, so
  any checkpoint is of finite parameters; a stop comes before the save of its step.
  """

  def __init__(self, run: Run):
    self._run = run
    self._limit = run.spec.config.train.max_consecutive_nonfinite
    self._pending = None  # (step, flags array)
    self._in_a_row = 0
    self._window = 0  # skipped steps since the last log line

  def add(self, step: int, flags: jax.Array):
    self.check()
    self._pending = (step, flags)

  def take_window_count(self) -> int:
    count, self._window = self._window, 0
    return count

  def check(self):
    if self._pending is None:
      return
    (step, flags), self._pending = self._pending, None
    flags = int(flags)
    if not flags:
      self._in_a_row = 0
      return
    self._in_a_row += 1
    self._window += 1
    what = ' and '.join(name for bit, name in ((steps.NONFINITE_LOSS, 'loss'),
                                               (steps.NONFINITE_GRADS, 'gradients'))
                        if flags & bit)
    if self._in_a_row <= self._limit:
      logging.warning('Step %d: non-finite %s; its update was skipped (%d in a row, '
                      'train.max_consecutive_nonfinite=%d).', step, what, self._in_a_row,
                      self._limit)
      return
    raise NonFiniteLossError(self._stop_message(step, what))

  def _stop_message(self, step: int, what: str) -> str:
    run = self._run
    run.checkpointer.wait(step)  # a failed save in flight is reported instead (one line too)
    kept = [s for s in run.checkpointer.all_steps() if s < step]
    in_a_row = (f'{self._in_a_row} steps in a row, more than '
                f'train.max_consecutive_nonfinite={self._limit}' if self._limit else
                'train.max_consecutive_nonfinite=0 stops at the first')
    head = (f'step {step}: the {what} became non-finite ({in_a_row}); the update was not '
            'applied and training stopped.')
    if not kept:
      return (f'{head} No checkpoint was written yet. To go on, skip the batches so far with '
              f'--config.data.skip_batches={step}, or lower --config.train.learning_rate.')
    last = kept[-1]
    return (f'{head} The last good checkpoint is step {last} in '
            f'{checkpoint_lib.checkpoint_dir(run.workdir)}. To go on, either resume from it past '
            f'the spike with --config.train.restart_from_step={last} '
            f'--config.data.skip_batches={step - last} (skips the batches of steps {last + 1}-'
            f'{step}; more for a margin), or lower --config.train.learning_rate (or set '
            'train.grad_clip_norm=1.0, model.dtype=float32).')


# ---- The loop --------------------------------------------------------------------------------

def _token_reference(last_token_counts, window) -> dict[str, Any]:
  """The last complete log window's per-token-id counts, plus the steps since (when eval and log
  are not aligned)."""
  reference = [c for c in (last_token_counts, window) if c is not None]
  return functools.reduce(
      _add_stats, [{k: c[k] for k in objective.TOKEN_COUNT_KEYS} for c in reference])


def train_loop(run: Run, preemption: PreemptionWatcher,
               stop_after: int | None = None) -> dict[str, float]:
  """Steps from `run.start_step` to `train.num_steps` (or a stop); returns the last metrics."""
  t = run.spec.config.train
  logging.info('Training steps %d -> %d.', run.start_step, t.num_steps)
  last_metrics: dict[str, float] = {}
  window = None  # summed stats since the last log line
  # Per-token-id counts of the last complete log window: the out-of-sample reference that the
  # token-only AUC baseline ranks token ids by (recent, so it follows the generator).
  last_token_counts = None
  # Each step's non-finite flags are read one step late, so the host never waits on the device.
  nonfinite = NonFiniteSteps(run)
  batch = run.first_batch
  profile = ProfileWindow(t, run.workdir, run.start_step)
  run.throughput.start(run.start_step)
  step = run.start_step
  while step < t.num_steps:
    with sharding.mesh_scope(run.mesh, run.rules), profile.step(step, run.state):
      run.state, stats = run.train_step(run.state, batch)
    step += 1
    loss = stats.pop('total_loss')
    grad_norm, param_norm = stats.pop('grad_norm'), stats.pop('param_norm')
    nonfinite.add(step, stats.pop('nonfinite'))
    if run.checkpointer.check_failed_save(step):  # a transient failure: save again, now
      run.save(step, force=True)
    window = stats if window is None else _add_stats(window, stats)

    if step % t.log_every == 0 or step == t.num_steps:
      nonfinite.check()
      summary = run.spec.objective.summarize(jax.device_get(window))
      metrics = {k: float(v) for k, v in summary.items()}
      metrics.update(loss=float(loss), grad_norm=float(grad_norm),
                     param_norm=float(param_norm), learning_rate=float(run.schedule(step - 1)),
                     nonfinite_steps=nonfinite.take_window_count())
      metrics.update(run.throughput.measure(step))
      if run.spec.config.data.on_bad_record == 'skip':  # read ahead of the step by the prefetch
        metrics['bad_records'] = float(bad_records.LOG.count)
      run.writer.write(step, metrics)
      logging.info(reporting.progress_line(step, t.num_steps, metrics))
      last_token_counts = {k: window[k] for k in objective.TOKEN_COUNT_KEYS}
      last_metrics, window = metrics, None
    if run.inputs.has_eval and (step % t.eval_every == 0 or step == t.num_steps):
      last_metrics = {**last_metrics,
                      **evaluate(run, step, _token_reference(last_token_counts, window))}
      run.throughput.start(step)  # eval time is not train time
    if step % t.checkpoint_every == 0:
      nonfinite.check()  # a stop comes before the save
      run.save(step)
    stop_now = stop_after is not None and step - run.start_step >= stop_after
    if (preemption.should_stop(step) or stop_now) and step < t.num_steps:
      nonfinite.check()
      profile.stop(run.state)
      run.save(step, force=True)
      while run.checkpointer.wait(step):
        run.save(step, force=True)
      logging.warning('Preempted: checkpoint saved at step %d. Rerun the same command to resume.',
                      step)
      return last_metrics
    if step < t.num_steps:
      # Drawn only after any checkpoint of this step, so the saved iterator has produced exactly
      # `step` batches; still overlaps the step in flight, which was dispatched asynchronously.
      wait_start = time.perf_counter()
      batch = run.next_batch()
      run.throughput.add_data_wait(time.perf_counter() - wait_start)
  nonfinite.check()
  profile.stop(run.state)
  run.save(step, force=True)
  while run.checkpointer.wait(step):
    run.save(step, force=True)
  _mark_completed(f'{run.workdir}/{COMPLETED_MARKER}', step)
  return last_metrics


def train_and_evaluate(config: ml_collections.ConfigDict, workdir: str, *,
                       devices: list[jax.Device] | None = None,
                       stop_after: int | None = None) -> dict[str, float]:
  """Pre-trains (or resumes) in `workdir`; returns the last logged metrics.

  Args:
    config: a full pre-training config (see configs/default.py).
    workdir: run directory, local or gs://. Holding checkpoints, it is resumed.
    devices: the devices to build the mesh on (default: all).
    stop_after: stop cleanly after this many steps of this invocation, exactly as a preemption
      does (checkpoint, then return), e.g. for time-boxed jobs.
  """
  config = ml_collections.ConfigDict(config.to_dict())  # a private, mutable copy
  run = setup(config, workdir, list(jax.devices() if devices is None else devices))
  if run is None:
    return {}
  preemption = PreemptionWatcher()
  try:
    return train_loop(run, preemption, stop_after)
  finally:
    preemption.close()
    run.close()


def _mark_completed(path: str, step: int):
  """`WORKDIR/COMPLETED` tells launch/tpu.sh watch (and people) that the run reached num_steps."""
  if jax.process_index() == 0:
    files.write_atomically(path, json.dumps({'step': step, 'time': time.time()}) + '\n')

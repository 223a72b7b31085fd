"""The pre-training loop, top to bottom: config -> mesh -> data -> state -> compile -> steps.

Side effects (files, logging, checkpoints, signals) live here; the math is in `steps.py`,
`objective.py` and `model.py`.
"""

from __future__ import annotations

import functools
import json
import signal
import time
from typing import Any, Iterator

import flax.linen as nn
import jax
import jax.numpy as jnp
import ml_collections
import numpy as np
import tensorflow as tf
from absl import logging
from jax.experimental import multihost_utils

from electra_jax import checkpoint as checkpoint_lib
from electra_jax.errors import UserError
from electra_jax import flops as flops_lib
from electra_jax import mesh as mesh_lib
from electra_jax import objective
from electra_jax import objective_switch
from electra_jax import optimizer as optimizer_lib
from electra_jax import reporting
from electra_jax import steps
from electra_jax import validate
from electra_jax.data import synthetic

COMPLETED_MARKER = 'COMPLETED'
# Sections whose change makes an existing workdir's checkpoints a different model.
_IDENTITY_SECTIONS = ('model', 'electra')


class NonFiniteLossError(RuntimeError):
  """The loss became NaN/inf; the last good checkpoint is kept."""


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


# ---- Data -----------------------------------------------------------------------------------

def _resolve_tokenizer_path(config: ml_collections.ConfigDict, workdir: str) -> None:
  """Sets config.tokenizer.path: init_from's tokenizer, else the workdir's built-in model.

  Only resolves the path; `pretraining.validate_data_config` loads (and checks) the tokenizer.
  """
  from electra_jax import tokenizer as tokenizer_lib  # noqa: PLC0415 - heavy (TF ops)
  if not config.tokenizer.path and config.init_from:
    from electra_jax import convert  # noqa: PLC0415 - the weights' tokenizer must read the data
    convert.use_source_tokenizer(config)
  if not config.tokenizer.path and config.data.source == 'builtin':
    kept = f'{workdir}/tokenizer/builtin.model'
    if not tf.io.gfile.exists(kept):
      source = tokenizer_lib.builtin_tokenizer_path(config)
      checkpoint_lib.copy_file(source, kept)
    config.tokenizer.path = kept


def _to_global(batch: dict[str, Any], sharding) -> dict[str, jax.Array]:
  """Host-local numpy rows -> global jax.Arrays sharded over the data-parallel axes."""
  return {k: jax.make_array_from_process_local_data(sharding, np.asarray(batch[k]))
          for k in steps.BATCH_KEYS}


def _numpy_batches(dataset_iterator) -> Iterator[dict[str, np.ndarray]]:
  for element in dataset_iterator:
    yield {k: v.numpy() for k, v in element.items()}


# ---- Workdir guard --------------------------------------------------------------------------

def _check_same_run(saved_config: dict, config: ml_collections.ConfigDict, workdir: str):
  """Refuses to resume a workdir whose checkpoints belong to a different model."""
  from electra_jax.configs import default  # noqa: PLC0415 - the fields' defaults
  for section in _IDENTITY_SECTIONS:
    saved = saved_config.get(section)
    if saved is not None:  # a field added since the run was saved: the run used its default
      saved = {**default.get_config()[section].to_dict(), **saved}
    current = json.loads(json.dumps(config[section].to_dict()))
    if saved is not None and saved != current:
      changed = sorted(k for k in set(saved) | set(current) if saved.get(k) != current.get(k))
      raise UserError(
          f'{workdir} holds checkpoints of a different run: config.{section} differs in '
          f'{changed}. Use a new --workdir, or restore the original values to resume.')


# ---- The loop -------------------------------------------------------------------------------

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
  jax.config.update('jax_threefry_partitionable', True)  # random bits independent of the mesh
  config = ml_collections.ConfigDict(config.to_dict())  # a private, mutable copy
  process_index, process_count = jax.process_index(), jax.process_count()
  devices = list(jax.devices() if devices is None else devices)

  # ---- Config and mesh: all checks before anything expensive.
  validate.validate_config(config, num_devices=len(devices), process_count=process_count)
  mesh = mesh_lib.make_mesh(config.mesh, devices)
  rules = tuple((name, tuple(axes) if isinstance(axes, list) else axes)
                for name, axes in config.mesh.logical_axis_rules)
  tf.io.gfile.makedirs(workdir)
  checkpointer = checkpoint_lib.Checkpointer(
      workdir, save_every=config.train.checkpoint_every, keep=config.train.keep_checkpoints,
      keep_period=config.train.keep_period)
  existing_steps = checkpointer.all_steps()
  if existing_steps:
    _check_same_run(checkpointer.restore_config(existing_steps[-1]), config, workdir)

  # ---- Input pipeline (per host).
  max_predictions = flops_lib.max_predictions_per_seq(config)
  if config.data.source == 'synthetic':
    tokenizer_files = []
    train_tf_iterator = None
  else:
    from electra_jax.data import pretraining  # noqa: PLC0415 - TF graph setup, only if needed
    _resolve_tokenizer_path(config, workdir)
    tokenizer_files = pretraining.validate_data_config(config).files()
    train_tf_iterator = iter(pretraining.make_dataset(config, 'train', process_index,
                                                      process_count))
    eval_dataset = (pretraining.make_dataset(config, 'eval', process_index, process_count)
                    if config.train.eval_every else None)

  # ---- Model, optimizer and the sharded train state.
  model = steps.build_model(config)
  schedule = optimizer_lib.learning_rate_schedule(config.train)
  tx = optimizer_lib.make_optimizer(config.train, schedule)
  init_fn = steps.make_init_fn(model, tx, config.data.max_seq_length, max_predictions)
  base_rng = jax.random.key(config.seed)
  init_rng, train_rng = jax.random.split(base_rng)
  with jax.set_mesh(mesh), nn.logical_axis_rules(rules):
    abstract_state, state_shardings = steps.state_shardings(init_fn, init_rng, mesh, rules)
  batch_sharding = steps.batch_sharding(mesh)

  # ---- Resume, or start fresh.
  restored = checkpointer.restore_latest(abstract_state, data_iterator=train_tf_iterator)
  if restored is not None:
    start_step, state = restored
    logging.info('Resumed from the checkpoint at step %d in %s.', start_step, workdir)
  else:
    start_step = 0
    with jax.set_mesh(mesh), nn.logical_axis_rules(rules):
      state = jax.jit(lambda rng: nn.unbox(init_fn(rng)), out_shardings=state_shardings)(init_rng)
    if config.init_from:
      from electra_jax import convert  # noqa: PLC0415 - only for continued pre-training
      state = state.replace(params=convert.initial_params(config, state.params))
  completed_path = f'{workdir}/{COMPLETED_MARKER}'
  if start_step >= config.train.num_steps:
    logging.info('%s is already trained to step %d (train.num_steps=%d): nothing to do.',
                 workdir, start_step, config.train.num_steps)
    checkpointer.close()
    _mark_completed(completed_path, start_step)  # a kill may have come between save and marker
    return {}
  if process_index == 0 and tf.io.gfile.exists(completed_path):
    tf.io.gfile.remove(completed_path)  # training continues past an earlier end

  if config.data.source == 'synthetic':
    host_batches = synthetic.SyntheticIterator(config, process_index, process_count, start_step,
                                               max_predictions)
  else:
    host_batches = _numpy_batches(train_tf_iterator)

  # ---- Compile ahead of time, and say what the run looks like.
  train_step = jax.jit(
      functools.partial(steps.train_step, model=model, tx=tx, config=config, base_rng=train_rng),
      in_shardings=(state_shardings, batch_sharding),
      out_shardings=(state_shardings, None), donate_argnums=(0,))
  eval_step = jax.jit(
      functools.partial(steps.eval_step, model=model, config=config, base_rng=train_rng),
      in_shardings=(state_shardings.params, batch_sharding, None))
  first_batch = _to_global(next(host_batches), batch_sharding)
  counts = flops_lib.param_counts(config)
  logging.info('Parameters: %s', ', '.join(f'{k} {v:,}' for k, v in counts.items()))
  logging.info('Mesh: %s', mesh_lib.describe(mesh))
  with jax.set_mesh(mesh), nn.logical_axis_rules(rules):
    compiled_train_step = train_step.lower(state, first_batch).compile()
  reporting.log_memory_analysis(compiled_train_step)

  tokens_per_step = config.train.batch_size * config.data.max_seq_length
  throughput = reporting.Throughput(
      tokens_per_step=tokens_per_step,
      flops_per_step=flops_lib.train_flops_per_token(config) * tokens_per_step,
      num_devices=len(devices),
      peak_tflops=reporting.peak_tflops_per_device(devices[0],
                                                   config.train.peak_tflops_per_device))
  writer = reporting.MetricsWriter(workdir)
  preemption = PreemptionWatcher()
  add_stats = jax.jit(lambda a, b: jax.tree.map(jnp.add, a, b))

  def save(step: int, force: bool = False):
    checkpointer.save(step, state, data_iterator=train_tf_iterator, config=config.to_dict(),
                      tokenizer_files=tokenizer_files, force=force)

  def evaluate(step: int, token_reference: dict[str, Any]) -> dict[str, float]:
    """Eval metrics; `token_reference`: recent training stats for the token-only baseline."""
    totals = None
    eval_iterator = _numpy_batches(iter(eval_dataset))
    for index in range(config.train.eval_steps):
      batch_stats = eval_step(state.params, _to_global(next(eval_iterator), batch_sharding),
                              jnp.int32(index))
      totals = batch_stats if totals is None else add_stats(totals, batch_stats)
    summary = objective_switch.summarize(objective_switch.objective_of(config),
                                         jax.device_get(totals), jax.device_get(token_reference))
    metrics = {f'eval_{k}': float(v) for k, v in summary.items()}
    writer.write(step, metrics)
    logging.info(reporting.eval_line(step, metrics))
    return metrics

  # ---- Train.
  logging.info('Training steps %d -> %d.', start_step, config.train.num_steps)
  last_metrics: dict[str, float] = {}
  window = None  # summed stats since the last log line
  # Per-token-id counts of the last complete log window: the out-of-sample reference that the
  # token-only AUC baseline ranks token ids by (recent, so it follows the generator).
  last_token_counts = None
  pending_loss = None  # (step, loss) checked one step late, so the host never waits on the device
  batch = first_batch
  throughput.start(start_step)
  step = start_step
  try:
    while step < config.train.num_steps:
      with jax.set_mesh(mesh), nn.logical_axis_rules(rules):
        state, stats = compiled_train_step(state, batch)
      step += 1
      loss = stats.pop('total_loss')
      grad_norm, param_norm = stats.pop('grad_norm'), stats.pop('param_norm')
      window = stats if window is None else add_stats(window, stats)
      if pending_loss is not None:
        _check_finite(*pending_loss)
      pending_loss = (step, loss)

      if step % config.train.log_every == 0 or step == config.train.num_steps:
        _check_finite(*pending_loss)
        summary = objective_switch.summarize(objective_switch.objective_of(config),
                                             jax.device_get(window))
        metrics = {k: float(v) for k, v in summary.items()}
        metrics.update(loss=float(loss), grad_norm=float(grad_norm),
                       param_norm=float(param_norm), learning_rate=float(schedule(step - 1)))
        metrics.update(throughput.measure(step))
        writer.write(step, metrics)
        logging.info(reporting.progress_line(step, config.train.num_steps, metrics))
        last_token_counts = {k: window[k] for k in objective.TOKEN_COUNT_KEYS}
        last_metrics, window = metrics, None
      if eval_dataset_ready(config) and (step % config.train.eval_every == 0
                                         or step == config.train.num_steps):
        # The last complete log window, plus the steps since (when eval and log are not aligned).
        reference = [c for c in (last_token_counts, window) if c is not None]
        token_reference = functools.reduce(
            add_stats, [{k: c[k] for k in objective.TOKEN_COUNT_KEYS} for c in reference])
        last_metrics = {**last_metrics, **evaluate(step, token_reference)}
        throughput.start(step)  # eval time is not train time
      if step % config.train.checkpoint_every == 0:
        _check_finite(*pending_loss)  # never checkpoint a poisoned state
        save(step)
      stop_now = stop_after is not None and step - start_step >= stop_after
      if (preemption.should_stop(step) or stop_now) and step < config.train.num_steps:
        _check_finite(*pending_loss)
        save(step, force=True)
        checkpointer.wait()
        logging.warning('Preempted: checkpoint saved at step %d. Rerun the same command to resume.',
                        step)
        return last_metrics
      if step < config.train.num_steps:
        # Drawn only after any checkpoint of this step, so the saved iterator has produced exactly
        # `step` batches; still overlaps the step in flight, which was dispatched asynchronously.
        wait_start = time.perf_counter()
        batch = _to_global(next(host_batches), batch_sharding)
        throughput.add_data_wait(time.perf_counter() - wait_start)
    save(step, force=True)
    checkpointer.wait()
    _mark_completed(completed_path, step)
    return last_metrics
  finally:
    preemption.close()
    checkpointer.close()
    writer.close()


def _mark_completed(path: str, step: int):
  """`WORKDIR/COMPLETED` tells launch/tpu.sh watch (and people) that the run reached num_steps."""
  if jax.process_index() == 0:
    with tf.io.gfile.GFile(path, 'w') as f:
      f.write(json.dumps({'step': step, 'time': time.time()}) + '\n')


def eval_dataset_ready(config) -> bool:
  return config.train.eval_every > 0 and config.data.source != 'synthetic'


def _check_finite(step: int, loss: jax.Array):
  value = float(loss)
  if not np.isfinite(value):
    raise NonFiniteLossError(
        f'The loss is {value} at step {step}. Stopping; the last good checkpoint is kept. Try a '
        'lower train.learning_rate, train.grad_clip_norm=1.0, or model.dtype=float32.')

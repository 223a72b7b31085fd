"""The fine-tuning loop shared by GLUE and SQuAD, top to bottom.

starting point (pre-trained discriminator or scratch) -> hyperparameters -> mesh -> sharded state ->
epochs of jitted train steps -> dev evaluation after the last epoch -> its checkpoint (orbax) ->
the final parameters back for the task driver's predictions.

A task driver (`glue.py`, `squad.py`) builds a `FineTuneTask`: the task model, a pure loss, the
training arrays and an `evaluate(predict)` callback. The loop knows nothing else about the task.
"""

from __future__ import annotations

import dataclasses
import functools
import time
from typing import Any, Callable, Optional

import flax.linen as nn
import jax
import jax.numpy as jnp
import ml_collections
import numpy as np
import optax
import orbax.checkpoint as ocp
import tensorflow as tf
from absl import logging
from jax.sharding import NamedSharding, PartitionSpec as P

from electra_jax import reporting
from electra_jax.core import param_trees
from electra_jax.errors import UserError
from electra_jax.finetune import layerwise
from electra_jax.finetune import model as task_model_lib
from electra_jax.finetune import start as start_lib
from electra_jax.interop import checkpoint as checkpoint_lib
from electra_jax.interop import train_state
from electra_jax.interop.train_state import TrainState
from electra_jax.parallel import mesh as mesh_lib
from electra_jax.parallel import sharding

INPUT_KEYS = ('input_ids', 'token_type_ids', 'attention_mask')


# ---- Steps (pure) -------------------------------------------------------------------------------

def _apply(model, params, batch, deterministic, rngs=None, model_keys=()):
  return model.apply({'params': params}, *(batch[k] for k in INPUT_KEYS),
                     deterministic=deterministic, rngs=rngs,
                     **{k: batch[k] for k in model_keys})


def train_step(state: TrainState, batch: dict[str, jax.Array], base_rng: jax.Array, *,
               model, tx, loss_fn, model_keys=()) -> tuple[TrainState,
                                                            dict[str, jax.Array]]:
  """One AdamW step on a global batch; dropout keys are `fold_in(base_rng, step)`.

  `base_rng` is an argument, not a constant, so that every seed reuses one compiled step.
  `model_keys` name batch entries the model takes as keyword arguments in training.
  """
  dropout_rng = jax.random.fold_in(base_rng, state.step)

  def compute_loss(params):
    outputs = _apply(model, params, batch, False, {'dropout': dropout_rng}, model_keys)
    return loss_fn(outputs, batch)

  loss, grads = jax.value_and_grad(compute_loss)(state.params)
  updates, opt_state = tx.update(grads, state.opt_state, state.params)
  params = optax.apply_updates(state.params, updates)
  stats = {'loss': loss, 'grad_norm': optax.tree.norm(grads)}
  return state.replace(step=state.step + 1, params=params, opt_state=opt_state), stats


def predict_step(params: Any, batch: dict[str, jax.Array], *, model) -> dict[str, jax.Array]:
  """The task model's outputs without dropout."""
  return _apply(model, params, batch, True)


# ---- The loop -----------------------------------------------------------------------------------

@dataclasses.dataclass
class FineTuneTask:
  """What a task driver hands the loop.

  Attributes:
    name: for logs and paths, e.g. 'sst2' or 'squad_v2.0'.
    model: a `TaskModel`.
    loss_fn: pure `(outputs, batch) -> scalar mean loss`, traced inside the train step.
    train_arrays: inputs (`INPUT_KEYS`) and labels, each `[num_examples, ...]`; every key
      becomes a batch entry.
    evaluate: `(predict) -> {metric: value}` on dev, where `predict(arrays)` maps input arrays
      `[n, length]` to the model's numpy outputs `[n, ...]`.
    selection_metric: with `train.select_best_epoch`, the key of `evaluate`'s result that picks
      the best epoch (higher wins).
    num_epochs: the task's default epoch count (when `config.train.num_epochs` is -1).
    train_model_keys: batch entries the model also takes in training, as keyword arguments
      (SQuAD's joint head conditions the end logits on the gold `start_positions`).
  """
  name: str
  model: task_model_lib.TaskModel
  loss_fn: Callable[[dict[str, jax.Array], dict[str, jax.Array]], jax.Array]
  train_arrays: dict[str, np.ndarray]
  evaluate: Callable[[Callable[[dict[str, np.ndarray]], dict[str, np.ndarray]]],
                    dict[str, float]]
  selection_metric: str
  num_epochs: int
  train_model_keys: tuple[str, ...] = ()


@dataclasses.dataclass
class FineTuneResult:
  reported_epoch: int  # the last epoch, or with train.select_best_epoch the best on dev
  reported_metrics: dict[str, float]  # its history record
  history: list[dict[str, float]]  # per epoch: {'epoch', 'train_loss'[, dev metrics ...]}
  predict: Callable[[dict[str, np.ndarray]], dict[str, np.ndarray]]  # with its params


def _merge_encoder(params: dict[str, Any], encoder_params: dict[str, Any],
                   model_config: ml_collections.ConfigDict, shardings: Any) -> dict[str, Any]:
  """The task model's params with the encoder part replaced by the pre-trained one.

  The pre-trained tree is a standalone discriminator: its `discriminator_predictions` head is
  dropped, and scanned/unscanned layer layouts are converted to the task model's. Each host
  holds the whole (numpy) tree, so `device_put` places it onto any sharding.
  """
  convert = (param_trees.to_scanned_layers if model_config.scan_layers
             else param_trees.to_unscanned_layers)
  source = convert({k: v for k, v in encoder_params.items()
                    if k in task_model_lib.ENCODER_NAMES})
  expected_shapes = {k: jax.tree.map(np.shape, v) for k, v in params.items()
                    if k in task_model_lib.ENCODER_NAMES}
  source_shapes = jax.tree.map(np.shape, source)
  if expected_shapes != source_shapes:
    raise UserError(
        'The pre-trained encoder does not fit the task model built from its config: '
        f'expected {expected_shapes}, got {source_shapes}. Is the checkpoint complete?')
  merged = dict(params)
  for name, subtree in source.items():
    merged[name] = jax.device_put(
        jax.tree.map(lambda x: np.asarray(x, np.float32), subtree), shardings[name])
  return merged


def _host_rows(rows: np.ndarray) -> np.ndarray:
  """This host's share of a global batch's row indices (hosts hold all the small task data)."""
  per_host = len(rows) // jax.process_count()
  start = jax.process_index() * per_host
  return rows[start:start + per_host]


@dataclasses.dataclass
class _SeedRun:
  """One seed's set-up: the mesh, the sharded state and the jitted steps."""
  task: FineTuneTask
  hparams: ml_collections.ConfigDict
  seed: int
  mesh: Any
  rules: tuple
  state: TrainState
  abstract_state: Any
  train_step: Any  # jitted: (state, batch, dropout key) -> (state, stats); the state is donated
  predict_step: Any  # jitted: (params, batch) -> outputs
  batch_sharding: Any
  schedule: Any
  dropout_rng: jax.Array
  steps_per_epoch: int

  def global_batch(self, arrays: dict[str, np.ndarray], rows: np.ndarray) -> dict[str, Any]:
    local = _host_rows(rows)
    return {k: jax.make_array_from_process_local_data(self.batch_sharding, v[local])
            for k, v in arrays.items()}

  def predictor(self, params) -> Callable[[dict[str, np.ndarray]], dict[str, np.ndarray]]:
    """`predict(arrays)`: the model's numpy outputs for input arrays `[n, length]`, any n."""

    def predict(arrays: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
      arrays = {k: np.asarray(arrays[k]) for k in INPUT_KEYS}
      total, size = len(arrays['input_ids']), self.hparams.eval_batch_size
      chunks = []
      for begin in range(0, total, size):
        # The last batch is filled up with copies of its final row, dropped again below.
        rows = np.minimum(np.arange(begin, begin + size), total - 1)
        with sharding.mesh_scope(self.mesh, self.rules):
          outputs = self.predict_step(params, self.global_batch(arrays, rows))
        chunks.append(jax.tree.map(lambda x, n=min(size, total - begin): np.asarray(x)[:n],
                                   outputs))
      return jax.tree.map(lambda *xs: np.concatenate(xs), *chunks)

    return predict


def _setup_seed(config: ml_collections.ConfigDict, task: FineTuneTask, start: start_lib.StartingPoint,
                seed: int, devices: list[jax.Device]) -> _SeedRun:
  """Checks, hyperparameters, mesh, the sharded state (pre-trained encoder in place), steps."""
  start_lib.validate_finetune_config(config, len(devices))
  hparams = start_lib.resolve_hparams(config, start.model_config, task.num_epochs)
  num_examples = len(task.train_arrays['input_ids'])
  steps_per_epoch = num_examples // hparams.batch_size
  if steps_per_epoch < 1:
    raise UserError(f'{task.name}: {num_examples} training examples make no batch of '
                    f'config.train.batch_size={hparams.batch_size}; lower the batch size.')
  shape = mesh_lib.MeshShape.of(config.mesh, len(devices))
  mesh, rules = mesh_lib.make_mesh(shape, devices), shape.rules
  model = task.model
  length = task.train_arrays['input_ids'].shape[1]
  dummy = {k: jnp.ones((1, length), jnp.int32) for k in INPUT_KEYS}
  init_params = lambda rng: model.init({'params': rng}, *(dummy[k] for k in INPUT_KEYS),
                                       deterministic=True)['params']
  param_rng, dropout_rng = jax.random.split(jax.random.key(seed))
  abstract_params = nn.meta.unbox(jax.eval_shape(init_params, param_rng))
  tx, schedule = layerwise.make_optimizer(hparams, abstract_params, start.model_config.num_layers,
                                steps_per_epoch * hparams.num_epochs)

  def init_fn(rng):
    params = init_params(rng)
    return train_state.fresh(params, tx)

  state, abstract_state, state_shardings = sharding.create_sharded_state(init_fn, param_rng, mesh,
                                                                         rules)
  if start.encoder_params is not None:
    state = state.replace(params=_merge_encoder(state.params, start.encoder_params,
                                                start.model_config, state_shardings.params))
  batch_sharding = sharding.batch_sharding(mesh, rules)
  replicated = NamedSharding(mesh, P())
  jit_train_step = jax.jit(
      functools.partial(train_step, model=model, tx=tx, loss_fn=task.loss_fn,
                        model_keys=task.train_model_keys),
      in_shardings=(state_shardings, batch_sharding, replicated),
      out_shardings=(state_shardings, None),
      donate_argnums=(0,))
  jit_predict_step = jax.jit(functools.partial(predict_step, model=model),
                             in_shardings=(state_shardings.params, batch_sharding),
                             out_shardings=replicated)
  logging.info('%s, seed %d: %s; %d examples, %d epochs x %d steps, batch %d, lr %.2e, '
               'layer-wise decay %.2f (%s size), mesh %s.', task.name, seed, start.description,
               num_examples, hparams.num_epochs, steps_per_epoch, hparams.batch_size,
               hparams.learning_rate, hparams.layerwise_lr_decay, hparams.model_size,
               mesh_lib.describe(mesh))
  return _SeedRun(task, hparams, seed, mesh, rules, state, abstract_state, jit_train_step,
                  jit_predict_step, batch_sharding, schedule, dropout_rng, steps_per_epoch)


def _checkpoint_manager(workdir: str, selection_metric: Optional[str]) -> ocp.CheckpointManager:
  """Orbax keeps one checkpoint: the reported epoch's (the last, or the best on dev when
  `selection_metric` is given). An interrupted earlier attempt's checkpoints are removed."""
  tf.io.gfile.makedirs(workdir)
  checkpoint_dir = checkpoint_lib.checkpoint_dir(workdir)
  if jax.process_index() == 0 and tf.io.gfile.exists(checkpoint_dir):
    tf.io.gfile.rmtree(checkpoint_dir)
  return ocp.CheckpointManager(
      checkpoint_dir,
      options=ocp.CheckpointManagerOptions(
          max_to_keep=1, best_mode='max',
          best_fn=(lambda metrics: metrics[selection_metric]) if selection_metric else None),
      item_handlers={'params': ocp.StandardCheckpointHandler(),
                    'config': ocp.JsonCheckpointHandler(),
                    'tokenizer': checkpoint_lib.FilesHandler()})


def _train_epoch(run: _SeedRun, epoch: int, step: int, writer: reporting.MetricsWriter
                 ) -> tuple[int, float]:
  """One pass over the training arrays in this seed's and epoch's order; (step, mean loss)."""
  hparams, task = run.hparams, run.task
  num_examples = len(task.train_arrays['input_ids'])
  order = np.random.default_rng([run.seed, epoch]).permutation(num_examples)
  epoch_losses, logged = [], 0  # device scalars; read only at log points
  for index in range(run.steps_per_epoch):
    rows = order[index * hparams.batch_size:(index + 1) * hparams.batch_size]
    with sharding.mesh_scope(run.mesh, run.rules):
      run.state, stats = run.train_step(run.state, run.global_batch(task.train_arrays, rows),
                                        run.dropout_rng)
    step += 1
    epoch_losses.append(stats['loss'])
    if step % hparams.log_every == 0 or index == run.steps_per_epoch - 1:
      window = [float(x) for x in epoch_losses[logged:]]
      logged = len(epoch_losses)
      if not np.all(np.isfinite(window)):
        raise FloatingPointError(
            f'{task.name}: the loss became {window[-1]} by step {step}; lower '
            'config.train.learning_rate.')
      writer.write(step, {'loss': float(np.mean(window)),
                          'grad_norm': float(stats['grad_norm']),
                          'learning_rate': float(run.schedule(step - 1))})
  return step, float(np.mean([float(x) for x in epoch_losses]))


def fine_tune(config: ml_collections.ConfigDict, task: FineTuneTask, start: start_lib.StartingPoint, *,
              seed: int, workdir: str, devices: Optional[list[jax.Device]] = None
              ) -> FineTuneResult:
  """Fine-tunes one seed in `workdir` (its checkpoints/, metrics.jsonl, TensorBoard events).

  Trains every epoch; evaluates on dev after the last one (after every one to select the best).

  Args:
    config: the fine-tuning config (configs/finetune/*.py).
    task: the task, built by a driver.
    start: `start.load_starting_point(config)`.
    seed: fixes the head's initialisation, the data order and dropout.
    workdir: this seed's directory; an earlier run's checkpoints there are replaced.
    devices: the devices of the mesh (default: all).
  """
  jax.config.update('jax_threefry_partitionable', True)
  run = _setup_seed(config, task, start, seed, list(jax.devices() if devices is None else devices))
  hparams, select_best = run.hparams, run.hparams.select_best_epoch
  manager = _checkpoint_manager(workdir, task.selection_metric if select_best else None)
  writer = reporting.MetricsWriter(workdir)
  history, step = [], 0
  started = time.perf_counter()
  try:
    for epoch in range(1, hparams.num_epochs + 1):
      step, train_loss = _train_epoch(run, epoch, step, writer)
      record = {'epoch': epoch, 'step': step, 'train_loss': train_loss}
      history.append(record)
      if not (select_best or epoch == hparams.num_epochs):
        logging.info('%s seed %d epoch %d/%d (%.0fs): train loss %.4f', task.name, seed, epoch,
                     hparams.num_epochs, time.perf_counter() - started, record['train_loss'])
        continue
      metrics = {k: float(v) for k, v in task.evaluate(run.predictor(run.state.params)).items()}
      if select_best and task.selection_metric not in metrics:
        raise KeyError(f'{task.name}: evaluate() returned {sorted(metrics)}, without the '
                       f'selection metric {task.selection_metric!r}.')
      record.update(metrics)
      writer.write(step, {f'dev_{k}': v for k, v in metrics.items()})
      manager.save(epoch, args=ocp.args.Composite(
          params=ocp.args.StandardSave(run.state.params),
          config=ocp.args.JsonSave({'task': task.name, 'seed': seed, 'epoch': epoch,
                                    'model': start.model_config.to_dict(),
                                    'finetune': config.to_dict()}),
          tokenizer=checkpoint_lib.FilesSave(start.tokenizer_files)),
          metrics=metrics if select_best else None)
      logging.info('%s seed %d epoch %d/%d (%.0fs): train loss %.4f | %s', task.name, seed,
                   epoch, hparams.num_epochs, time.perf_counter() - started,
                   record['train_loss'],
                   ' | '.join(f'{k} {v:.4f}' for k, v in sorted(metrics.items())))
    manager.wait_until_finished()
    if select_best:
      reported = manager.best_step()  # orbax's choice decides: the kept checkpoint is the truth
      logging.info('%s seed %d: best epoch %d (%s %.4f).', task.name, seed, reported,
                   task.selection_metric, history[reported - 1][task.selection_metric])
      params = manager.restore(reported, args=ocp.args.Composite(
          params=ocp.args.StandardRestore(run.abstract_state.params)))['params']
    else:
      reported, params = hparams.num_epochs, run.state.params
  finally:
    manager.close()
    writer.close()
  run.state = None  # only the reported epoch's parameters are used from here on
  return FineTuneResult(reported_epoch=reported, reported_metrics=history[reported - 1],
                        history=history, predict=run.predictor(params))

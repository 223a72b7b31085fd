"""The fine-tuning loop shared by GLUE and SQuAD, top to bottom.

starting point (pre-trained discriminator or scratch) -> hyperparameters -> mesh -> sharded state ->
epochs of jitted train steps -> dev evaluation after the last epoch -> its checkpoint (orbax) ->
the final parameters back for the task driver's predictions.

Evaluation protocol: as the original (`run_finetuning.py` evaluates each trial once, after
training), the reported model is the one after the last epoch. `train.select_best_epoch=True`
evaluates on dev after every epoch and keeps the best (orbax's `best_fn`); that reads higher than
the paper's protocol, so results.json says so (`non_default_switches`).

A task driver (`glue.py`, `squad.py`) builds a `FineTuneTask`: the task model, a pure loss, the
training arrays and an `evaluate(predict)` callback. The loop knows nothing else about the task.

Layer-wise learning-rate decay, as the original's `_get_layer_lrs` (`model/optimization.py`):
embeddings (and the E->H projection) have depth 0, encoder layer i depth i + 1, the task head
depth L + 2, and a parameter at depth d gets `lr * decay ** (L + 2 - d)`: the head trains at the
full rate, the top layer at `decay**2`, the embeddings at `decay**(L + 2)`. The published scores
were made that way. `train.layerwise_lr_rule='no_gap'` puts the head at depth L + 1 instead
(`decay ** (L + 1 - d)`: every encoder weight 1/decay faster). The scale multiplies the whole
AdamW update, weight decay included, as the original applies its per-layer rate to both.
"""

from __future__ import annotations

import dataclasses
import functools
import json
import re
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

from electra_jax import checkpoint as checkpoint_lib
from electra_jax import convert
from electra_jax.errors import UserError
from electra_jax import files
from electra_jax import mesh as mesh_lib
from electra_jax import optimizer as optimizer_lib
from electra_jax import param_trees
from electra_jax import reporting
from electra_jax import sharding
from electra_jax import steps
from electra_jax import tokenizer as tokenizer_lib
from electra_jax import validate
from electra_jax.finetune import model as task_model_lib

INPUT_KEYS = ('input_ids', 'token_type_ids', 'attention_mask')
MODEL_SIZES = ('small', 'base', 'large')
# The reference fine-tuning rates per model size (ELECTRA.md): (learning rate, layer-wise decay).
_SIZE_HPARAMS = {'small': (1e-4, 0.8), 'base': (1e-4, 0.8), 'large': (5e-5, 0.9)}
# Compute settings that the fine-tuning config may choose for a loaded architecture.
_COMPUTE_FIELDS = ('dtype', 'param_dtype', 'scan_layers', 'remat')
# `train.layerwise_lr_rule` -> the task head's depth above the top encoder layer's (L).
_HEAD_DEPTH_OVER_LAYERS = {'original': 2, 'no_gap': 1}
# Switches that change what a reported number means, with the original's setting, which is the
# default in configs/finetune/ (tests/test_finetune_train.py checks they agree). A task's
# results.json lists every one that a run sets otherwise (`non_default_switches`).
PROTOCOL_SWITCHES = {
    'train.select_best_epoch': False,  # run_finetuning.py: evaluate once, after training
    'train.bias_correction': False,  # optimization.AdamWeightDecayOptimizer
    'train.layerwise_lr_rule': 'original',  # optimization._get_layer_lrs
    'task.classifier_head': 'electra',  # classification_tasks.py (GLUE)
    'task.double_unordered': True,  # configure_finetuning.double_unordered (GLUE)
    'task.qa_head': 'joint',  # qa_tasks.py: joint_prediction, answerable_classifier (SQuAD)
    'squad.null_score': 'classifier',  # qa_metrics.py: the classifier's logit alone (SQuAD)
}


# ---- Starting point ---------------------------------------------------------------------------

@dataclasses.dataclass
class StartingPoint:
  """The encoder to fine-tune: its config, its weights (None = random init) and the tokenizer."""
  model_config: ml_collections.ConfigDict
  encoder_params: Optional[dict[str, Any]]  # standalone Discriminator tree (numpy) or None
  tokenizer: Any
  tokenizer_files: list[str]
  description: str


def load_starting_point(config: ml_collections.ConfigDict) -> StartingPoint:
  """Reads `config.init_from` (workdir, HF directory or TF1 prefix) through the converter.

  With `init_from=''` the model is `config.model`, randomly initialised ("from scratch": for
  tests and baselines, not for real scores). The tokenizer is `config.tokenizer.path` when
  given, else the checkpoint's; from scratch with no path, the built-in corpus's model.
  """
  if config.init_from:
    pretrained = convert.load_checkpoint(config.init_from,
                                         step=None if config.init_step < 0 else config.init_step)
    model_config = ml_collections.ConfigDict(pretrained.disc_config.to_dict())
    params = jax.tree.map(np.asarray, nn.meta.unbox(pretrained.disc_params))
    tokenizer, files = pretrained.tokenizer, list(pretrained.tokenizer_files or [])
    description = f'pre-trained discriminator from {config.init_from}'
    for field in _COMPUTE_FIELDS:
      model_config[field] = config.model[field]
  else:
    model_config = ml_collections.ConfigDict(config.model.to_dict())
    params, tokenizer, files = None, None, []
    description = 'random initialisation (from scratch)'
  if config.train.dropout_prob >= 0:
    model_config.hidden_dropout_prob = config.train.dropout_prob
    model_config.attention_dropout_prob = config.train.dropout_prob
  validate.validate_model_config(model_config)

  if config.tokenizer.path:
    tokenizer = tokenizer_lib.load_tokenizer(config.tokenizer)
    files = tokenizer.files()
  elif tokenizer is None and not config.init_from:
    tokenizer = tokenizer_lib.load_tokenizer(
        config.tokenizer, tokenizer_lib.builtin_tokenizer_path(config))
    files = tokenizer.files()
  elif tokenizer is None:
    raise UserError(f'{config.init_from} carries no tokenizer: pass the one it was pre-trained '
                    'with as --config.tokenizer.path (and --config.tokenizer.type).')
  if tokenizer.vocab_size > model_config.vocab_size:
    raise UserError(
        f'The tokenizer has {tokenizer.vocab_size} pieces but the model only '
        f'{model_config.vocab_size} word embeddings: use the tokenizer the model was '
        'pre-trained with (or, from scratch, raise config.model.vocab_size).')
  return StartingPoint(model_config, params, tokenizer, files, description)


def model_size(config: ml_collections.ConfigDict, model_config: ml_collections.ConfigDict) -> str:
  """`config.model_size`, or guessed from the width: >= 1024 large, >= 768 base, else small."""
  if config.model_size:
    if config.model_size not in MODEL_SIZES:
      raise UserError(f'config.model_size={config.model_size!r}; use one of {MODEL_SIZES} '
                      "or '' to derive it from the model.")
    return config.model_size
  if model_config.hidden_size >= 1024:
    return 'large'
  return 'base' if model_config.hidden_size >= 768 else 'small'


def resolve_hparams(config: ml_collections.ConfigDict, model_config: ml_collections.ConfigDict,
                    default_epochs: int) -> ml_collections.ConfigDict:
  """`config.train` with the per-size / per-task defaults (-1 fields) filled in."""
  hparams = ml_collections.ConfigDict(config.train.to_dict())
  size = model_size(config, model_config)
  learning_rate, decay = _SIZE_HPARAMS[size]
  if hparams.learning_rate < 0:
    hparams.learning_rate = learning_rate
  if hparams.layerwise_lr_decay < 0:
    hparams.layerwise_lr_decay = decay
  if hparams.num_epochs < 0:
    hparams.num_epochs = default_epochs
  hparams.model_size = size
  return hparams


def validate_finetune_config(config: ml_collections.ConfigDict, num_devices: int) -> None:
  """Up-front checks of the loop's fields; each error names the field and the fix."""
  t = config.train
  sizes = validate.resolve_axis_sizes(config.mesh, num_devices)
  for field in ('batch_size', 'eval_batch_size'):
    validate.per_host_batch_size(t[field], jax.process_count(), f'config.train.{field}')
    validate.check_data_parallel_batch(f'config.train.{field}', t[field], sizes[0] * sizes[1])
  if not 0.0 <= t.warmup_fraction <= 1.0:
    raise UserError(f'config.train.warmup_fraction={t.warmup_fraction} must be in [0, 1].')
  if t.layerwise_lr_rule not in _HEAD_DEPTH_OVER_LAYERS:
    raise UserError(f'config.train.layerwise_lr_rule={t.layerwise_lr_rule!r}; use one of '
                    f'{sorted(_HEAD_DEPTH_OVER_LAYERS)}.')
  if t.layerwise_lr_decay == 0 or t.layerwise_lr_decay > 1:
    raise UserError(f'config.train.layerwise_lr_decay={t.layerwise_lr_decay}: use a value in '
                    '(0, 1] (1 = no decay), or -1 for the per-size default.')
  if t.num_epochs == 0 or t.learning_rate == 0:
    raise UserError('config.train.num_epochs and learning_rate must be positive (or -1 for '
                    'the task / size default).')
  if not config.seeds:
    raise UserError('config.seeds is empty: give at least one seed, e.g. --config.seeds=0,1,2.')
  if len(set(config.seeds)) != len(config.seeds):
    raise UserError(f'config.seeds={tuple(config.seeds)} repeats a seed.')


def non_default_switches(config: ml_collections.ConfigDict) -> dict[str, Any]:
  """{'section.field': value} for each of `PROTOCOL_SWITCHES` the config sets otherwise."""
  changed = {}
  for path, original in PROTOCOL_SWITCHES.items():
    section, field = path.split('.')
    if field in config.get(section, {}) and config[section][field] != original:
      changed[path] = config[section][field]
  return changed


# ---- Layer-wise learning-rate decay -------------------------------------------------------------

def head_depth(num_layers: int, rule: str = 'original') -> int:
  """The task head's depth: L + 2 as in the original (`'original'`), L + 1 with `'no_gap'`."""
  return num_layers + _HEAD_DEPTH_OVER_LAYERS[rule]


def layer_depths(params: Any, num_layers: int, rule: str = 'original') -> Any:
  """The depth of every parameter (see the module docstring), as a tree of int arrays.

  Scanned layers (`encoder/layers/...`, stacked on a leading axis of size L) get an int array
  `[L, 1, ...]` that broadcasts over each leaf, so every layer keeps its own depth.
  """

  def depth(path, leaf):
    top = param_trees.path_key(path[0])
    if top in ('embeddings', 'embeddings_project'):
      return np.zeros((), np.int32)
    if top == 'encoder':
      layer = param_trees.path_key(path[1])
      if layer == 'layers':
        shape = (num_layers,) + (1,) * (len(leaf.shape) - 1)
        return (np.arange(num_layers, dtype=np.int32) + 1).reshape(shape)
      match = re.fullmatch(r'layer_(\d+)', layer)
      if not match:
        raise ValueError(f'Unexpected encoder parameter {param_trees.path_name(path)}.')
      return np.asarray(int(match.group(1)) + 1, np.int32)
    if top in task_model_lib.HEAD_NAMES:
      return np.asarray(head_depth(num_layers, rule), np.int32)
    raise ValueError(f'Parameter {param_trees.path_name(path)} belongs to neither the encoder nor '
                    f'a task head {task_model_lib.HEAD_NAMES}.')

  return jax.tree_util.tree_map_with_path(depth, params)


def layerwise_lr_scales(params: Any, num_layers: int, decay: float,
                        rule: str = 'original') -> Any:
  """`decay ** (head depth - depth)` per parameter (float32; `[L, 1, ...]` for scanned layers)."""
  top = head_depth(num_layers, rule)
  return jax.tree.map(lambda d: np.asarray(np.float64(decay) ** (top - d), np.float32),
                      layer_depths(params, num_layers, rule))


def scale_by_tree(scales: Any) -> optax.GradientTransformation:
  """Multiplies each update by its own constant (broadcast) factor.

  optax.multi_transform labels whole leaves, which cannot give each layer of a scanned
  (stacked) parameter its own rate; a per-leaf factor array can.
  """

  def update_fn(updates, state, params=None):
    del params
    return jax.tree.map(lambda u, s: u * jnp.asarray(s, u.dtype), updates, scales), state

  return optax.GradientTransformation(lambda params: optax.EmptyState(), update_fn)


def make_optimizer(hparams: ml_collections.ConfigDict, params: Any, num_layers: int,
                   num_steps: int) -> tuple[optax.GradientTransformation, optax.Schedule]:
  """The reference AdamW (optimizer.py) with 10% warm-up, linear decay and layer-wise rates.

  The warm-up length is `warmup_fraction * num_steps` unrounded, as the original computes it.
  """
  schedule_config = ml_collections.ConfigDict(dict(
      learning_rate=hparams.learning_rate, num_steps=num_steps,
      warmup_steps=hparams.warmup_fraction * num_steps))
  schedule = optimizer_lib.learning_rate_schedule(schedule_config)
  scales = layerwise_lr_scales(params, num_layers, hparams.layerwise_lr_decay,
                               hparams.layerwise_lr_rule)
  tx = optax.chain(optimizer_lib.make_optimizer(hparams, schedule), scale_by_tree(scales))
  return tx, schedule


# ---- Steps (pure) -------------------------------------------------------------------------------

def _apply(model, params, batch, deterministic, rngs=None, model_keys=()):
  return model.apply({'params': params}, *(batch[k] for k in INPUT_KEYS),
                     deterministic=deterministic, rngs=rngs,
                     **{k: batch[k] for k in model_keys})


def train_step(state: steps.TrainState, batch: dict[str, jax.Array], base_rng: jax.Array, *,
               model, tx, loss_fn, model_keys=()) -> tuple[steps.TrainState,
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
  state: steps.TrainState
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


def _setup_seed(config: ml_collections.ConfigDict, task: FineTuneTask, start: StartingPoint,
                seed: int, devices: list[jax.Device]) -> _SeedRun:
  """Checks, hyperparameters, mesh, the sharded state (pre-trained encoder in place), steps."""
  validate_finetune_config(config, len(devices))
  hparams = resolve_hparams(config, start.model_config, task.num_epochs)
  num_examples = len(task.train_arrays['input_ids'])
  steps_per_epoch = num_examples // hparams.batch_size
  if steps_per_epoch < 1:
    raise UserError(f'{task.name}: {num_examples} training examples make no batch of '
                    f'config.train.batch_size={hparams.batch_size}; lower the batch size.')
  mesh = mesh_lib.make_mesh(config.mesh, devices)
  rules = validate.logical_axis_rules(config.mesh)
  model = task.model
  length = task.train_arrays['input_ids'].shape[1]
  dummy = {k: jnp.ones((1, length), jnp.int32) for k in INPUT_KEYS}
  init_params = lambda rng: model.init({'params': rng}, *(dummy[k] for k in INPUT_KEYS),
                                       deterministic=True)['params']
  param_rng, dropout_rng = jax.random.split(jax.random.key(seed))
  abstract_params = nn.meta.unbox(jax.eval_shape(init_params, param_rng))
  tx, schedule = make_optimizer(hparams, abstract_params, start.model_config.num_layers,
                                steps_per_epoch * hparams.num_epochs)

  def init_fn(rng):
    params = init_params(rng)
    return steps.TrainState(step=jnp.zeros((), jnp.int32), params=params,
                            opt_state=tx.init(params))

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


def fine_tune(config: ml_collections.ConfigDict, task: FineTuneTask, start: StartingPoint, *,
              seed: int, workdir: str, devices: Optional[list[jax.Device]] = None
              ) -> FineTuneResult:
  """Fine-tunes one seed in `workdir` (its checkpoints/, metrics.jsonl, TensorBoard events).

  Trains every epoch; evaluates on dev after the last one (after every one to select the best).

  Args:
    config: the fine-tuning config (configs/finetune/*.py).
    task: the task, built by a driver.
    start: `load_starting_point(config)`.
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


# ---- Seeds -------------------------------------------------------------------------------------

def _fingerprint(config: ml_collections.ConfigDict) -> dict[str, Any]:
  """The config as JSON, less the seed list: what makes two seeds' results comparable."""
  settings = json.loads(json.dumps(config.to_dict(), default=str))
  settings.pop('seeds', None)
  return settings


def run_seeds(config: ml_collections.ConfigDict, task_dir: str,
              run_seed: Callable[[int, str], dict[str, Any]]) -> list[dict[str, Any]]:
  """Runs `run_seed(seed, seed_dir)` for each of `config.seeds`, keeping each result as JSON.

  A seed whose `seed_<n>/result.json` was written with the same config is not run again, so an
  interrupted multi-seed job resumes at the first unfinished seed.

  Returns:
    [{'seed', **run_seed's result, 'config'}] in `config.seeds` order.
  """
  fingerprint = _fingerprint(config)
  results = []
  for seed in config.seeds:
    seed_dir = f'{task_dir.rstrip("/")}/seed_{seed}'
    path = f'{seed_dir}/result.json'
    if tf.io.gfile.exists(path):
      with tf.io.gfile.GFile(path) as f:
        saved = json.load(f)
      if saved.get('config') != fingerprint:
        raise UserError(f'{seed_dir} holds the result of a different configuration; use a new '
                        '--workdir (or restore the earlier settings to add seeds to it).')
      logging.info('Seed %d: reusing the finished run in %s.', seed, seed_dir)
      results.append(saved)
      continue
    result = {'seed': int(seed), **run_seed(int(seed), seed_dir), 'config': fingerprint}
    if jax.process_index() == 0:
      tf.io.gfile.makedirs(seed_dir)
      files.write_json(path, result)
    results.append(result)
  return results

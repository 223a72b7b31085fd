"""The offline probe with the encoder frozen: pooled features -> L2 logistic regression.

  python -m electra_jax.finetune.linear_probe --config=configs/finetune/probe.py \
      --workdir=/tmp/linear_probe --config.init_from=/tmp/electra-tiny

The same task, examples and featurisation as the fine-tuned probe (`configs/finetune/probe.py`:
`probe_data.read_examples`, `glue_data.encode_examples`, the encoder and tokenizer of
`init_from` read by `start.load_starting_point`), but nothing is fine-tuned: the pre-trained
encoder runs once over train and dev without dropout, each example becomes one feature vector
(`config.probe.linear_pooling`, `POOLINGS`), the features are standardised with the training
rows' statistics, and a multinomial logistic regression with an L2 penalty is fitted full-batch
with L-BFGS. The penalty is chosen from `config.probe.linear_l2_grid` by
`config.probe.linear_folds`-fold cross-validation on train alone; dev is predicted once, by the
model refitted on all of train. Deterministic (no seeds) and about half a minute for a tiny
encoder on a CPU, against minutes per seed for fine-tuning. Writes `WORKDIR/linear_probe.json`.

Measured on tiny runs (WORKSPACE.md, "The probe's task is topic"): it separates pre-trained from
untrained encoders, and ELECTRA from the other objectives of a 400-step equal-FLOPs comparison,
beyond dev-set noise (paired bootstrap); it orders 1500 below 6000 ELECTRA steps only within it.
"""

from __future__ import annotations

import functools
from typing import Any, Sequence

import flax.linen as nn
import jax
import jax.numpy as jnp
import ml_collections
import numpy as np
import optax
import tensorflow as tf
from absl import flags
from absl import logging

from electra_jax import files
from electra_jax import startup
from electra_jax.core import model as model_lib
from electra_jax.core import param_trees
from electra_jax.core import schema
from electra_jax.errors import UserError
from electra_jax.finetune import glue_data
from electra_jax.finetune import model as task_model_lib
from electra_jax.finetune import probe_data
from electra_jax.finetune import start as start_lib

# `config.probe.linear_pooling`: one vector per example from the encoder's hidden states.
#   'mean_all_layers': the mean over the non-padding tokens of every transformer layer's output,
#     concatenated ([num_layers * H]);
#   'mean': that mean of the last layer alone ([H]);
#   'cls': the last layer at [CLS], what the fine-tuning head reads ([H]).
POOLINGS = ('mean_all_layers', 'mean', 'cls')
RESULT_FILE = 'linear_probe.json'
# L-BFGS stops at this gradient norm (of the mean loss), or after MAX_ITERATIONS.
GRADIENT_TOLERANCE = 1e-5
MAX_ITERATIONS = 500


def validate_linear_config(config: ml_collections.ConfigDict) -> None:
  """Checks the probe's `linear_*` fields (the rest: `probe_data.validate_probe_config`)."""
  probe_data.validate_probe_config(config)
  p = config.probe
  if p.linear_pooling not in POOLINGS:
    raise UserError(f'config.probe.linear_pooling={p.linear_pooling!r}: use one of {POOLINGS}.')
  grid = tuple(p.linear_l2_grid)
  if not grid or any(not l2 > 0 for l2 in grid):
    raise UserError(f'config.probe.linear_l2_grid={grid}: give one or more positive L2 '
                    'strengths, e.g. (0.001, 0.01, 0.1).')
  if p.linear_folds < 2:
    raise UserError(f'config.probe.linear_folds={p.linear_folds} must be >= 2.')


# ---- Features ---------------------------------------------------------------------------------

class _FrozenEncoder(nn.Module):
  """The discriminator without its head (the task models' layout, `model.encode`)."""
  config: ml_collections.ConfigDict

  @nn.compact
  def __call__(self, input_ids, token_type_ids, attention_mask):
    tables = model_lib.EmbeddingTables(self.config, name='embeddings')()
    return model_lib.encode(self, self.config, tables, input_ids, token_type_ids, attention_mask,
                            deterministic=True)


def pool(layers: Sequence[jax.Array], attention_mask: jax.Array, pooling: str) -> jax.Array:
  """One float32 vector per example from every layer's output `[batch, length, H]` (`POOLINGS`)."""
  mask = attention_mask[..., None].astype(jnp.float32)
  mean = lambda hidden: ((hidden.astype(jnp.float32) * mask).sum(1)
                         / jnp.maximum(mask.sum(1), 1.0))
  if pooling == 'mean_all_layers':
    return jnp.concatenate([mean(hidden) for hidden in layers], axis=-1)
  if pooling == 'mean':
    return mean(layers[-1])
  if pooling == 'cls':
    return layers[-1][:, 0].astype(jnp.float32)
  raise ValueError(f'pooling={pooling!r}; use one of {POOLINGS}.')


def encoder_features(start: start_lib.StartingPoint, arrays: dict[str, np.ndarray],
                     pooling: str, batch_size: int = 128) -> np.ndarray:
  """The frozen encoder's pooled features `[num_examples, F]` (float32) of encoded examples.

  Args:
    start: the starting point (its `encoder_params` must be set: a pre-trained encoder).
    arrays: `glue_data.encode_examples`' arrays (`input_ids`, `token_type_ids`,
      `attention_mask`, each `[num_examples, length]`).
    pooling: one of `POOLINGS`.
    batch_size: examples per forward pass (the last batch is filled up, then cut).
  """
  model_config = ml_collections.ConfigDict(start.model_config.to_dict())
  model_config.scan_layers, model_config.remat = False, 'none'  # per-layer outputs, no grads
  params = param_trees.to_unscanned_layers(
      {k: v for k, v in start.encoder_params.items() if k in task_model_lib.ENCODER_NAMES})
  encoder = _FrozenEncoder(model_config)

  @jax.jit
  def features(batch):
    _, state = encoder.apply(
        {'params': params}, batch['input_ids'], batch['token_type_ids'], batch['attention_mask'],
        capture_intermediates=lambda module, _: isinstance(module, model_lib.TransformerLayer),
        mutable=['intermediates'])
    captured = state['intermediates']['encoder']
    layers = [captured[f'layer_{i}']['__call__'][0] for i in range(model_config.num_layers)]
    return pool(layers, batch['attention_mask'], pooling)

  total = len(arrays['input_ids'])
  chunks = []
  for begin in range(0, total, batch_size):
    rows = np.minimum(np.arange(begin, begin + batch_size), total - 1)
    batch = {k: arrays[k][rows] for k in ('input_ids', 'token_type_ids', 'attention_mask')}
    chunks.append(np.asarray(features(batch))[:min(batch_size, total - begin)])
  return np.concatenate(chunks) if chunks else np.zeros((0, 0), np.float32)


# ---- Logistic regression ----------------------------------------------------------------------

@functools.partial(jax.jit, static_argnames='num_classes')
def _fit(features, labels, weights, l2, num_classes):
  """L-BFGS on the weighted mean cross-entropy + l2/2 |W|^2 of standardised features."""
  total = weights.sum()
  mean = (weights[:, None] * features).sum(0) / total
  scale = jnp.sqrt((weights[:, None] * jnp.square(features - mean)).sum(0) / total)
  scale = jnp.where(scale > 1e-6, scale, 1.0)  # a constant feature stays 0
  inputs = (features - mean) / scale
  initial = {'kernel': jnp.zeros((features.shape[1], num_classes)),
             'bias': jnp.zeros((num_classes,))}

  def loss(params):
    logits = inputs @ params['kernel'] + params['bias']
    cross_entropy = optax.softmax_cross_entropy_with_integer_labels(logits, labels)
    return (weights * cross_entropy).sum() / total + 0.5 * l2 * jnp.sum(
        jnp.square(params['kernel']))

  solver = optax.lbfgs()
  value_and_grad = optax.value_and_grad_from_state(loss)

  def step(carry):
    params, state, iteration = carry
    value, grad = value_and_grad(params, state=state)
    updates, state = solver.update(grad, state, params, value=value, grad=grad, value_fn=loss)
    return optax.apply_updates(params, updates), state, iteration + 1

  def unfinished(carry):
    _, state, iteration = carry
    grad_norm = optax.tree_utils.tree_norm(optax.tree_utils.tree_get(state, 'grad'))
    return (iteration == 0) | ((iteration < MAX_ITERATIONS) & (grad_norm > GRADIENT_TOLERANCE))

  params, _, iterations = jax.lax.while_loop(unfinished, step,
                                             (initial, solver.init(initial), 0))
  return {'mean': mean, 'scale': scale, **params, 'iterations': iterations}


def fit_logistic_regression(features: np.ndarray, labels: np.ndarray, num_classes: int,
                            l2: float, weights: np.ndarray | None = None) -> dict[str, Any]:
  """Multinomial logistic regression on features standardised with the fitted rows' statistics.

  Args:
    features: `[n, F]`.
    labels: int `[n]` in `[0, num_classes)`.
    num_classes: output classes.
    l2: the penalty `l2 / 2 * |kernel|^2` added to the mean cross-entropy (the bias is free).
    weights: `[n]` 0/1: only rows of weight 1 are fitted (and give the statistics); default all.

  Returns:
    {'mean', 'scale', 'kernel', 'bias' (numpy), 'iterations' (int)} for `predict`.
  """
  weights = np.ones(len(labels), np.float32) if weights is None else weights
  model = _fit(jnp.asarray(features, jnp.float32), jnp.asarray(labels, jnp.int32),
               jnp.asarray(weights, jnp.float32), jnp.float32(l2), num_classes)
  return {k: int(v) if k == 'iterations' else np.asarray(v) for k, v in model.items()}


def predict(model: dict[str, Any], features: np.ndarray) -> np.ndarray:
  """Class indices `[n]` of `fit_logistic_regression`'s model."""
  inputs = (np.asarray(features, np.float32) - model['mean']) / model['scale']
  return np.argmax(inputs @ model['kernel'] + model['bias'], axis=-1)


def cross_validate(features: np.ndarray, labels: np.ndarray, num_classes: int,
                   l2_grid: Sequence[float], num_folds: int) -> list[float]:
  """Mean held-out accuracy over `num_folds` folds for each L2 strength of `l2_grid`.

  Example i is in fold `i % num_folds`: the probe's examples come in a seeded random order, and
  inputs sorted by class still get every class into every fold.
  """
  if len(labels) < num_folds:
    raise UserError(f'{len(labels)} training examples cannot make config.probe.linear_folds='
                    f'{num_folds} folds; lower it.')
  folds = np.arange(len(labels)) % num_folds
  scores = []
  for l2 in l2_grid:
    accuracies = []
    for fold in range(num_folds):
      model = fit_logistic_regression(features, labels, num_classes, l2,
                                      weights=(folds != fold).astype(np.float32))
      held_out = folds == fold
      accuracies.append(float(np.mean(predict(model, features[held_out]) == labels[held_out])))
    scores.append(float(np.mean(accuracies)))
  return scores


def fit_and_evaluate(train_features: np.ndarray, train_labels: np.ndarray,
                     dev_features: np.ndarray, dev_labels: np.ndarray, num_classes: int,
                     l2_grid: Sequence[float], num_folds: int) -> dict[str, Any]:
  """Picks the L2 strength on train alone, refits on all of train, scores dev once.

  The strength with the best cross-validated accuracy wins; of equal ones the strongest. Dev
  (features and labels) is used for nothing but the final accuracy.

  Returns:
    {'accuracy' (dev), 'dev_correct' (0/1 per dev example), 'l2', 'cv_accuracy' (per grid
    value, keyed by `str(l2)`),
    'cv_accuracy_at_l2' (the chosen one's: a train-only estimate, on more examples than dev
    holds, slightly optimistic as the best of the grid), 'train_accuracy', 'iterations'}.
  """
  train_labels, dev_labels = np.asarray(train_labels), np.asarray(dev_labels)
  l2_grid = [float(l2) for l2 in l2_grid]
  scores = cross_validate(train_features, train_labels, num_classes, l2_grid, num_folds)
  best = max(range(len(l2_grid)), key=lambda i: (scores[i], l2_grid[i]))
  model = fit_logistic_regression(train_features, train_labels, num_classes, l2_grid[best])
  dev_correct = predict(model, dev_features) == dev_labels
  return {
      'accuracy': float(np.mean(dev_correct)),
      'dev_correct': dev_correct.astype(int).tolist(),  # per dev example, for paired_bootstrap
      'l2': l2_grid[best],
      'cv_accuracy': dict(zip(map(str, l2_grid), scores)),
      'cv_accuracy_at_l2': scores[best],
      'train_accuracy': float(np.mean(predict(model, train_features) == train_labels)),
      'iterations': model['iterations'],
  }


def paired_bootstrap(correct_a: Sequence[int], correct_b: Sequence[int], level: float = 0.9,
                     resamples: int = 10_000, seed: int = 0) -> tuple[float, float, float]:
  """Dev accuracy of A minus B, and its `level` percentile interval over resampled dev sets.

  Both probes predicted the same dev examples (`dev_correct` of two results, in the same order),
  so one resample of example indices serves both: the interval is of the paired difference. An
  interval that excludes 0 says the gap is larger than the dev set's sampling noise.
  """
  a, b = np.asarray(correct_a, np.float64), np.asarray(correct_b, np.float64)
  if a.shape != b.shape or not a.size:
    raise ValueError(f'paired_bootstrap needs two equal, non-empty dev sets ({a.shape}, '
                     f'{b.shape}).')
  rows = np.random.default_rng(seed).integers(0, a.size, size=(resamples, a.size))
  differences = a[rows].mean(1) - b[rows].mean(1)
  tail = 100 * (1 - level) / 2
  low, high = np.percentile(differences, [tail, 100 - tail])
  return float(a.mean() - b.mean()), float(low), float(high)


# ---- Entry point ------------------------------------------------------------------------------

def run(config: ml_collections.ConfigDict, workdir: str,
        start: start_lib.StartingPoint | None = None) -> dict[str, Any]:
  """The linear probe of `config.init_from`; writes and returns `WORKDIR/linear_probe.json`.

  Args:
    config: a configs/finetune/probe.py config (with `init_from`).
    workdir: where `linear_probe.json` goes (created if missing).
    start: the encoder and tokenizer (default: `start.load_starting_point(config)`).

  Returns:
    {'task', 'init_from', 'init_step', 'pooling', 'accuracy' (dev), 'dev_correct', 'l2'
    (chosen), 'l2_grid',
    'num_folds', 'cv_accuracy', 'cv_accuracy_at_l2', 'train_accuracy', 'iterations',
    'num_train', 'num_dev', 'num_classes', 'dev_majority_share', 'max_seq_length',
    'num_features'}.
  """
  validate_linear_config(config)
  if start is None and not config.init_from:
    raise UserError('The linear probe reads a pre-trained encoder: set config.init_from (a '
                    'pre-training workdir, HF directory or TF1 prefix).')
  task = probe_data.get_task(config)
  start = start or start_lib.load_starting_point(config)
  if start.encoder_params is None:
    raise UserError('The linear probe reads a pre-trained encoder; this starting point has '
                    'none (random initialisation).')
  length = config.data.max_seq_length
  schema.check_sequence_fits(length, start.model_config)
  p = config.probe
  arrays = {split: glue_data.encode_examples(start.tokenizer, task,
                                             probe_data.read_examples(config, split), length)
            for split in probe_data.SPLITS}
  features = {split: encoder_features(start, arrays[split], p.linear_pooling,
                                      config.train.eval_batch_size)
              for split in probe_data.SPLITS}
  fitted = fit_and_evaluate(features['train'], arrays['train']['label'], features['dev'],
                            arrays['dev']['label'], task.num_labels, p.linear_l2_grid,
                            p.linear_folds)
  dev_labels = arrays['dev']['label']
  result = {
      'task': p.task, 'init_from': config.init_from, 'init_step': config.init_step,
      'pooling': p.linear_pooling, **fitted, 'l2_grid': [float(l2) for l2 in p.linear_l2_grid],
      'num_folds': p.linear_folds, 'num_train': len(arrays['train']['label']),
      'num_dev': len(dev_labels), 'num_classes': task.num_labels,
      'dev_majority_share': float(np.bincount(dev_labels).max() / len(dev_labels)),
      'max_seq_length': length, 'num_features': int(features['train'].shape[1]),
  }
  logging.info('Linear probe (%s, %s pooling) of %s: dev accuracy %.4f, L2 %g (%d train, %d '
               'dev).', p.task, p.linear_pooling, config.init_from, result['accuracy'],
               result['l2'], result['num_train'], result['num_dev'])
  if jax.process_index() == 0:
    tf.io.gfile.makedirs(workdir)
    files.write_json(f'{workdir.rstrip("/")}/{RESULT_FILE}', result)
  return result


def main(argv):
  startup.no_arguments(argv)
  startup.check_output_dir(flags.FLAGS.workdir, 'workdir')
  startup.quiet_checkpoint_logs()
  result = run(ml_collections.ConfigDict(flags.FLAGS.config.to_dict()), flags.FLAGS.workdir)
  print(f"linear probe ({result['task']}, {result['pooling']}): dev accuracy "
        f"{result['accuracy']:.4f}, L2 {result['l2']:g}, {result['num_train']} train / "
        f"{result['num_dev']} dev examples -> {flags.FLAGS.workdir}/{RESULT_FILE}", flush=True)


def _cli():
  from ml_collections import config_flags  # noqa: PLC0415
  config_flags.DEFINE_config_file('config', None, 'configs/finetune/probe.py (or finetune/probe).',
                                  lock_config=True)
  flags.DEFINE_string('workdir', None, f'Where {RESULT_FILE} is written.')
  flags.mark_flags_as_required(['config', 'workdir'])
  startup.run(main, config_subdir='finetune')


if __name__ == '__main__':
  _cli()

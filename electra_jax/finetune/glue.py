"""GLUE fine-tuning: examples (TSV or TFDS) -> encoded arrays -> the shared loop -> metrics.

For each seed: fine-tune, evaluate the final model on dev (with `train.select_best_epoch`, after
every epoch, the first dev split picking the best epoch by the task's ELECTRA-convention score:
MCC for CoLA, Spearman for STS-B, accuracy otherwise), then predict the test split(s) with the
reported parameters and write GLUE submission files into `WORKDIR/<task>/seed_<n>/submission/`.
"""

from __future__ import annotations

from typing import Any

import jax
import jax.numpy as jnp
import ml_collections
import numpy as np
import optax
from absl import logging

from electra_jax.core import schema
from electra_jax.errors import UserError
from electra_jax.finetune import glue_data
from electra_jax.finetune import metrics as metrics_lib
from electra_jax.finetune import model as task_model_lib
from electra_jax.finetune import probe_data
from electra_jax.finetune import seeds as seeds_lib
from electra_jax.finetune import start as start_lib
from electra_jax.finetune import train as train_lib

SELECTION_METRIC = 'selection_score'


def classification_loss(outputs: dict[str, jax.Array], batch: dict[str, jax.Array]) -> jax.Array:
  """Mean cross-entropy of logits `[batch, num_labels]` against int labels `[batch]`."""
  return optax.softmax_cross_entropy_with_integer_labels(outputs['logits'],
                                                         batch['label']).mean()


def regression_loss(outputs: dict[str, jax.Array], batch: dict[str, jax.Array]) -> jax.Array:
  """Mean squared error of the single output `[batch, 1]` against float labels `[batch]` (the
  normalised targets of `regression_targets`, as the original trains)."""
  return jnp.mean(jnp.square(outputs['logits'][:, 0] - batch['label']))


def regression_targets(task: glue_data.GlueTask, scores: np.ndarray) -> np.ndarray:
  """The original's normalised target `(score - min) / max` (`RegressionTask._add_features`):
  STS-B's 0..5 scores train as 0..1."""
  low, high = task.score_range
  return ((np.asarray(scores, np.float32) - low) / high).astype(np.float32)


def predictions_of(task: glue_data.GlueTask, logits: np.ndarray) -> np.ndarray:
  """Class indices `[n]` (argmax) or, for regression, the scores `[n]` on the gold scale
  (the inverse of `regression_targets`: STS-B outputs x 5)."""
  logits = np.asarray(logits)
  if task.is_regression:
    low, high = task.score_range
    return logits[:, 0] * high + low
  return np.argmax(logits, axis=-1)


def split_metrics(task: glue_data.GlueTask, split: str, scores: dict[str, float]
                  ) -> dict[str, float]:
  """Metric names as reported: plain for the first dev split, `<split>/<metric>` for others."""
  if split == task.dev_splits[0]:
    return dict(scores)
  return {f'{split}/{name}': value for name, value in scores.items()}


def _read(config: ml_collections.ConfigDict, task: glue_data.GlueTask, split: str):
  if config.task.kind == 'probe':  # the offline probe (configs/finetune/probe.py)
    return probe_data.read_examples(config, split)
  return glue_data.read_examples(task, split, source=config.data.source,
                                 data_dir=config.data.data_dir)


def run(config: ml_collections.ConfigDict, workdir: str,
        start: start_lib.StartingPoint | None = None) -> dict[str, Any]:
  """Fine-tunes `config.task.name` for every seed; returns the task's results (see __main__).

  Args:
    config: a configs/finetune/glue.py config.
    workdir: the experiment directory; this task writes into `workdir/<task>/`.
    start: the encoder to fine-tune (default: `train.load_starting_point(config)`).
  """
  if config.task.kind == 'probe':
    task = probe_data.get_task(config)
  else:
    task = glue_data.get_task(config.task.name)
  if config.data.source not in ('tsv', 'tfds') and config.task.kind != 'probe':
    raise UserError(f"config.data.source={config.data.source!r}: GLUE reads 'tsv' (with "
                    "data.data_dir) or 'tfds'.")
  if config.task.classifier_head not in task_model_lib.CLASSIFIER_HEADS:
    raise UserError(f'config.task.classifier_head={config.task.classifier_head!r}; use one of '
                    f'{task_model_lib.CLASSIFIER_HEADS}.')
  start = start or start_lib.load_starting_point(config)
  length = config.data.max_seq_length
  schema.check_sequence_fits(length, start.model_config)

  # ---- Data: every split read and encoded before any training (bad files fail fast).
  encode = lambda examples: glue_data.encode_examples(start.tokenizer, task, examples, length)
  train_examples = _read(config, task, 'train')
  if config.task.double_unordered:
    train_examples = glue_data.double_unordered(task, train_examples)
  train_arrays = encode(train_examples)
  if task.is_regression:
    train_arrays['label'] = regression_targets(task, train_arrays['label'])
  dev_arrays = {split: encode(_read(config, task, split)) for split in task.dev_splits}
  test_arrays = ({split: encode(_read(config, task, split)) for split in task.test_splits}
                 if config.task.predict_test else {})
  logging.info('%s: %d train, %s dev, %s test examples.', task.display_name,
               len(train_arrays['label']),
               {s: len(a['label']) for s, a in dev_arrays.items()},
               {s: len(a['label']) for s, a in test_arrays.items()})

  def evaluate(predict) -> dict[str, float]:
    results = {}
    for split, arrays in dev_arrays.items():
      predictions = predictions_of(task, predict(arrays)['logits'])
      scores = metrics_lib.task_metrics(task, predictions, arrays['label'])
      if split == task.dev_splits[0]:
        results[SELECTION_METRIC] = metrics_lib.task_score(task, scores, 'electra')
      results.update(split_metrics(task, split, scores))
    return results

  finetune_task = train_lib.FineTuneTask(
      name=task.name,
      model=task_model_lib.TaskModel(start.model_config, 'classification', task.num_labels,
                                     classifier_head=config.task.classifier_head),
      loss_fn=regression_loss if task.is_regression else classification_loss,
      train_arrays={k: train_arrays[k] for k in (*train_lib.INPUT_KEYS, 'label')},
      evaluate=evaluate, selection_metric=SELECTION_METRIC, num_epochs=task.num_epochs)

  def run_seed(seed: int, seed_dir: str) -> dict[str, Any]:
    result = train_lib.fine_tune(config, finetune_task, start, seed=seed, workdir=seed_dir)
    submissions = []
    for split, arrays in test_arrays.items():
      predictions = predictions_of(task, result.predict(arrays)['logits'])
      if jax.process_index() == 0:
        submissions.append(glue_data.write_submission(task, split, arrays['idx'], predictions,
                                                      f'{seed_dir}/submission'))
    metrics = {k: v for k, v in result.reported_metrics.items()
               if k not in ('epoch', 'step', 'train_loss')}
    return {'reported_epoch': result.reported_epoch, 'metrics': metrics,
            'history': result.history, 'submissions': submissions}

  seeds = seeds_lib.run_seeds(config, f'{workdir.rstrip("/")}/{task.name}', run_seed)
  hparams = start_lib.resolve_hparams(config, start.model_config, task.num_epochs)
  return {'task': task.name, 'kind': 'glue', 'display_name': task.display_name,
          'primary_metrics': list(task.metric_names), 'init_from': config.init_from,
          'hparams': hparams.to_dict(),
          'non_default_switches': start_lib.non_default_switches(config), 'seeds': seeds}

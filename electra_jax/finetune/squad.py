"""SQuAD v1.1 / v2.0 fine-tuning: examples -> windowed features -> the shared loop -> answers.

The default head is the original's joint one (`model.JointSpanHead`): training conditions the end
on the gold start and adds the answerability loss against the question's `is_impossible`; dev
prediction keeps a beam of starts x ends and the null odds are the classifier's logit alone.
`task.qa_head='independent'` is the BERT/HF-style head with per-window answerability labels.

A dev evaluation runs the whole official pipeline: per-window outputs -> n-best spans
(`squad_postprocess`) -> official EM/F1 (`squad_eval`). For v2.0 the null-odds threshold is tuned
on dev (the official `find_best_thresh`) and the answers are thresholded at the F1 threshold;
with `train.select_best_epoch` the tuned F1 picks the epoch. With the reported parameters (the
last epoch's by default) each seed writes `predictions.json` (and for v2.0 `null_odds.json`)
plus `eval.json` into its directory.
"""

from __future__ import annotations

from typing import Any

import jax
import jax.numpy as jnp
import ml_collections
import optax
from absl import logging

from electra_jax import files
from electra_jax.core import schema
from electra_jax.errors import UserError
from electra_jax.finetune import model as task_model_lib
from electra_jax.finetune import seeds as seeds_lib
from electra_jax.finetune import squad_data
from electra_jax.finetune import squad_eval
from electra_jax.finetune import squad_postprocess
from electra_jax.finetune import start as start_lib
from electra_jax.finetune import train as train_lib

VERSIONS = {'v1.1': 'v1.1', '1.1': 'v1.1', 'v2.0': 'v2.0', '2.0': 'v2.0'}
DEFAULT_EPOCHS = 2  # ELECTRA.md: SQuAD fine-tunes for 2 epochs
# The answerability label each head trains on: the original's joint head the question's own
# `is_impossible` (qa_tasks.py), the independent head whether this window holds no answer.
ANSWERABLE_LABEL = {'joint': 'is_impossible', 'independent': 'window_is_impossible'}


def span_loss(outputs: dict[str, jax.Array], batch: dict[str, jax.Array], *,
              answerable_weight: float, answerable_label: str = 'is_impossible') -> jax.Array:
  """(start + end cross-entropy) / 2 over the window's tokens (`[CLS]` = no answer in this
  window), plus, with an answerability head, `answerable_weight` x its sigmoid cross-entropy
  against `batch[answerable_label]`: the original's loss, averaged over the batch."""
  start = optax.softmax_cross_entropy_with_integer_labels(outputs['start_logits'],
                                                          batch['start_positions'])
  end = optax.softmax_cross_entropy_with_integer_labels(outputs['end_logits'],
                                                        batch['end_positions'])
  loss = jnp.mean(start + end) / 2.0
  if 'answerable_logits' in outputs:
    labels = batch[answerable_label].astype(jnp.float32)
    loss += answerable_weight * jnp.mean(
        optax.sigmoid_binary_cross_entropy(outputs['answerable_logits'], labels))
  return loss


def read_split(config: ml_collections.ConfigDict, version: str,
               split: str) -> list[squad_data.SquadExample]:
  """`split` is 'train' or 'dev', from TFDS or the official JSON files."""
  d = config.data
  if d.source == 'tfds':
    return squad_data.read_examples('tfds', version=version,
                                    split='train' if split == 'train' else 'validation',
                                    data_dir=d.data_dir)
  if d.source != 'json':
    raise UserError(f"config.data.source={d.source!r}: SQuAD reads 'json' or 'tfds'.")
  path = d.train_file if split == 'train' else d.dev_file
  if not path:
    if not d.data_dir:
      raise UserError(f"source='json' needs config.data.{split}_file or config.data.data_dir "
                      f'(holding {split}-{version}.json).')
    path = f'{d.data_dir.rstrip("/")}/{split}-{version}.json'
  return squad_data.read_examples('json', path=path)


def gold_answers(examples) -> dict[str, list[str]]:
  """{question id: gold answer texts}, [] for unanswerable questions."""
  return {e.qid: [] if e.is_impossible else list(e.answer_texts) for e in examples}


def score(version: str, gold, predictions: squad_postprocess.SquadPredictions
          ) -> tuple[dict[str, float], dict[str, str]]:
  """(official metrics, the answers scored). v2.0: answers thresholded at the tuned F1 threshold.

  v1.1: {'exact_match', 'f1'}. v2.0: {'exact', 'f1', 'HasAns_*', 'NoAns_*', 'best_exact',
  'best_exact_thresh', 'best_f1', 'best_f1_thresh'} (scores in percent).
  """
  if version == 'v1.1':
    return squad_eval.evaluate_v1(gold, predictions.predictions), predictions.predictions
  tuned = squad_postprocess.tune_null_threshold(gold, predictions)
  answers = squad_postprocess.apply_null_threshold(predictions, tuned['best_f1_thresh'])
  result = squad_eval.evaluate_v2(gold, answers)
  result.update(tuned)
  result.pop('total', None)
  for key in [k for k in result if k.endswith('_total')]:
    result.pop(key)
  return result, answers


def run(config: ml_collections.ConfigDict, workdir: str,
        start: start_lib.StartingPoint | None = None) -> dict[str, Any]:
  """Fine-tunes on SQuAD `config.task.name` for every seed; returns the task's results."""
  version = VERSIONS.get(config.task.name)
  if version is None:
    raise UserError(f"config.task.name={config.task.name!r}: use 'v1.1' or 'v2.0' "
                    '(configs/finetune/squad.py:v2.0).')
  version_2 = version == 'v2.0'
  s, d = config.squad, config.data
  qa_head = config.task.qa_head
  if qa_head not in task_model_lib.QA_HEADS:
    raise UserError(f'config.task.qa_head={qa_head!r}; use one of {task_model_lib.QA_HEADS}.')
  if s.null_score not in squad_postprocess.NULL_SCORES:
    raise UserError(f'config.squad.null_score={s.null_score!r}; use one of '
                    f'{squad_postprocess.NULL_SCORES}.')
  if qa_head == 'joint' and s.null_score != 'classifier':
    raise UserError(f"config.squad.null_score={s.null_score!r} needs the independent head's "
                    "span logits: with task.qa_head='joint' use 'classifier' (or set "
                    "--config.task.qa_head=independent).")
  if qa_head == 'joint' and not 1 <= s.beam_size <= d.max_seq_length:
    raise UserError(f'config.squad.beam_size={s.beam_size} must be in [1, '
                    f'data.max_seq_length={d.max_seq_length}].')
  start = start or start_lib.load_starting_point(config)
  schema.check_sequence_fits(d.max_seq_length, start.model_config)

  # ---- Data.
  featurize = lambda examples: squad_data.create_features(
      start.tokenizer, examples, d.max_seq_length, d.doc_stride, d.max_query_length)
  train_examples = read_split(config, version, 'train')
  dev_examples = read_split(config, version, 'dev')
  train_features, dev_features = featurize(train_examples), featurize(dev_examples)
  gold = gold_answers(dev_examples)
  logging.info('SQuAD %s: %d train questions (%d windows), %d dev questions (%d windows).',
               version, len(train_examples), len(train_features), len(dev_examples),
               len(dev_features))

  def predict_answers(predict, null_threshold: float = 0.0):
    outputs = predict(dev_features.model_inputs())
    if qa_head == 'joint':
      return squad_postprocess.postprocess_beam(
          dev_examples, dev_features, outputs, version_2=version_2,
          null_threshold=null_threshold, n_best_size=s.n_best_size,
          max_answer_length=s.max_answer_length)
    return squad_postprocess.postprocess(
        dev_examples, dev_features, outputs['start_logits'], outputs['end_logits'],
        version_2=version_2, answerable_logits=outputs.get('answerable_logits'),
        null_score=s.null_score if version_2 else 'span', null_threshold=null_threshold,
        n_best_size=s.n_best_size, max_answer_length=s.max_answer_length)

  def evaluate(predict) -> dict[str, float]:
    return score(version, gold, predict_answers(predict))[0]

  finetune_task = train_lib.FineTuneTask(
      name=f'squad_{version}',
      # The original's code trains its answerability classifier for v1.1 too (all labels 0).
      model=task_model_lib.TaskModel(start.model_config, 'span',
                                     answerability=version_2 or qa_head == 'joint',
                                     qa_head=qa_head, beam_size=s.beam_size),
      loss_fn=lambda outputs, batch: span_loss(outputs, batch,
                                               answerable_weight=s.answerable_weight,
                                               answerable_label=ANSWERABLE_LABEL[qa_head]),
      train_arrays={**train_features.model_inputs(), **train_features.labels()},
      evaluate=evaluate, selection_metric='best_f1' if version_2 else 'f1',
      num_epochs=DEFAULT_EPOCHS,
      train_model_keys=('start_positions',) if qa_head == 'joint' else ())

  def run_seed(seed: int, seed_dir: str) -> dict[str, Any]:
    result = train_lib.fine_tune(config, finetune_task, start, seed=seed, workdir=seed_dir)
    predictions = predict_answers(result.predict)
    metrics, answers = score(version, gold, predictions)
    if jax.process_index() == 0:
      predictions.predictions = answers  # predictions.json holds the answers scored here
      squad_postprocess.write_predictions(predictions, seed_dir)
      files.write_json(f'{seed_dir}/eval.json', metrics)
    return {'reported_epoch': result.reported_epoch, 'metrics': metrics,
            'history': result.history}

  task_key = f'squad_{version}'
  seeds = seeds_lib.run_seeds(config, f'{workdir.rstrip("/")}/{task_key}', run_seed)
  hparams = start_lib.resolve_hparams(config, start.model_config, DEFAULT_EPOCHS)
  return {'task': task_key, 'kind': 'squad', 'display_name': f'SQuAD {version}',
          'primary_metrics': ['exact', 'f1', 'best_f1_thresh'] if version_2
                             else ['exact_match', 'f1'],
          'init_from': config.init_from, 'hparams': hparams.to_dict(),
          'non_default_switches': start_lib.non_default_switches(config), 'seeds': seeds}

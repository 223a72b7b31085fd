"""GLUE metrics in numpy, the averaged GLUE score, and the median-over-seeds summary.

Metric values are fractions (accuracy 0.912, not 91.2); multiply by 100 only for display.
Correlations that are undefined (a constant input) are reported as 0.0, as scikit-learn does for
Matthews correlation, rather than NaN, so that "keep the best checkpoint" comparisons stay sound.

Two averaging conventions (`glue_average`), both over the eight tasks CoLA, SST-2, MRPC, STS-B,
QQP, MNLI, QNLI, RTE, i.e. without WNLI, which BERT and ELECTRA leave out (its dev set is
adversarial to the train set and the systems of the day did no better than the majority class):

- 'electra' (default): the ELECTRA paper's dev-set average: "Spearman correlation for STS,
  Matthews correlation for CoLA, and accuracy for the other GLUE tasks", MNLI = matched. The
  per-task dev figures in ELECTRA.md follow this convention (MRPC and QQP there are accuracies).
- 'glue': GLUE's own per-task score: a task with two metrics (MRPC, QQP: F1 and accuracy; STS-B:
  Pearson and Spearman) contributes their mean. MNLI still contributes only its matched
  accuracy and WNLI stays out, so this is not the leaderboard's score (which averages MNLI-m
  and -mm and includes WNLI) but the same eight tasks scored GLUE's way.
"""

from typing import Callable, Mapping, Sequence

import numpy as np

from electra_jax.finetune import glue_data


def _as_1d(name: str, values) -> np.ndarray:
  array = np.asarray(values)
  if array.ndim != 1:
    raise ValueError(f'{name} must be 1-D [num_examples], got shape {array.shape}.')
  return array


def _check_pair(predictions, labels) -> tuple[np.ndarray, np.ndarray]:
  predictions, labels = _as_1d('predictions', predictions), _as_1d('labels', labels)
  if predictions.shape != labels.shape:
    raise ValueError(f'predictions {predictions.shape} and labels {labels.shape} differ in '
                     'length: pass one prediction per labelled example.')
  if predictions.size == 0:
    raise ValueError('No examples to score.')
  return predictions, labels


def accuracy(predictions, labels) -> float:
  """Fraction of equal entries; `predictions`, `labels` are class indices `[n]`."""
  predictions, labels = _check_pair(predictions, labels)
  return float(np.mean(predictions == labels))


def f1(predictions, labels, positive_label: int = 1) -> float:
  """Binary F1 of the positive class: 2·TP / (2·TP + FP + FN); 0.0 when there is no positive."""
  predictions, labels = _check_pair(predictions, labels)
  predicted, actual = predictions == positive_label, labels == positive_label
  true_pos = np.sum(predicted & actual)
  denominator = np.sum(predicted) + np.sum(actual)
  return float(2 * true_pos / denominator) if denominator else 0.0


def matthews_corrcoef(predictions, labels) -> float:
  """Matthews correlation (multi-class form, Gorodkin 2004) of class indices `[n]`."""
  predictions, labels = _check_pair(predictions, labels)
  classes, encoded = np.unique(np.concatenate([labels, predictions]), return_inverse=True)
  true_index, pred_index = encoded[:len(labels)], encoded[len(labels):]
  confusion = np.zeros((len(classes), len(classes)), np.float64)
  np.add.at(confusion, (true_index, pred_index), 1)
  true_counts, pred_counts = confusion.sum(axis=1), confusion.sum(axis=0)
  correct, total = np.trace(confusion), confusion.sum()
  covariance = correct * total - true_counts @ pred_counts
  scale = np.sqrt((total**2 - pred_counts @ pred_counts) * (total**2 - true_counts @ true_counts))
  return float(covariance / scale) if scale else 0.0


def pearson(predictions, labels) -> float:
  """Pearson correlation of two float vectors `[n]`; 0.0 if either is constant."""
  predictions, labels = _check_pair(predictions, labels)
  x = predictions.astype(np.float64) - np.mean(predictions, dtype=np.float64)
  y = labels.astype(np.float64) - np.mean(labels, dtype=np.float64)
  scale = np.sqrt(np.sum(x * x) * np.sum(y * y))
  return float(np.sum(x * y) / scale) if scale else 0.0


def average_ranks(values) -> np.ndarray:
  """1-based ranks of `values` `[n]`, ties sharing the mean of their ranks (float64 `[n]`)."""
  unique, inverse, counts = np.unique(_as_1d('values', values), return_inverse=True,
                                      return_counts=True)
  del unique
  last_rank = np.cumsum(counts)  # the rank of each distinct value's last occurrence
  first_rank = last_rank - counts + 1
  return ((first_rank + last_rank) / 2.0)[inverse]


def spearman(predictions, labels) -> float:
  """Spearman rank correlation: Pearson correlation of the tie-averaged ranks."""
  predictions, labels = _check_pair(predictions, labels)
  return pearson(average_ranks(predictions), average_ranks(labels))


METRIC_FNS: dict[str, Callable[..., float]] = {
    'accuracy': accuracy,
    'f1': f1,
    'mcc': matthews_corrcoef,
    'pearson': pearson,
    'spearman': spearman,
}


def task_metrics(task, predictions, labels) -> dict[str, float]:
  """The task's official metrics.

  Args:
    task: a GLUE task name or `glue_data.GlueTask`.
    predictions: class indices `[n]` (classification) or predicted scores `[n]` (STS-B).
    labels: gold class indices or scores `[n]`.

  Returns:
    {metric name: value}, e.g. {'f1': 0.88, 'accuracy': 0.84} for MRPC.
  """
  task = glue_data.get_task(task) if isinstance(task, str) else task
  return {name: METRIC_FNS[name](predictions, labels) for name in task.metric_names}


# ---- Averaging -------------------------------------------------------------------------------

AVERAGED_TASKS = ('cola', 'sst2', 'mrpc', 'stsb', 'qqp', 'mnli', 'qnli', 'rte')
NOT_AVERAGED_KEYS = frozenset({'mnli_mismatched', 'mnli_mm', 'mnli-mm', 'ax'})
_ELECTRA_TASK_METRIC = {'cola': 'mcc', 'stsb': 'spearman'}  # every other task: accuracy


def task_score(task, metrics: Mapping[str, float], convention: str = 'electra') -> float:
  """One number per task under `convention` ('electra' or 'glue'; see the module docstring)."""
  task = glue_data.get_task(task) if isinstance(task, str) else task
  if convention == 'electra':
    names = (_ELECTRA_TASK_METRIC.get(task.name, 'accuracy'),)
  elif convention == 'glue':
    names = task.metric_names
  else:
    raise ValueError(f"Unknown averaging convention {convention!r}; use 'electra' or 'glue'.")
  missing = [n for n in names if n not in metrics]
  if missing:
    raise ValueError(f'{task.display_name} results lack {missing} (have {sorted(metrics)}).')
  return float(np.mean([metrics[n] for n in names]))


def glue_average(results: Mapping[str, Mapping[str, float]],
                 convention: str = 'electra') -> tuple[float, dict[str, float]]:
  """Averages per-task dev results the paper's way.

  Args:
    results: {task name: {metric name: value}}; MNLI's entry must be its *matched* dev
      results. WNLI and the keys in `NOT_AVERAGED_KEYS` ('mnli_mismatched', ...) may be
      present and are ignored; any other key must name a GLUE task.
    convention: 'electra' (the paper's) or 'glue' (two-metric tasks count their mean).

  Returns:
    (average, {task name: task score}) over the eight averaged tasks.
  """
  by_name = {glue_data.get_task(name).name: metrics for name, metrics in results.items()
             if name.lower() not in NOT_AVERAGED_KEYS}
  missing = [name for name in AVERAGED_TASKS if name not in by_name]
  if missing:
    raise ValueError(f'The GLUE average needs all of {AVERAGED_TASKS}; missing {missing}.')
  scores = {name: task_score(name, by_name[name], convention) for name in AVERAGED_TASKS}
  return float(np.mean(list(scores.values()))), scores


# ---- Seeds -----------------------------------------------------------------------------------


def summarize_seeds(values: Sequence[float]) -> dict[str, float]:
  """Median and spread of one metric over fine-tuning runs with different seeds.

  The paper reports medians because single GLUE runs on small tasks are noisy.

  Returns:
    {'median', 'mean', 'std' (population), 'min', 'max', 'num_seeds'}.
  """
  array = np.asarray(values, np.float64)
  if array.ndim != 1 or array.size == 0:
    raise ValueError(f'Need a non-empty list of per-seed values, got shape {array.shape}.')
  return {
      'median': float(np.median(array)),
      'mean': float(np.mean(array)),
      'std': float(np.std(array)),
      'min': float(np.min(array)),
      'max': float(np.max(array)),
      'num_seeds': int(array.size),
  }


def summarize_seed_results(
    per_seed: Sequence[Mapping[str, float]]) -> dict[str, dict[str, float]]:
  """{metric: summarize_seeds(values over seeds)} for a list of per-seed metric dicts."""
  if not per_seed:
    raise ValueError('No seed results to summarise.')
  names = set(per_seed[0])
  for run in per_seed[1:]:
    if set(run) != names:
      raise ValueError(f'Seeds report different metrics: {sorted(names)} vs {sorted(run)}.')
  return {name: summarize_seeds([run[name] for run in per_seed]) for name in sorted(names)}

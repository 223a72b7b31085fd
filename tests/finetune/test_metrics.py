"""GLUE metrics against scikit-learn / scipy, the GLUE average and the seed summary."""

import numpy as np
import pytest
from scipy import stats
from sklearn import metrics as sk_metrics

from electra_jax.finetune import metrics

_RNG = np.random.default_rng(1234)
# Fixed inputs: binary with imbalance, 3-class, and regression with ties.
BINARY_LABELS = _RNG.integers(0, 2, size=97)
BINARY_PREDS = np.where(_RNG.random(97) < 0.7, BINARY_LABELS, 1 - BINARY_LABELS)
MULTI_LABELS = _RNG.integers(0, 3, size=120)
MULTI_PREDS = np.where(_RNG.random(120) < 0.6, MULTI_LABELS, _RNG.integers(0, 3, size=120))
SCORES_GOLD = np.round(_RNG.uniform(0, 5, size=80) * 2) / 2  # many ties, as STS-B's labels
SCORES_PRED = SCORES_GOLD + _RNG.normal(0, 1.2, size=80)


def test_accuracy_and_f1_match_sklearn():
  assert metrics.accuracy(BINARY_PREDS, BINARY_LABELS) == pytest.approx(
      sk_metrics.accuracy_score(BINARY_LABELS, BINARY_PREDS))
  assert metrics.accuracy(MULTI_PREDS, MULTI_LABELS) == pytest.approx(
      sk_metrics.accuracy_score(MULTI_LABELS, MULTI_PREDS))
  assert metrics.f1(BINARY_PREDS, BINARY_LABELS) == pytest.approx(
      sk_metrics.f1_score(BINARY_LABELS, BINARY_PREDS))
  # No positive anywhere: sklearn's zero_division=0 convention.
  assert metrics.f1([0, 0, 0], [0, 0, 0]) == 0.0


@pytest.mark.parametrize('preds, labels', [
    (BINARY_PREDS, BINARY_LABELS),
    (MULTI_PREDS, MULTI_LABELS),
    ([1, 1, 1, 1], [0, 1, 0, 1]),  # constant prediction: undefined, sklearn says 0
])
def test_matthews_matches_sklearn(preds, labels):
  assert metrics.matthews_corrcoef(preds, labels) == pytest.approx(
      sk_metrics.matthews_corrcoef(labels, preds), abs=1e-12)


def test_matthews_by_hand():
  # TP=2, TN=1, FP=1, FN=0: (2*1 - 1*0) / sqrt(3*2*2*1) = 2/sqrt(12).
  assert metrics.matthews_corrcoef([1, 1, 1, 0], [1, 1, 0, 0]) == pytest.approx(2 / 12**0.5)


def test_correlations_match_scipy():
  assert metrics.pearson(SCORES_PRED, SCORES_GOLD) == pytest.approx(
      stats.pearsonr(SCORES_PRED, SCORES_GOLD)[0], abs=1e-12)
  assert metrics.spearman(SCORES_PRED, SCORES_GOLD) == pytest.approx(
      stats.spearmanr(SCORES_PRED, SCORES_GOLD)[0], abs=1e-12)
  # Ties in both inputs.
  x, y = [1, 2, 2, 3, 3, 3, 7], [0.5, 0.5, 1, 4, 2, 2, 9]
  assert metrics.spearman(x, y) == pytest.approx(stats.spearmanr(x, y)[0], abs=1e-12)
  np.testing.assert_allclose(metrics.average_ranks(x), stats.rankdata(x))
  assert metrics.pearson([1.0, 1.0, 1.0], [1.0, 2.0, 3.0]) == 0.0


def test_task_metrics_use_each_tasks_official_metrics():
  assert set(metrics.task_metrics('cola', BINARY_PREDS, BINARY_LABELS)) == {'mcc'}
  assert set(metrics.task_metrics('MRPC', BINARY_PREDS, BINARY_LABELS)) == {'f1', 'accuracy'}
  assert set(metrics.task_metrics('qqp', BINARY_PREDS, BINARY_LABELS)) == {'f1', 'accuracy'}
  assert set(metrics.task_metrics('STS-B', SCORES_PRED, SCORES_GOLD)) == {'pearson', 'spearman'}
  for task in ('sst2', 'mnli', 'qnli', 'rte', 'wnli'):
    assert set(metrics.task_metrics(task, MULTI_PREDS, MULTI_LABELS)) == {'accuracy'}


def test_bad_shapes_are_rejected():
  with pytest.raises(ValueError, match='differ in length'):
    metrics.accuracy([0, 1], [0, 1, 1])
  with pytest.raises(ValueError, match='1-D'):
    metrics.pearson(np.zeros((2, 2)), np.zeros((2, 2)))


def _results():
  return {
      'cola': {'mcc': 0.50},
      'sst2': {'accuracy': 0.90},
      'mrpc': {'f1': 0.90, 'accuracy': 0.80},
      'stsb': {'pearson': 0.88, 'spearman': 0.86},
      'qqp': {'f1': 0.70, 'accuracy': 0.90},
      'mnli': {'accuracy': 0.80},
      'mnli_mismatched': {'accuracy': 0.10},  # must not enter the average
      'qnli': {'accuracy': 0.85},
      'rte': {'accuracy': 0.65},
      'wnli': {'accuracy': 0.0},  # excluded, as in the paper
  }


def test_glue_average_electra_convention():
  average, scores = metrics.glue_average(_results())
  assert scores == {'cola': 0.50, 'sst2': 0.90, 'mrpc': 0.80, 'stsb': 0.86, 'qqp': 0.90,
                    'mnli': 0.80, 'qnli': 0.85, 'rte': 0.65}
  assert average == pytest.approx((0.5 + 0.9 + 0.8 + 0.86 + 0.9 + 0.8 + 0.85 + 0.65) / 8)


def test_glue_average_glue_convention_means_two_metric_tasks():
  average, scores = metrics.glue_average(_results(), convention='glue')
  assert scores['mrpc'] == pytest.approx(0.85)
  assert scores['stsb'] == pytest.approx(0.87)
  assert scores['qqp'] == pytest.approx(0.80)
  assert average == pytest.approx((0.5 + 0.9 + 0.85 + 0.87 + 0.8 + 0.8 + 0.85 + 0.65) / 8)


def test_glue_average_needs_all_eight_tasks():
  results = _results()
  del results['rte']
  with pytest.raises(ValueError, match='rte'):
    metrics.glue_average(results)
  with pytest.raises(ValueError, match='convention'):
    metrics.glue_average(_results(), convention='leaderboard')


def test_seed_summary():
  summary = metrics.summarize_seeds([0.7, 0.9, 0.8, 0.1, 0.85])
  assert summary['median'] == pytest.approx(0.8)
  assert summary['min'] == 0.1 and summary['max'] == 0.9 and summary['num_seeds'] == 5
  assert summary['std'] == pytest.approx(np.std([0.7, 0.9, 0.8, 0.1, 0.85]))
  per_metric = metrics.summarize_seed_results(
      [{'f1': 0.8, 'accuracy': 0.7}, {'f1': 0.9, 'accuracy': 0.6}, {'f1': 0.7, 'accuracy': 0.8}])
  assert per_metric['f1']['median'] == pytest.approx(0.8)
  assert per_metric['accuracy']['median'] == pytest.approx(0.7)
  with pytest.raises(ValueError, match='different metrics'):
    metrics.summarize_seed_results([{'f1': 1.0}, {'accuracy': 1.0}])

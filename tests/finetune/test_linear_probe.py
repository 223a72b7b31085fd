"""The frozen-encoder linear probe: it learns what is there, and picks the L2 on train alone."""

import json
import os

import numpy as np
import pytest

from electra_jax.errors import UserError
from electra_jax.finetune import linear_probe

GRID = (1e-3, 1e-2, 1e-1, 1.0)


def _blobs(centres, num_per_class, spread, rng):
  """Gaussian blobs around `centres` [classes, dims], sorted by class."""
  labels = np.repeat(np.arange(len(centres)), num_per_class)
  features = centres[labels] + spread * rng.normal(size=(len(labels), centres.shape[1]))
  return features.astype(np.float32), labels


def _task(spread, num_train=40, num_dev=100, num_classes=3, dims=6, seed=0):
  rng = np.random.default_rng(seed)
  centres = 4.0 * rng.normal(size=(num_classes, dims))
  return (*_blobs(centres, num_train, spread, rng), *_blobs(centres, num_dev, spread, rng))


def test_separable_classes_reach_full_dev_accuracy_and_shuffled_labels_stay_at_chance():
  train_x, train_y, dev_x, dev_y = _task(spread=2.0, dims=20)
  result = linear_probe.fit_and_evaluate(train_x, train_y, dev_x, dev_y, 3, GRID, 4)
  assert result['accuracy'] == 1.0 and result['train_accuracy'] == 1.0
  # Shuffled train labels: whole clusters go to one class or another, so one shuffle's dev
  # accuracy is coarse; over five shuffles it averages to chance (1/3 on 300 dev examples).
  chance = [linear_probe.fit_and_evaluate(train_x, np.random.default_rng(seed).permutation(train_y),
                                          dev_x, dev_y, 3, GRID, 4)['accuracy']
            for seed in range(5)]
  assert max(chance) < 0.6 and abs(np.mean(chance) - 1 / 3) < 0.1, chance


def test_the_l2_is_chosen_on_train_folds_alone():
  train_x, train_y, dev_x, dev_y = _task(spread=3.0)  # overlapping classes: the L2 matters
  first = linear_probe.fit_and_evaluate(train_x, train_y, dev_x, dev_y, 3, GRID, 4)
  other_dev_y = (dev_y + 1) % 3
  other_dev_x = dev_x[::-1].copy()
  second = linear_probe.fit_and_evaluate(train_x, train_y, other_dev_x, other_dev_y, 3, GRID, 4)
  assert second['l2'] == first['l2'] and second['cv_accuracy'] == first['cv_accuracy']
  assert second['accuracy'] != first['accuracy']  # dev did change, and only the score saw it
  scores = first['cv_accuracy']
  assert scores[str(first['l2'])] == first['cv_accuracy_at_l2'] == max(scores.values())
  assert len(set(scores.values())) > 1  # the grid is not flat, so the choice means something


def test_the_fit_uses_only_the_weighted_rows():
  train_x, train_y, _, _ = _task(spread=0.5)
  weights = (np.arange(len(train_y)) % 2).astype(np.float32)
  model = linear_probe.fit_logistic_regression(train_x, train_y, 3, 0.01, weights)
  garbage_x = train_x.copy()
  garbage_x[weights == 0] = 1e6  # rows of weight 0 change neither the statistics nor the fit
  same = linear_probe.fit_logistic_regression(garbage_x, train_y, 3, 0.01, weights)
  np.testing.assert_allclose(same['kernel'], model['kernel'], rtol=1e-5, atol=1e-6)
  np.testing.assert_allclose(same['mean'], model['mean'], rtol=1e-6)


@pytest.mark.parametrize('field, value', [('linear_pooling', 'max'), ('linear_l2_grid', ()),
                                          ('linear_l2_grid', (0.1, 0.0)), ('linear_folds', 1)])
def test_bad_linear_config_names_the_field(field, value):
  from electra_jax.configs.finetune import probe  # noqa: PLC0415
  config = probe.get_config()
  config.probe[field] = value
  with pytest.raises(UserError, match=rf'config\.probe\.{field}'):
    linear_probe.validate_linear_config(config)


def test_run_needs_a_pre_trained_encoder(tmp_path):
  from electra_jax.configs.finetune import probe  # noqa: PLC0415
  with pytest.raises(UserError, match=r'config\.init_from'):
    linear_probe.run(probe.get_config(), str(tmp_path))


def test_paired_bootstrap_of_a_dev_accuracy_difference():
  rng = np.random.default_rng(1)
  better = (rng.random(400) < 0.8).astype(int)
  worse = better * (rng.random(400) < 0.75)  # right on a subset of `better`'s examples
  gap, low, high = linear_probe.paired_bootstrap(worse, better)
  assert gap == pytest.approx(np.mean(worse) - np.mean(better))
  assert low < gap < high < 0  # about -0.2 on 400 examples: far beyond the noise
  # Two equally accurate probes that disagree on 20 examples, 10 each way: the interval holds 0.
  noisy = better.copy()
  flip = np.concatenate([rng.choice(np.flatnonzero(better == 1), 10, replace=False),
                         rng.choice(np.flatnonzero(better == 0), 10, replace=False)])
  noisy[flip] = 1 - noisy[flip]
  gap, low, high = linear_probe.paired_bootstrap(noisy, better)
  assert gap == 0 and low < 0 < high
  # The paired interval is narrower than the two accuracies' own spread would suggest.
  assert high - low < 0.1
  with pytest.raises(ValueError, match='equal'):
    linear_probe.paired_bootstrap(better, better[:10])


def test_run_on_a_tiny_checkpoint_writes_its_result(trained_tiny_run, tmp_path):
  from electra_jax.configs.finetune import probe  # noqa: PLC0415
  config = probe.get_config()
  config.init_from = trained_tiny_run.workdir
  config.data.max_seq_length = 32  # the tiny run's position table
  config.probe.max_train_examples, config.probe.max_dev_examples = 60, 30
  config.probe.linear_l2_grid = (0.01, 1.0)
  config.probe.linear_folds = 3
  workdir = str(tmp_path / 'linear')
  result = linear_probe.run(config, workdir)
  with open(os.path.join(workdir, linear_probe.RESULT_FILE)) as f:
    written = json.load(f)
  assert written == result
  assert 0.0 <= result['accuracy'] <= 1.0
  assert result['l2'] in (0.01, 1.0)
  assert (result['num_train'], result['num_dev'], result['num_classes']) == (60, 30, 10)
  assert result['pooling'] == 'mean_all_layers'
  assert result['num_features'] == 64  # one layer of 64
  assert len(result['dev_correct']) == 30
  assert np.mean(result['dev_correct']) == pytest.approx(result['accuracy'])

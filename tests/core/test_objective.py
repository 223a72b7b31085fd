"""Tests for electra_jax.core.objective: sampling, labels, gradient isolation, padding, AUC, ..."""

import functools

import flax.linen as nn
import jax
import jax.numpy as jnp
import ml_collections
import numpy as np
import pytest
from scipy import stats as scipy_stats
from sklearn.metrics import roc_auc_score

from electra_jax.core import model as model_lib
from electra_jax.core import objective
from electra_jax.spec import validate
from model_configs import tiny_model_config  # tests/model_configs.py

VOCAB, LENGTH, PREDICTIONS, MASK_ID = 100, 16, 4, 3


def tiny_config(**overrides):
  return tiny_model_config(**{'vocab_size': VOCAB, 'num_layers': 1, **overrides})


def electra_config(**overrides):
  return ml_collections.ConfigDict(dict(
      gen_weight=1.0, disc_weight=50.0, temperature=1.0, disallow_correct=False, sampler='gumbel') | overrides)


def make_model(sharing='shared', **overrides):
  model, params = _cached_model(sharing, tuple(sorted(overrides.items())))
  return model, jax.tree.map(lambda x: x, params)  # fresh dicts: tests may edit their copy


@functools.lru_cache(maxsize=None)
def _cached_model(sharing, overrides):
  config = tiny_config(**dict(overrides))
  model = model_lib.ElectraPretrainer(config, validate.generator_config(config, 0.5), sharing)
  init = jax.jit(lambda: model_lib.init_pretrainer_params(
      model, jax.random.key(0), LENGTH, PREDICTIONS))
  return model, nn.meta.unbox(init())


def make_batch(batch=4, length=LENGTH, seed=0):
  """A masked batch; example 0 is padded after 10 tokens, the last example uses 3 of 4 slots."""
  rng = np.random.default_rng(seed)
  input_ids = np.zeros((batch, length), np.int32)
  input_ids[:, :LENGTH] = rng.integers(5, VOCAB, (batch, LENGTH))
  attention_mask = np.zeros((batch, length), np.int32)
  attention_mask[:, :LENGTH] = 1
  attention_mask[0, 10:] = 0
  input_ids[attention_mask == 0] = 0
  token_type_ids = np.zeros((batch, length), np.int32)
  token_type_ids[:, LENGTH // 2:LENGTH] = 1
  positions = np.stack([rng.choice(np.arange(1, 9), PREDICTIONS, replace=False)
                        for _ in range(batch)]).astype(np.int32)
  weights = np.ones((batch, PREDICTIONS), np.float32)
  weights[-1, -1] = 0.0
  positions[-1, -1] = 0
  masked_lm_ids = np.take_along_axis(input_ids, positions, axis=1) * (weights > 0)
  masked_input_ids = input_ids.copy()
  for row in range(batch):
    masked_input_ids[row, positions[row][weights[row] > 0]] = MASK_ID
  return {k: jnp.asarray(v) for k, v in dict(
      input_ids=input_ids, attention_mask=attention_mask, token_type_ids=token_type_ids,
      masked_input_ids=masked_input_ids, masked_lm_positions=positions,
      masked_lm_ids=masked_lm_ids.astype(np.int32), masked_lm_weights=weights).items()}


def loss_fn(model, electra, **kwargs):
  return jax.jit(functools.partial(objective.pretraining_loss, model, electra_config=electra,
                                   deterministic=True, dropout_rng=None, **kwargs))


def _softmax(x):
  e = np.exp(x - x.max())
  return e / e.sum()


@pytest.mark.parametrize('sampler', ['gumbel', 'inverse_cdf'])
@pytest.mark.parametrize('temperature', [1.0, 2.0])
def test_sampling_frequencies_match_the_softmax(temperature, sampler):
  logits = jnp.array([2.0, 1.0, 0.0, -1.0, 0.5, -3.0])
  num_samples = 20_000
  keys = jax.random.split(jax.random.key(42), num_samples)
  samples = objective.sample_tokens(
      jnp.broadcast_to(logits, (num_samples, 1, 6)), keys, jnp.zeros((num_samples, 1), jnp.int32),
      temperature=temperature, sampler=sampler)
  observed = np.bincount(np.asarray(samples).ravel(), minlength=6)
  expected = _softmax(np.asarray(logits, np.float64) / temperature) * num_samples
  assert scipy_stats.chisquare(observed, expected).pvalue > 1e-3
  # The statistic is sensitive enough to tell the two temperatures apart.
  wrong = _softmax(np.asarray(logits, np.float64) / (3.0 - temperature)) * num_samples
  assert scipy_stats.chisquare(observed, wrong).pvalue < 1e-6


@pytest.mark.parametrize('sampler', ['gumbel', 'inverse_cdf'])
def test_disallow_correct_never_samples_the_original(sampler):
  logits = jnp.zeros((2000, 1, 3)).at[..., 1].set(5.0)
  originals = jnp.ones((2000, 1), jnp.int32)
  keys = jax.random.split(jax.random.key(0), 2000)
  assert bool(jnp.any(objective.sample_tokens(logits, keys, originals, sampler=sampler) == 1))
  assert not bool(jnp.any(objective.sample_tokens(logits, keys, originals, disallow_correct=True,
                                                  sampler=sampler) == 1))


def test_the_samplers_draw_differently_from_the_same_keys():
  logits = jax.random.normal(jax.random.key(1), (64, 4, 300))
  keys = jax.random.split(jax.random.key(2), 64)
  originals = jnp.zeros((64, 4), jnp.int32)
  gumbel = objective.sample_tokens(logits, keys, originals, sampler='gumbel')
  inverse = objective.sample_tokens(logits, keys, originals, sampler='inverse_cdf')
  assert float(jnp.mean(gumbel == inverse)) < 0.2  # same law, independent draws


def test_sampling_uses_one_key_per_example():
  with pytest.raises(ValueError, match='one key per example'):
    model, params = make_model()
    objective.pretraining_loss(model, params, make_batch(), sample_rng=jax.random.key(0),
                               dropout_rng=None, deterministic=True,
                               electra_config=electra_config())


def test_corrupt_input_ignores_unused_slots():
  input_ids = jnp.array([[2, 10, 11, 12, 4]])
  positions = jnp.array([[1, 3, 0]])
  corrupted = objective.corrupt_input(input_ids, positions, jnp.array([[50, 51, 52]]),
                                      jnp.array([[1.0, 1.0, 0.0]]))
  np.testing.assert_array_equal(corrupted, [[2, 50, 11, 51, 4]])  # [CLS] kept


@pytest.mark.parametrize('favoured_token,replaced', [(7, 0.0), (8, 1.0)])
def test_correct_samples_are_labelled_original(favoured_token, replaced):
  """Every masked token is 7; a generator that always samples 7 replaces nothing."""
  model, params = make_model()
  batch = make_batch()
  used = batch['masked_lm_weights'] > 0
  rows = jnp.arange(4)[:, None]
  batch['input_ids'] = batch['input_ids'].at[rows, batch['masked_lm_positions']].set(
      jnp.where(used, 7, batch['input_ids'][rows, batch['masked_lm_positions']]))
  batch['masked_lm_ids'] = jnp.where(used, 7, 0)
  params['generator']['generator_lm_head']['bias'] = (
      params['generator']['generator_lm_head']['bias'].at[favoured_token].set(1e4))
  _, stats = loss_fn(model, electra_config())(params, batch,
                                              sample_rng=jax.random.split(jax.random.key(1), 4))
  num_used = float(jnp.sum(batch['masked_lm_weights']))
  assert float(stats['replaced_count']) == replaced * num_used
  assert float(stats['sampled_masked_lm_correct']) == (1.0 - replaced) * num_used


def _grads_by_part(model, params, batch):
  """Gradients of the RTD loss alone and of the masked-LM loss alone (one compilation)."""

  def grad(p, gen_weight, disc_weight):
    return jax.grad(lambda q: objective.pretraining_loss(
        model, q, batch, sample_rng=jax.random.split(jax.random.key(3), 4), dropout_rng=None,
        deterministic=True,
        electra_config=electra_config(gen_weight=gen_weight, disc_weight=disc_weight))[0])(p)

  return jax.jit(lambda p: (grad(p, 0.0, 1.0), grad(p, 1.0, 0.0)))(params)


def _max_abs(tree):
  return max(float(jnp.max(jnp.abs(x))) for x in jax.tree.leaves(tree))


def test_disc_loss_gives_exactly_zero_gradient_to_generator_only_params():
  model, params = make_model()
  disc_only, gen_only = _grads_by_part(model, params, make_batch())
  assert _max_abs(disc_only['generator']) == 0.0
  assert _max_abs(disc_only['discriminator']) > 0.0
  assert _max_abs(disc_only['shared_embeddings']) > 0.0  # 'shared': RTD pulls on the tables
  assert _max_abs(gen_only['generator']) > 0.0 and _max_abs(gen_only['discriminator']) == 0.0


def test_gdes_keeps_the_rtd_gradient_off_the_shared_table():
  model, params = make_model('gdes')
  disc_only, gen_only = _grads_by_part(model, params, make_batch())
  assert _max_abs(disc_only['shared_embeddings']) == 0.0
  assert _max_abs(disc_only['embeddings_delta']['word_embeddings']) > 0.0
  assert _max_abs(gen_only['shared_embeddings']['word_embeddings']) > 0.0
  assert _max_abs(gen_only['embeddings_delta']) == 0.0


def test_padding_contributes_nothing():
  model, params = make_model()
  batch = make_batch()
  keys = jax.random.split(jax.random.key(5), 4)
  loss, stats = loss_fn(model, electra_config())(params, batch, sample_rng=keys)
  assert float(stats['disc_count']) == float(jnp.sum(batch['attention_mask']))
  # Garbage in the padded positions, and four more padded positions, change nothing.
  padded = make_batch(length=LENGTH + 4)
  garbage = jnp.where(padded['attention_mask'] == 0, 42, padded['input_ids'])
  padded['input_ids'], padded['masked_input_ids'] = garbage, jnp.where(
      padded['attention_mask'] == 0, 42, padded['masked_input_ids'])
  padded['token_type_ids'] = jnp.where(padded['attention_mask'] == 0, 1,
                                       padded['token_type_ids'])
  loss2, stats2 = loss_fn(model, electra_config())(params, padded, sample_rng=keys)
  np.testing.assert_allclose(loss2, loss, rtol=1e-5)
  for name in ('disc_count', 'disc_tp', 'disc_fp', 'replaced_count', 'masked_lm_count'):
    assert float(stats2[name]) == float(stats[name]), name


def test_micro_batches_with_full_batch_normalizers_add_up_to_the_full_batch():
  model, params = make_model()
  batch = make_batch()
  keys = jax.random.split(jax.random.key(7), 4)
  normalizers = objective.loss_normalizers(batch)

  @jax.jit
  def loss_and_grad(p, b, k):
    return jax.value_and_grad(
        lambda q: objective.pretraining_loss(
            model, q, b, sample_rng=k, dropout_rng=None, deterministic=True,
            electra_config=electra_config(), normalizers=normalizers),
        has_aux=True)(p)

  (full_loss, full_stats), full_grads = loss_and_grad(params, batch, keys)
  halves = [loss_and_grad(params, jax.tree.map(lambda x, s=s: x[s], batch), keys[s])
            for s in (slice(0, 2), slice(2, 4))]
  np.testing.assert_allclose(halves[0][0][0] + halves[1][0][0], full_loss, rtol=1e-5)
  for name, value in full_stats.items():
    np.testing.assert_allclose(halves[0][0][1][name] + halves[1][0][1][name], value, rtol=1e-5,
                               atol=1e-5, err_msg=name)
  jax.tree.map(lambda a, b, f: np.testing.assert_allclose(a + b, f, atol=1e-5),
               halves[0][1], halves[1][1], full_grads)
  # Normalised by its own counts (as without `normalizers`), a half's loss would differ.
  own = objective.summarize(halves[0][0][1])['loss']
  assert abs(float(own) - float(halves[0][0][0])) > 1e-3


def test_summarize_gives_the_reference_metrics():
  model, params = make_model()
  batch = make_batch()
  loss, stats = loss_fn(model, electra_config())(
      params, batch, sample_rng=jax.random.split(jax.random.key(9), 4))
  metrics = objective.summarize(stats)
  assert set(metrics) == {
      'masked_lm_accuracy', 'masked_lm_loss', 'sampled_masked_lm_accuracy', 'disc_loss',
      'disc_accuracy', 'disc_precision', 'disc_recall', 'replaced_fraction', 'disc_auc',
      'disc_auc_with_padding', 'loss'}
  np.testing.assert_allclose(metrics['loss'], loss, rtol=1e-5)
  # A random generator over 100 tokens is near ln(100) and replaces almost every masked token.
  assert 4.0 < float(metrics['masked_lm_loss']) < 5.2
  num_used, num_tokens = objective.loss_normalizers(batch)
  assert float(metrics['replaced_fraction']) * float(num_tokens) <= float(num_used)
  assert float(metrics['replaced_fraction']) > 0.5 * float(num_used) / float(num_tokens)
  total = sum(float(stats[k]) for k in ('disc_tp', 'disc_fp', 'disc_fn', 'disc_tn'))
  assert total == float(num_tokens)


def test_auc_from_summed_histograms_matches_sklearn():
  rng = np.random.default_rng(0)
  labels = rng.random((6, 200)) < 0.15
  logits = rng.normal(size=(6, 200)) * 3 + labels * 2.0
  weights = np.ones_like(logits)
  weights[:, 180:] = 0  # padding is not scored
  summed = {'pos': 0.0, 'neg': 0.0}
  for row in range(6):  # one "eval batch" per row, histograms summed
    summed['pos'] += objective._auc_histogram(jnp.asarray(logits[row]),
                                              jnp.asarray(labels[row] * weights[row]))
    summed['neg'] += objective._auc_histogram(jnp.asarray(logits[row]),
                                              jnp.asarray(~labels[row] * weights[row]))
  auc = float(objective.auc_from_histograms(summed['pos'], summed['neg']))
  real = weights.astype(bool)
  expected = roc_auc_score(labels[real], logits[real])
  assert abs(auc - expected) < 1e-3
  per_batch_mean = np.mean([roc_auc_score(labels[r][real[r]], logits[r][real[r]])
                            for r in range(6)])
  assert abs(per_batch_mean - expected) > abs(auc - expected)  # the summed version is the right one
  assert float(objective.auc_from_histograms(summed['pos'] * 0, summed['neg'])) == 0.5


def test_bfloat16_and_dropout_training_loss_is_finite():
  model, params = make_model(dtype='bfloat16')
  batch = make_batch()
  loss, stats = jax.jit(functools.partial(
      objective.pretraining_loss, model, electra_config=electra_config(), deterministic=False))(
          params, batch, sample_rng=jax.random.split(jax.random.key(0), 4),
          dropout_rng=jax.random.key(1))
  assert np.isfinite(float(loss)) and loss.dtype == jnp.float32
  assert all(np.all(np.isfinite(np.asarray(v))) for v in stats.values())


def _brute_force_auc(positive_scores, negative_scores):
  """Mean over all (replaced, original) pairs: 1 if ranked right, 1/2 if tied."""
  pos = np.asarray(positive_scores, np.float64)[:, None]
  neg = np.asarray(negative_scores, np.float64)[None, :]
  return float(np.mean((pos > neg) + 0.5 * (pos == neg)))


def test_token_only_auc_on_a_hand_made_batch():
  # Reference (training) counts per id. Id 0 is never seen, so it gets the global rate; ids 1
  # and 2 have the same counts, so they tie; id 4 is mostly replaced.
  ref_replaced = np.array([0, 1, 1, 0, 7, 1], np.float32)
  ref_seen = np.array([0, 3, 3, 9, 8, 1], np.float32)
  # The evaluated positions as (id, replaced?): a hand-made batch.
  positions = [(0, 1), (0, 0), (1, 1), (1, 0), (1, 0), (2, 0), (3, 0), (3, 0), (3, 1), (4, 1),
               (4, 1), (4, 0), (5, 1), (5, 0)]
  replaced, seen = np.zeros(6, np.float32), np.zeros(6, np.float32)
  for token, label in positions:
    seen[token] += 1
    replaced[token] += label
  # One pseudo-observation at the global rate 10/24 per id, by hand:
  # id 0: 0.417, ids 1 and 2: 0.354, id 3: 0.042, id 4: 0.824, id 5: 0.708.
  score = (ref_replaced + 10 / 24) / (ref_seen + 1)
  np.testing.assert_allclose(score, [0.41667, 0.35417, 0.35417, 0.041667, 0.82407, 0.70833],
                             rtol=1e-4)
  # 6 replaced x 8 original positions = 48 pairs; per replaced position, the originals ranked
  # below it plus one half per tie:
  #   id 0: ids 1, 1, 2, 3, 3 below, its own original tied -> 5.5
  #   id 1: ids 3, 3 below, ids 1, 1, 2 tied -> 3.5
  #   id 3: ids 3, 3 tied -> 1
  #   id 4 (twice): all but its own original, which ties -> 7.5 each
  #   id 5: all but id 4 below, its own original tied -> 6.5
  expected = (5.5 + 3.5 + 1 + 2 * 7.5 + 6.5) / 48
  pos_scores = [score[t] for t, label in positions if label]
  neg_scores = [score[t] for t, label in positions if not label]
  assert _brute_force_auc(pos_scores, neg_scores) == pytest.approx(expected)
  auc = objective.token_only_auc(ref_replaced, ref_seen, replaced, seen)
  assert float(auc) == pytest.approx(expected, abs=1e-6)
  # Ranking by the evaluated counts themselves would be optimistic: hence the reference.
  assert float(objective.token_only_auc(replaced, seen, replaced, seen)) > expected
  assert float(objective.token_only_auc(ref_replaced, ref_seen, replaced * 0, seen)) == 0.5


def test_token_only_auc_matches_brute_force_pairs():
  rng = np.random.default_rng(3)
  vocab = 50
  ref_seen = rng.integers(0, 6, vocab).astype(np.float32)
  ref_replaced = np.floor(ref_seen * rng.random(vocab)).astype(np.float32)
  ids = rng.integers(0, vocab, 400)
  labels = rng.random(400) < 0.2
  replaced = np.bincount(ids[labels], minlength=vocab).astype(np.float32)
  seen = np.bincount(ids, minlength=vocab).astype(np.float32)
  score = (ref_replaced + 0.7 * ref_replaced.sum() / ref_seen.sum()) / (ref_seen + 0.7)
  expected = _brute_force_auc(score[ids[labels]], score[ids[~labels]])
  auc = objective.token_only_auc(ref_replaced, ref_seen, replaced, seen, prior=0.7)
  assert float(auc) == pytest.approx(expected, abs=1e-5)


def test_auc_with_padding_is_the_originals_metric():
  """tf.metrics.auc(labels * input_mask, probs * input_mask) over every position, exactly."""
  rng = np.random.default_rng(1)
  labels = rng.random((4, 64)) < 0.15
  logits = rng.normal(size=(4, 64)) + labels * 1.5
  mask = np.ones((4, 64))
  mask[:, 40:] = 0
  mask[0, 20:] = 0
  labels &= mask.astype(bool)
  positive = objective._auc_histogram(jnp.asarray(logits), jnp.asarray(labels * mask))
  negative = objective._auc_histogram(jnp.asarray(logits), jnp.asarray(~labels * mask))
  probs = 1 / (1 + np.exp(-logits))
  expected = roc_auc_score((labels * mask).ravel(), (probs * mask).ravel())
  auc = objective.auc_with_padding(positive, negative, np.sum(1 - mask))
  assert float(auc) == pytest.approx(expected, abs=1e-3)
  # Padding counts as easy negatives, so this reads higher than the AUC over real tokens.
  assert float(auc) > float(objective.auc_from_histograms(positive, negative)) + 0.02


def test_stats_count_each_corrupted_token_id():
  model, params = make_model()
  batch = make_batch()
  _, stats = loss_fn(model, electra_config())(
      params, batch, sample_rng=jax.random.split(jax.random.key(9), 4))
  assert stats['token_seen_count'].shape == (VOCAB,)
  assert float(jnp.sum(stats['token_seen_count'])) == float(stats['disc_count'])
  assert float(jnp.sum(stats['token_replaced_count'])) == float(stats['replaced_count'])
  assert float(stats['padding_count']) == float(jnp.sum(1 - batch['attention_mask']))
  # Every real position not written by a sample keeps its id and is counted under it.
  kept = np.asarray(batch['masked_input_ids']) != MASK_ID
  kept &= np.asarray(batch['attention_mask']) > 0
  kept_counts = np.bincount(np.asarray(batch['input_ids'])[kept], minlength=VOCAB)
  assert np.all(np.asarray(stats['token_seen_count']) >= kept_counts)
  metrics = objective.summarize(stats, token_reference=stats)
  np.testing.assert_allclose(metrics['disc_auc_context_gain'],
                             metrics['disc_auc'] - metrics['disc_auc_token_only'])

"""Dynamic masking: counts, statistics of the replacement split, specials, slot layout."""

import numpy as np
import pytest
import tensorflow as tf

from electra_jax.data import masking

PAD, UNK, CLS, SEP, MASK = 0, 1, 2, 3, 4
VOCAB = 1000
LENGTH = 128


def _options(**overrides):
  values = dict(mask_prob=0.15, max_predictions=19, mask_token_prob=0.85, random_token_prob=0.0,
                vocab_size=VOCAB, pad_id=PAD, cls_id=CLS, sep_id=SEP, mask_id=MASK, unk_id=UNK)
  values.update(overrides)
  return masking.MaskingOptions(**values)


def _packed_batch(batch_size=256, seed=0):
  """Synthetic packed examples: [CLS] A [SEP] B [SEP] + padding, random real lengths."""
  rng = np.random.default_rng(seed)
  ids = np.zeros([batch_size, LENGTH], np.int32)
  types = np.zeros([batch_size, LENGTH], np.int32)
  for row in range(batch_size):
    length = rng.integers(6, LENGTH + 1)
    ids[row, :length] = rng.integers(5, VOCAB, size=length)
    ids[row, 0] = CLS
    first_sep = rng.integers(2, length - 2)
    ids[row, first_sep] = SEP
    ids[row, length - 1] = SEP
    types[row, first_sep + 1:length] = 1
  return {'input_ids': tf.constant(ids), 'token_type_ids': tf.constant(types)}


def _mask(batch, seed, options):
  out = masking.mask_batch(batch, tf.constant([seed, 7], tf.int64), options)
  return {k: v.numpy() for k, v in out.items()}


def test_slot_layout_counts_and_specials():
  batch = _packed_batch()
  out = _mask(batch, 0, _options())
  ids = batch['input_ids'].numpy()
  assert set(out) == {'input_ids', 'attention_mask', 'token_type_ids', 'masked_input_ids',
                      'masked_lm_positions', 'masked_lm_ids', 'masked_lm_weights'}
  assert out['masked_lm_positions'].shape == (256, 19)
  assert out['masked_lm_weights'].dtype == np.float32
  np.testing.assert_array_equal(out['attention_mask'], (ids != PAD).astype(np.int32))
  np.testing.assert_array_equal(out['token_type_ids'], batch['token_type_ids'].numpy())
  for row in range(len(ids)):
    weights = out['masked_lm_weights'][row]
    used = int(weights.sum())
    num_real = int((ids[row] != PAD).sum())
    num_candidates = int(np.isin(ids[row], [PAD, CLS, SEP, MASK], invert=True).sum())
    expected = min(max(1, min(19, int(np.round(num_real * 0.15)))), num_candidates)
    assert used == expected
    # Used slots first, unused ones zeroed.
    np.testing.assert_array_equal(weights, [1.0] * used + [0.0] * (19 - used))
    positions = out['masked_lm_positions'][row][:used]
    assert np.all(np.diff(positions) > 0)  # unique and ascending: no duplicates
    assert np.all(out['masked_lm_positions'][row][used:] == 0)
    assert np.all(out['masked_lm_ids'][row][used:] == 0)
    assert not np.isin(ids[row][positions], [PAD, CLS, SEP, MASK]).any()
    np.testing.assert_array_equal(out['masked_lm_ids'][row][:used], ids[row][positions])
    changed = np.flatnonzero(out['masked_input_ids'][row] != ids[row])
    assert set(changed) <= set(positions)


def test_masking_statistics_over_many_batches():
  batch = _packed_batch()
  ids = batch['input_ids'].numpy()
  became_mask = kept = total = 0
  position_hits = np.zeros(LENGTH)
  for seed in range(20):
    out = _mask(batch, seed, _options())
    used = out['masked_lm_weights'] > 0
    rows = np.nonzero(used)[0]
    positions = out['masked_lm_positions'][used]
    new_tokens = out['masked_input_ids'][rows, positions]
    became_mask += int((new_tokens == MASK).sum())
    kept += int((new_tokens == ids[rows, positions]).sum())
    total += int(used.sum())
    np.add.at(position_hits, positions, 1)
  assert became_mask + kept == total  # no random tokens by default
  assert abs(became_mask / total - 0.85) < 0.02
  assert abs(kept / total - 0.15) < 0.02
  # Masked fraction of real tokens ~ mask_prob (rounding per row keeps it close).
  real = (ids != PAD).sum() * 20
  assert abs(total / real - 0.15) < 0.01
  # Never [CLS] at position 0, and the middle positions are hit about equally often.
  assert position_hits[0] == 0
  middle = position_hits[10:60]
  assert middle.std() / middle.mean() < 0.2


def test_random_token_share_bert_style():
  batch = _packed_batch()
  ids = batch['input_ids'].numpy()
  options = _options(mask_token_prob=0.8, random_token_prob=0.1)
  counts = {'mask': 0, 'random': 0, 'kept': 0}
  for seed in range(10):
    out = _mask(batch, seed, options)
    used = out['masked_lm_weights'] > 0
    rows = np.nonzero(used)[0]
    positions = out['masked_lm_positions'][used]
    new_tokens = out['masked_input_ids'][rows, positions]
    original = ids[rows, positions]
    counts['mask'] += int((new_tokens == MASK).sum())
    is_random = (new_tokens != MASK) & (new_tokens != original)
    counts['random'] += int(is_random.sum())
    counts['kept'] += int((new_tokens == original).sum())
    assert np.all(new_tokens[is_random] >= 5) and np.all(new_tokens[is_random] < VOCAB)
  total = sum(counts.values())
  assert abs(counts['mask'] / total - 0.8) < 0.02
  assert abs(counts['random'] / total - 0.1) < 0.015  # a random draw equal to the original: rare
  assert abs(counts['kept'] / total - 0.1) < 0.015


def test_masking_is_a_pure_function_of_the_seed():
  batch = _packed_batch(batch_size=8)
  first, again, other = (_mask(batch, s, _options()) for s in (3, 3, 4))
  for key in first:
    np.testing.assert_array_equal(first[key], again[key])
  assert not np.array_equal(first['masked_lm_positions'], other['masked_lm_positions'])


@pytest.mark.parametrize('real_length', [2, 3])
def test_rows_without_candidates_mask_nothing(real_length):
  ids = np.zeros([1, LENGTH], np.int32)
  ids[0, :real_length] = [CLS, SEP, SEP][:real_length]
  batch = {'input_ids': tf.constant(ids), 'token_type_ids': tf.zeros_like(ids)}
  out = _mask(batch, 0, _options())
  assert out['masked_lm_weights'].sum() == 0
  np.testing.assert_array_equal(out['masked_input_ids'], ids)

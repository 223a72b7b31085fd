"""Packing as the original ELECTRA builder: layout, token types, lengths, A/B split, targets."""

import collections

import numpy as np
import pytest
import tensorflow as tf

from electra_jax.data import corpus
from electra_jax.data import packing
from electra_jax.data import tokenizers

CLS, SEP, PAD = tokenizers.CLS_ID, tokenizers.SEP_ID, tokenizers.PAD_ID
SEED = tf.constant([0, 1], tf.int64)


@pytest.fixture(scope='session')
def sp_tokenizer(tmp_path_factory):
  """The built-in corpus's 4096-piece model, trained once per session into a temp cache."""
  import ml_collections
  config = ml_collections.ConfigDict({'tokenizer': {
      'cache_dir': str(tmp_path_factory.getbasetemp() / 'electra_jax_cache'), 'vocab_size': 4096},
      'data': {'builtin_packages': ''}})
  return tokenizers.SentencePieceTokenizer(tokenizers.builtin_tokenizer_path(config))


def _tokenized(documents):
  """Synthetic tokenised lines: documents of sentence lengths -> (tokens, is_boundary) elements."""
  elements, next_id = [], 10
  for document in documents:
    for length in document:
      elements.append((list(range(next_id, next_id + length)), False))
      next_id += length
    elements.append(([], True))
  return tf.data.Dataset.from_generator(
      lambda: iter(elements),
      output_signature=(tf.TensorSpec([None], tf.int32), tf.TensorSpec([], tf.bool)))


def _groups(documents, options, document_filter=packing.DocumentFilter()):
  dataset = packing.accumulate_sentences(_tokenized(documents), SEED, tf.constant(0, tf.int64),
                                         options, document_filter)
  return list(dataset.as_numpy_iterator())


def _check_layout(input_ids, token_type_ids, max_length):
  """[CLS] A [SEP] (B [SEP]) + padding, with types 0 / 1 / 0. Returns (len A, len B)."""
  real = int((input_ids != PAD).sum())
  assert real <= max_length
  assert np.all(input_ids[:real] != PAD) and np.all(input_ids[real:] == PAD)
  assert input_ids[0] == CLS and input_ids[real - 1] == SEP
  seps = np.flatnonzero(input_ids == SEP)
  assert len(seps) in (1, 2) and (input_ids == CLS).sum() == 1
  first_sep = seps[0]
  expected_types = np.zeros(max_length, np.int32)
  if len(seps) == 2:
    assert seps[1] == real - 1 and seps[1] > first_sep + 1  # B is never empty
    expected_types[first_sep + 1:real] = 1
  np.testing.assert_array_equal(token_type_ids, expected_types)
  return first_sep - 1, (real - first_sep - 2 if len(seps) == 2 else 0)


def test_sentences_accumulate_to_the_target_and_documents_flush():
  options = packing.PackingOptions(max_seq_length=128, short_seq_prob=0.0)
  groups = _groups([[10] * 30, [7, 7]], options)
  lengths = [g['sentence_lengths'].tolist() for g in groups]
  assert lengths == [[10] * 13, [10] * 13, [10] * 4, [7, 7]]  # 130 >= 128, then the rest
  assert [g['example_index'] for g in groups] == [0, 1, 2, 3]
  for group in groups:
    assert group['target_length'] == 128
    assert len(group['tokens']) == sum(group['sentence_lengths'])


def test_short_targets_are_drawn_from_5_to_max():
  options = packing.PackingOptions(max_seq_length=64, short_seq_prob=1.0)
  groups = _groups([[3] * 4000], options)
  targets = np.array([g['target_length'] for g in groups[:-1]])
  assert targets[0] == 64 and targets[1:].min() >= 5 and targets.max() <= 64
  assert len(set(targets[1:].tolist())) > 20
  for group in groups[:-1]:  # every non-final group stopped as soon as it reached its target
    assert sum(group['sentence_lengths']) >= group['target_length']
    assert sum(group['sentence_lengths'][:-1]) < group['target_length']


def test_short_target_probability():
  options = packing.PackingOptions(max_seq_length=128, short_seq_prob=0.05)
  groups = _groups([[40] * 6000], options)
  short = np.mean([g['target_length'] < 128 for g in groups[1:]])
  assert 0.03 < short < 0.07


def test_segments_split_as_the_original_builder():
  options = packing.PackingOptions(max_seq_length=128, short_seq_prob=0.0,
                                   single_segment_prob=0.1)
  group_dataset = packing.accumulate_sentences(
      _tokenized([[10] * 13] * 1000), SEED, tf.constant(0, tf.int64), options,
      packing.DocumentFilter())
  examples = group_dataset.map(lambda g: packing.build_example(g, SEED, options, CLS, SEP, PAD))
  a_lengths = collections.Counter()
  for example in examples.as_numpy_iterator():
    a_length, b_length = _check_layout(example['input_ids'], example['token_type_ids'], 128)
    a_lengths[(a_length, b_length)] += 1
  # First-segment target (128 - 3) // 2 = 62: A takes 6 sentences (60), a 7th with chance 1/2;
  # single-segment examples put all 130 tokens in A, cut to 126.
  assert set(a_lengths) == {(60, 65), (70, 55), (126, 0)}
  total = sum(a_lengths.values())
  assert abs(a_lengths[(126, 0)] / total - 0.1) < 0.03
  assert abs(a_lengths[(60, 65)] / a_lengths[(70, 55)] - 1.0) < 0.2


def test_overlong_sentence_is_cut_to_the_length():
  options = packing.PackingOptions(max_seq_length=32, short_seq_prob=0.0)
  group = _groups([[300]], options)[0]
  example = {k: v.numpy() for k, v in packing.build_example(
      {k: tf.constant(v) for k, v in group.items()}, SEED, options, CLS, SEP, PAD).items()}
  assert _check_layout(example['input_ids'], example['token_type_ids'], 32) == (30, 0)
  np.testing.assert_array_equal(example['input_ids'][1:31], group['tokens'][:30])


def test_held_out_documents_are_complementary():
  options = packing.PackingOptions(max_seq_length=64, short_seq_prob=0.0)
  documents = [[5, 6]] * 400
  train = _groups(documents, options, packing.DocumentFilter('train', 0.1))
  held_out = _groups(documents, options, packing.DocumentFilter('eval', 0.1))
  everything = _groups(documents, options)
  tokens = lambda groups: sorted(t for g in groups for t in g['tokens'].tolist())
  assert not set(tokens(train)) & set(tokens(held_out))
  assert sorted(tokens(train) + tokens(held_out)) == tokens(everything)
  assert 0.05 < len(held_out) / len(everything) < 0.15


def test_real_text_packs_with_valid_layout(sp_tokenizer):
  options = packing.PackingOptions(max_seq_length=128)
  lines = tf.data.Dataset.from_tensor_slices(corpus.builtin_corpus().shard_lines(3))
  examples = list(packing.pack_lines(lines, sp_tokenizer, SEED, tf.constant(3, tf.int64),
                                     options).as_numpy_iterator())
  assert len(examples) > 100
  two_segments = 0
  for example in examples:
    a_length, b_length = _check_layout(example['input_ids'], example['token_type_ids'], 128)
    assert a_length >= 1
    two_segments += b_length > 0
    inner = example['input_ids'][1:]
    assert not np.isin(inner, [CLS, tokenizers.MASK_ID]).any()
  assert two_segments > len(examples) // 3
  # Full-length examples dominate, as the target is usually max_seq_length.
  assert np.mean([(e['input_ids'] != PAD).sum() >= 120 for e in examples]) > 0.3


@pytest.mark.parametrize('keep', ['eval', 'train'])
def test_selecting_documents_before_tokenising_gives_the_same_examples(sp_tokenizer, keep):
  """pack_lines selects raw lines first; the examples equal filtering tokenised lines."""
  options = packing.PackingOptions(max_seq_length=64)
  document_filter = packing.DocumentFilter(keep, 0.2)
  shard = tf.constant(3, tf.int64)
  raw = corpus.builtin_corpus().shard_lines(3)[:3000] + ['', '  ', 'tail document, no blank']
  lines = lambda: tf.data.Dataset.from_tensor_slices(raw)
  selected = list(packing.pack_lines(lines(), sp_tokenizer, SEED, shard, options,
                                     document_filter).as_numpy_iterator())
  tokenized = packing.tokenize_lines(lines().concatenate(tf.data.Dataset.from_tensors('')),
                                     sp_tokenizer, 64)
  filtered_after = packing.accumulate_sentences(tokenized, SEED, shard, options,
                                                document_filter).map(
      lambda g: packing.build_example(g, SEED, options, sp_tokenizer.cls_id, sp_tokenizer.sep_id,
                                      sp_tokenizer.pad_id))
  expected = list(filtered_after.as_numpy_iterator())
  assert len(selected) == len(expected) > 5
  for a, b in zip(selected, expected):
    np.testing.assert_array_equal(a['input_ids'], b['input_ids'])
    np.testing.assert_array_equal(a['token_type_ids'], b['token_type_ids'])

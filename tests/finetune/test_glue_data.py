"""GLUE registry, TSV and TFDS readers, pair encoding and submission files."""

import csv
import math
import os

import numpy as np
import pytest
import tensorflow as tf
import tensorflow_datasets as tfds

from electra_jax.finetune import glue_data


class WordTokenizer:
  """Word-level stand-in for the project tokenizer: one id per whitespace-separated word."""
  pad_id, unk_id, cls_id, sep_id, mask_id = 0, 1, 2, 3, 4

  def __init__(self):
    self.vocab = {}

  def encode(self, text):
    return [self.vocab.setdefault(word, 5 + len(self.vocab)) for word in text.split()]


def _write(path, rows):
  os.makedirs(os.path.dirname(path), exist_ok=True)
  with open(path, 'w', encoding='utf-8') as f:
    for row in rows:
      f.write('\t'.join(row) + '\n')


def test_registry_covers_glue_with_reference_settings():
  assert set(glue_data.TASKS) == {
      'cola', 'sst2', 'mrpc', 'stsb', 'qqp', 'mnli', 'qnli', 'rte', 'wnli'}
  epochs = {name: task.num_epochs for name, task in glue_data.TASKS.items()}
  assert epochs == {**{name: 3 for name in epochs}, 'rte': 10, 'stsb': 10}
  assert glue_data.get_task('SST-2') is glue_data.get_task('glue/sst2')
  assert glue_data.get_task('sts-b').is_regression
  assert glue_data.get_task('sts-b').num_labels == 1
  assert glue_data.get_task('mnli').num_labels == 3
  assert not glue_data.get_task('cola').is_pair and glue_data.get_task('rte').is_pair
  with pytest.raises(ValueError, match='Unknown GLUE task'):
    glue_data.get_task('squad')


def test_label_order_matches_tfds():
  """The TSV label mapping must agree with TFDS's ClassLabel order, config by config."""
  configs = {c.name: c for c in tfds.builder_cls('glue').BUILDER_CONFIGS}
  for task in glue_data.TASKS.values():
    config = configs[task.tfds_name.split('/')[1]]
    assert tuple(config.label_classes or ()) == task.label_names, task.name
    assert tuple(config.text_features) == task.tfds_text_features, task.name


def _glue_dir(tmp_path):
  """A miniature GLUE download with each task's real column layout."""
  root = tmp_path / 'glue'
  # CoLA: train/dev without a header; the sentence holds an unbalanced quote (QUOTE_NONE).
  _write(root / 'CoLA/train.tsv', [['gj04', '1', '', 'He said "hi.'],
                                   ['gj04', '0', '*', 'Him go store.']])
  _write(root / 'CoLA/dev.tsv', [['cj99', '1', '', 'It rains.']])
  _write(root / 'CoLA/test.tsv', [['index', 'sentence'], ['0', 'Go.'], ['1', 'Went he.']])
  _write(root / 'SST-2/dev.tsv', [['sentence', 'label'], ['a fine film ', '1']])
  _write(root / 'MRPC/train.tsv', [['Quality', '#1 ID', '#2 ID', '#1 String', '#2 String'],
                                   ['1', '11', '12', 'A cat sat.', 'The cat sat.']])
  _write(root / 'MRPC/test.tsv', [['index', '#1 ID', '#2 ID', '#1 String', '#2 String'],
                                  ['0', '13', '14', 'X.', 'Y.']])
  stsb_header = ['index', 'genre', 'filename', 'year', 'old_index', 'source1', 'source2',
                 'sentence1', 'sentence2']
  _write(root / 'STS-B/dev.tsv', [stsb_header + ['score'],
                                  ['0', 'g', 'f', '2012', '1', 'n', 'n', 'A man.', 'A guy.',
                                   '4.250']])
  _write(root / 'STS-B/test.tsv', [stsb_header, ['0', 'g', 'f', '2012', '1', 'n', 'n',
                                                 'S1.', 'S2.']])
  _write(root / 'QQP/train.tsv', [
      ['id', 'qid1', 'qid2', 'question1', 'question2', 'is_duplicate'],
      ['201', '1', '2', 'Why?', 'How come?', '1'],
      ['202', '3', '4', 'broken row'],  # as a few real QQP rows: dropped
      ['203', '5', '6', 'Who?', 'When?', '0']])
  _write(root / 'QQP/test.tsv', [['id', 'question1', 'question2'], ['0', 'Q1?', 'Q2?']])
  mnli_header = ['index', 'promptID', 'pairID', 'genre', 'sentence1_binary_parse',
                 'sentence2_binary_parse', 'sentence1_parse', 'sentence2_parse', 'sentence1',
                 'sentence2']
  _write(root / 'MNLI/dev_matched.tsv', [
      mnli_header + ['label1', 'label2', 'label3', 'label4', 'label5', 'gold_label'],
      ['0', 'p', 'q', 'fiction', '( x )', '( y )', '(S x)', '(S y)', 'Premise m.',
       'Hypothesis m.', 'neutral', 'neutral', 'contradiction', 'neutral', 'neutral',
       'neutral']])
  _write(root / 'MNLI/dev_mismatched.tsv', [
      mnli_header + ['label1', 'gold_label'],
      ['0', 'p', 'q', 'letters', '( x )', '( y )', '(S x)', '(S y)', 'Premise mm.',
       'Hypothesis mm.', 'contradiction', 'contradiction']])
  _write(root / 'MNLI/test_mismatched.tsv', [
      mnli_header, ['7', 'p', 'q', 'letters', '( x )', '( y )', '(S x)', '(S y)', 'P.', 'H.']])
  _write(root / 'QNLI/dev.tsv', [['index', 'question', 'sentence', 'label'],
                                 ['0', 'Who?', 'Him.', 'not_entailment']])
  _write(root / 'RTE/train.tsv', [['index', 'sentence1', 'sentence2', 'label'],
                                  ['0', 'A.', 'B.', 'entailment']])
  _write(root / 'WNLI/dev.tsv', [['index', 'sentence1', 'sentence2', 'label'],
                                 ['0', 'A.', 'B.', '1']])
  return str(root)


@pytest.mark.parametrize('task, split, expected', [
    ('cola', 'train', [(0, 'He said "hi.', None, 1), (1, 'Him go store.', None, 0)]),
    ('cola', 'dev', [(0, 'It rains.', None, 1)]),
    ('cola', 'test', [(0, 'Go.', None, None), (1, 'Went he.', None, None)]),
    ('sst2', 'dev', [(0, 'a fine film ', None, 1)]),
    ('mrpc', 'train', [(0, 'A cat sat.', 'The cat sat.', 1)]),
    ('mrpc', 'test', [(0, 'X.', 'Y.', None)]),
    ('stsb', 'dev', [(0, 'A man.', 'A guy.', 4.25)]),
    ('stsb', 'test', [(0, 'S1.', 'S2.', None)]),
    ('qqp', 'train', [(0, 'Why?', 'How come?', 1), (2, 'Who?', 'When?', 0)]),
    ('qqp', 'test', [(0, 'Q1?', 'Q2?', None)]),
    ('mnli', 'dev_matched', [(0, 'Premise m.', 'Hypothesis m.', 1)]),
    ('mnli', 'dev_mismatched', [(0, 'Premise mm.', 'Hypothesis mm.', 2)]),
    ('mnli', 'test_mismatched', [(7, 'P.', 'H.', None)]),
    ('qnli', 'dev', [(0, 'Who?', 'Him.', 1)]),
    ('rte', 'train', [(0, 'A.', 'B.', 0)]),
    ('wnli', 'dev', [(0, 'A.', 'B.', 1)]),
])
def test_tsv_reader_handles_each_layout(tmp_path, task, split, expected):
  root = _glue_dir(tmp_path)
  examples = glue_data.read_examples(task, split, source='tsv', data_dir=root)
  got = [(e['idx'], e['text_a'], e['text_b'], e['label']) for e in examples]
  assert got == expected
  # The task's own directory works as well as the GLUE root.
  task_dir = os.path.join(root, glue_data.get_task(task).tsv_dir)
  assert list(glue_data.read_tsv_examples(task, task_dir, split)) == examples


def test_tsv_reader_errors_name_the_problem(tmp_path):
  root = _glue_dir(tmp_path)
  with pytest.raises(FileNotFoundError, match='train.tsv'):
    glue_data.read_examples('qnli', 'train', source='tsv', data_dir=root)
  with pytest.raises(ValueError, match="no split 'dev'"):
    glue_data.read_examples('mnli', 'dev', source='tsv', data_dir=root)
  _write(os.path.join(root, 'RTE/dev.tsv'), [['index', 'sentence1', 'sentence2', 'label'],
                                             ['0', 'A.', 'B.', 'maybe']])
  with pytest.raises(ValueError, match="label 'maybe'"):
    glue_data.read_examples('rte', 'dev', source='tsv', data_dir=root)
  _write(os.path.join(root, 'QNLI/train.tsv'), [['index', 'question', 'label'], ['0', 'Q', '1']])
  with pytest.raises(ValueError, match=r"no column\(s\) \['sentence'\]"):
    glue_data.read_examples('qnli', 'train', source='tsv', data_dir=root)
  with pytest.raises(ValueError, match='data_dir'):
    glue_data.read_examples('qnli', 'train', source='tsv')


@pytest.mark.parametrize('task_name', sorted(glue_data.TASKS))
def test_tfds_reader_on_mock_data(task_name):
  """Every task and split through TFDS (`mock_data` generates examples from the features)."""
  task = glue_data.get_task(task_name)
  for split, spec in task.splits.items():
    with tfds.testing.mock_data(num_examples=3):
      examples = list(glue_data.read_tfds_examples(task, split))
    assert len(examples) == 3
    for example in examples:
      assert set(example) == {'idx', 'text_a', 'text_b', 'label'}
      assert isinstance(example['idx'], int) and isinstance(example['text_a'], str)
      assert (example['text_b'] is not None) == task.is_pair
      if not spec.has_labels:
        assert example['label'] is None
      elif task.is_regression:
        assert isinstance(example['label'], float)
      else:
        assert example['label'] in range(task.num_labels)


def test_tfds_reader_maps_features_exactly():
  """With chosen records: feature names, split names and test labels (-1) map as intended."""
  requested_splits = []

  def fake_as_dataset(builder, split, **kwargs):
    del kwargs
    requested_splits.append((builder.name, builder.builder_config.name, split))
    return tf.data.Dataset.from_tensor_slices({
        'premise': [b'The cat sleeps.', b'Caf\xc3\xa9 open.'],
        'hypothesis': [b'A cat rests.', b'It is shut.'],
        'label': np.array([0, -1 if split.startswith('test') else 2], np.int64),
        'idx': np.array([5, 6], np.int32),
    })

  with tfds.testing.mock_data(as_dataset_fn=fake_as_dataset):
    dev = list(glue_data.read_tfds_examples('mnli', 'dev_mismatched'))
    test = list(glue_data.read_tfds_examples('mnli', 'test_matched'))
  assert requested_splits == [('glue', 'mnli', 'validation_mismatched'),
                              ('glue', 'mnli', 'test_matched')]
  assert dev == [
      {'idx': 5, 'text_a': 'The cat sleeps.', 'text_b': 'A cat rests.', 'label': 0},
      {'idx': 6, 'text_a': 'Café open.', 'text_b': 'It is shut.', 'label': 2}]
  assert [e['label'] for e in test] == [None, None]


def test_tsv_and_tfds_give_the_same_examples(tmp_path):
  root = _glue_dir(tmp_path)
  from_tsv = glue_data.read_examples('stsb', 'dev', source='tsv', data_dir=root)

  def fake_as_dataset(builder, split, **kwargs):
    del builder, split, kwargs
    return tf.data.Dataset.from_tensor_slices({
        'sentence1': [b'A man.'], 'sentence2': [b'A guy.'],
        'label': np.array([4.25], np.float32), 'idx': np.array([0], np.int32)})

  with tfds.testing.mock_data(as_dataset_fn=fake_as_dataset):
    from_tfds = glue_data.read_examples('stsb', 'dev', source='tfds')
  assert from_tfds == from_tsv


def test_encode_pair_layout_and_padding():
  tokenizer = WordTokenizer()
  encoded = glue_data.encode_pair(tokenizer, 'a b', 'c d e', max_seq_length=10)
  a, b, c, d, e = (tokenizer.vocab[w] for w in 'abcde')
  np.testing.assert_array_equal(encoded['input_ids'], [2, a, b, 3, c, d, e, 3, 0, 0])
  np.testing.assert_array_equal(encoded['token_type_ids'], [0, 0, 0, 0, 1, 1, 1, 1, 0, 0])
  np.testing.assert_array_equal(encoded['attention_mask'], [1] * 8 + [0] * 2)
  assert all(v.dtype == np.int32 for v in encoded.values())

  single = glue_data.encode_pair(tokenizer, 'a b', None, max_seq_length=5)
  np.testing.assert_array_equal(single['input_ids'], [2, a, b, 3, 0])
  np.testing.assert_array_equal(single['token_type_ids'], [0] * 5)
  with pytest.raises(ValueError, match='max_seq_length'):
    glue_data.encode_pair(tokenizer, 'a', 'b', max_seq_length=3)


def test_truncation_is_longest_first():
  a, b = list(range(6)), list(range(10, 13))
  glue_data.truncate_longest_first(a, b, 7)
  assert a == [0, 1, 2, 3] and b == [10, 11, 12]
  a, b = list(range(4)), list(range(10, 14))
  glue_data.truncate_longest_first(a, b, 5)  # ties drop from B first
  assert a == [0, 1, 2] and b == [10, 11]

  tokenizer = WordTokenizer()
  encoded = glue_data.encode_pair(tokenizer, 'w1 w2 w3 w4 w5 w6', 'x1 x2', max_seq_length=8)
  words = {i: w for w, i in tokenizer.vocab.items()}
  tokens = [words.get(i, i) for i in encoded['input_ids']]
  assert tokens == [2, 'w1', 'w2', 'w3', 3, 'x1', 'x2', 3]


def test_encode_examples_stacks_and_marks_unknown_labels():
  tokenizer = WordTokenizer()
  examples = [{'idx': 3, 'text_a': 'a b', 'text_b': 'c', 'label': 1.5},
              {'idx': 4, 'text_a': 'd', 'text_b': 'e f', 'label': None}]
  batch = glue_data.encode_examples(tokenizer, 'stsb', examples, max_seq_length=6)
  assert batch['input_ids'].shape == (2, 6) and batch['token_type_ids'].shape == (2, 6)
  np.testing.assert_array_equal(batch['idx'], [3, 4])
  assert batch['label'][0] == 1.5 and math.isnan(batch['label'][1])
  classification = glue_data.encode_examples(
      tokenizer, 'cola', [{'idx': 0, 'text_a': 'a', 'text_b': None, 'label': None}], 4)
  assert classification['label'].dtype == np.int32 and classification['label'][0] == -1


def _read_submission(path):
  with open(path, encoding='utf-8') as f:
    return list(csv.reader(f, delimiter='\t'))


def test_submission_files_in_glue_format(tmp_path):
  out = str(tmp_path / 'submission')
  path = glue_data.write_submission('mnli', 'test_mismatched', [2, 0, 1], [0, 2, 1], out)
  assert os.path.basename(path) == 'MNLI-mm.tsv'
  assert _read_submission(path) == [['index', 'prediction'], ['0', 'contradiction'],
                                    ['1', 'neutral'], ['2', 'entailment']]
  path = glue_data.write_submission('rte', 'test', [0, 1], [1, 0], out)
  assert _read_submission(path)[1:] == [['0', 'not_entailment'], ['1', 'entailment']]
  path = glue_data.write_submission('cola', 'test', [0, 1], [1, 0], out)
  assert os.path.basename(path) == 'CoLA.tsv'
  assert _read_submission(path)[1:] == [['0', '1'], ['1', '0']]
  path = glue_data.write_submission('STS-B', 'test', [0], [3.14159], out)
  assert _read_submission(path) == [['index', 'prediction'], ['0', '3.142']]
  names = {glue_data.get_task(t).splits[s].submission_file
           for t in glue_data.TASKS for s in glue_data.get_task(t).test_splits}
  assert names == {'CoLA.tsv', 'SST-2.tsv', 'MRPC.tsv', 'STS-B.tsv', 'QQP.tsv', 'MNLI-m.tsv',
                   'MNLI-mm.tsv', 'QNLI.tsv', 'RTE.tsv', 'WNLI.tsv'}


def test_submission_rejects_bad_input(tmp_path):
  out = str(tmp_path)
  with pytest.raises(ValueError, match='not a test split'):
    glue_data.write_submission('rte', 'dev', [0], [1], out)
  with pytest.raises(ValueError, match='duplicates'):
    glue_data.write_submission('rte', 'test', [0, 0], [1, 1], out)
  with pytest.raises(ValueError, match='class indices'):
    glue_data.write_submission('rte', 'test', [0, 1], [1, 2], out)
  with pytest.raises(ValueError, match='1-D'):
    glue_data.write_submission('rte', 'test', [0, 1], [1], out)

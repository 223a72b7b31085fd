"""make_dataset: batch contract, determinism, exact resume, per-host sharding, TFDS, prepared shards."""

import gzip
import os

import numpy as np
from etils import epath
import pytest
import tensorflow as tf
import tensorflow_datasets as tfds

from electra_jax.configs import tiny
from electra_jax.data import corpus
from electra_jax.data import prepare
from electra_jax.data import pretraining
from electra_jax.interop import checkpoint as checkpoint_lib
from electra_jax.spec import run as run_spec


KEYS = {'input_ids', 'attention_mask', 'token_type_ids', 'masked_input_ids', 'masked_lm_positions',
        'masked_lm_ids', 'masked_lm_weights'}


@pytest.fixture(scope='session')
def cache_dir(tmp_path_factory):
  return str(tmp_path_factory.getbasetemp() / 'electra_jax_cache')


@pytest.fixture(scope='session')
def builtin_tokenizer_path(cache_dir):
  config = tiny.get_config()
  config.tokenizer.cache_dir = cache_dir
  return pretraining.validate_data_config(run_spec.load(config)).files()[0]


@pytest.fixture(scope='session')
def text_files(tmp_path_factory):
  """A small corpus in 4 files (one gzipped) cut from the built-in corpus's documents."""
  directory = tmp_path_factory.mktemp('corpus')
  documents = corpus.builtin_corpus().documents[:240]
  for i in range(4):
    text = '\n\n'.join('\n'.join(d) for d in documents[i::4]) + '\n'
    if i == 3:
      with gzip.open(directory / f'part-{i}.txt.gz', 'wt') as f:
        f.write(text)
    else:
      (directory / f'part-{i}.txt').write_text(text)
  return str(directory / 'part-*')


@pytest.fixture
def files_config(config, builtin_tokenizer_path, text_files):
  config.data.source = 'files'
  config.data.train_files = text_files
  config.data.eval_fraction = 0.1
  config.tokenizer.path = builtin_tokenizer_path
  return config


@pytest.fixture
def config(cache_dir):
  """The tiny config as shipped, with the tokenizer cache in a temp dir and small batches."""
  config = tiny.get_config()
  config.tokenizer.cache_dir = cache_dir
  config.train.batch_size = 8
  config.data.shuffle_buffer = 50
  return config


def _take(dataset_or_iterator, count):
  iterator = iter(dataset_or_iterator)
  return [{k: v.numpy() for k, v in next(iterator).items()} for _ in range(count)]


def _assert_same(batches_a, batches_b):
  assert len(batches_a) == len(batches_b)
  for a, b in zip(batches_a, batches_b):
    for key in KEYS:
      np.testing.assert_array_equal(a[key], b[key])


def _rows(examples):
  return sorted(tuple(e['input_ids'].tolist()) + tuple(e['token_type_ids'].tolist())
                for e in examples)


def test_tiny_config_as_shipped_yields_the_batch_contract(cache_dir):
  config = tiny.get_config()
  config.tokenizer.cache_dir = cache_dir
  batch = _take(pretraining.make_dataset(run_spec.load(config), 'train'), 1)[0]
  assert set(batch) == KEYS
  k = run_spec.load(config).max_predictions
  assert k == 19
  for key in ('input_ids', 'attention_mask', 'token_type_ids', 'masked_input_ids'):
    assert batch[key].shape == (32, 128) and batch[key].dtype == np.int32
  for key in ('masked_lm_positions', 'masked_lm_ids'):
    assert batch[key].shape == (32, k) and batch[key].dtype == np.int32
  assert batch['masked_lm_weights'].shape == (32, k)
  assert batch['masked_lm_weights'].dtype == np.float32
  assert batch['input_ids'].max() < config.model.vocab_size
  assert (batch['masked_input_ids'] == 4).sum() > 0


def test_stream_is_fixed_by_the_seed(config):
  first = _take(pretraining.make_dataset(run_spec.load(config), 'train'), 3)
  _assert_same(first, _take(pretraining.make_dataset(run_spec.load(config), 'train'), 3))
  config.seed = 1
  other = _take(pretraining.make_dataset(run_spec.load(config), 'train'), 3)
  assert not np.array_equal(first[0]['input_ids'], other[0]['input_ids'])


def test_resume_after_save_and_restore_sees_the_same_batches(config, tmp_path):
  """Through the trainer's own orbax handler for the iterator (checkpoint.TfIteratorHandler)."""
  handler = checkpoint_lib.TfIteratorHandler()
  saved_dir, empty_dir = tmp_path / 'data', tmp_path / 'empty'
  saved_dir.mkdir()
  empty_dir.mkdir()
  iterator = iter(pretraining.make_dataset(run_spec.load(config), 'train'))
  _take(iterator, 4)
  handler.save(epath.Path(saved_dir), checkpoint_lib.TfIteratorSave(iterator))
  expected = _take(iterator, 4)
  assert sorted(os.listdir(saved_dir)) == ['process_0']  # one folder per host

  restored = iter(pretraining.make_dataset(run_spec.load(config), 'train'))
  with pytest.raises(FileNotFoundError, match='process 0'):
    handler.restore(epath.Path(empty_dir), checkpoint_lib.TfIteratorRestore(restored))
  handler.restore(epath.Path(saved_dir), checkpoint_lib.TfIteratorRestore(restored))
  _assert_same(expected, _take(restored, 4))


def test_eval_split_is_fixed_held_out_and_repeats(files_config):
  config = files_config
  config.train.batch_size = 16
  first = _take(pretraining.make_dataset(run_spec.load(config), 'eval'), 3)
  _assert_same(first, _take(pretraining.make_dataset(run_spec.load(config), 'eval'), 3))
  eval_rows = set(_rows(pretraining.packed_examples(config, 'eval').as_numpy_iterator()))
  assert 10 < len(eval_rows)
  train_rows = set(_rows(pretraining.packed_examples(config, 'train', training=False)
                         .as_numpy_iterator()))
  assert not eval_rows & train_rows
  # More eval batches than the held-out part holds: it repeats instead of running out.
  eval_batches = pretraining.make_dataset(run_spec.load(config), 'eval')
  assert len(_take(eval_batches, len(eval_rows) // 16 + 3)) > 0


def assert_hosts_split_disjoint_and_complete(config, rows=None):
  """Two hosts' examples share none and together are one host's (as `rows` of examples)."""
  rows = rows or _rows
  single = rows(pretraining.packed_examples(config, 'train', 0, 1, training=False)
                .as_numpy_iterator())
  hosts = [rows(pretraining.packed_examples(config, 'train', p, 2, training=False)
                .as_numpy_iterator()) for p in range(2)]
  assert hosts[0] and hosts[1] and not set(hosts[0]) & set(hosts[1])
  assert sorted(hosts[0] + hosts[1]) == single


def test_two_hosts_read_disjoint_data_that_covers_the_source(files_config):
  config = files_config
  assert_hosts_split_disjoint_and_complete(config)
  batch = _take(pretraining.make_dataset(run_spec.load(config, process_count=2), 'train', 1), 1)[0]
  assert batch['input_ids'].shape[0] == config.train.batch_size // 2


def test_two_hosts_on_a_single_file_split_examples(config, builtin_tokenizer_path, tmp_path):
  text = '\n\n'.join(f'Document {d} says hello.\nIts second line is number {d}.' for d in range(60))
  (tmp_path / 'one.txt').write_text(text)
  config.data.source = 'files'
  config.data.train_files = str(tmp_path / 'one.txt')
  config.data.eval_fraction = 0.1
  config.tokenizer.path = builtin_tokenizer_path
  single = _rows(pretraining.packed_examples(config, 'train', 0, 1, training=False)
                 .as_numpy_iterator())
  hosts = [_rows(pretraining.packed_examples(config, 'train', p, 2, training=False)
                 .as_numpy_iterator()) for p in range(2)]
  assert hosts[0] and hosts[1] and not set(hosts[0]) & set(hosts[1])
  assert sorted(hosts[0] + hosts[1]) == single


def test_tfds_source_through_mock_data(config, builtin_tokenizer_path):
  config.tokenizer.path = builtin_tokenizer_path
  config.data.source = 'tfds'
  config.data.tfds_name = 'imdb_reviews'
  config.data.eval_fraction = 0.1
  requested = []

  def as_dataset(self, split, **kwargs):
    del self, kwargs
    requested.append(str(split))
    texts = [f'Review {i} from {split}.\nIt has two lines.' for i in range(40)]
    return tf.data.Dataset.from_tensor_slices({'text': texts, 'label': [0] * 40})

  with tfds.testing.mock_data(as_dataset_fn=as_dataset):
    spec = run_spec.load(config, process_count=2)
    batch = _take(pretraining.make_dataset(spec, 'train', 1), 1)[0]
    assert set(batch) == KEYS and batch['input_ids'].shape == (4, 128)
    _take(pretraining.make_dataset(run_spec.load(config, process_count=2), 'eval', 0), 1)
  # Each host reads its own even part of the train split; eval is the held-out tail.
  assert "index=1, count=2" in requested[0] and "'train[:90%]'" in requested[0]
  assert "index=0, count=2" in requested[1] and "'train[90%:]'" in requested[1]

  with tfds.testing.mock_data(num_examples=8):
    spec = run_spec.load(config)
    batch = _take(pretraining.make_dataset(spec, 'train'), 1)[0]  # random mock text
    assert batch['attention_mask'].sum() > 0
    config.data.tfds_text_feature = 'review'
    with pytest.raises(ValueError, match="no feature 'review'.*'text'"):
      pretraining.make_dataset(run_spec.load(config), 'train')


def test_prepared_shards_match_on_the_fly_packing(config, builtin_tokenizer_path, tmp_path):
  for i in range(3):
    text = '\n\n'.join(f'File {i} document {d}. It has a sentence.\nAnd a second one, {d}.'
                       for d in range(80))
    (tmp_path / f'part-{i}.txt').write_text(text)
  config.tokenizer.path = builtin_tokenizer_path
  config.data.source = 'files'
  config.data.train_files = str(tmp_path / 'part-*.txt')
  config.data.eval_fraction = 0.1
  out = str(tmp_path / 'prepared')
  metadata = prepare.prepare(config, out, num_workers=2)
  assert metadata['shards']['train'] == [f'train-0000{i}-of-00003.tfrecord' for i in range(3)]
  assert not [n for n in os.listdir(out) if 'tmp' in n]

  on_the_fly = {split: _rows(pretraining.packed_examples(config, split, training=False)
                             .as_numpy_iterator()) for split in ('train', 'eval')}
  assert metadata['counts']['train']['examples'] == len(on_the_fly['train'])
  prepared_config = config.copy_and_resolve_references()
  prepared_config.data.source = 'prepared'
  prepared_config.data.prepared_dir = out
  prepared_config.tokenizer.path = ''
  for split in ('train', 'eval'):
    records = pretraining._prepared_records(prepared_config, split, False, 0, 1)  # noqa: SLF001
    parsed = records.batch(1000).map(
        lambda s: prepare.records.parse_batch(s, 128, metadata['id_dtype'], 0))
    rows = [dict(input_ids=ids, token_type_ids=types) for batch in parsed.as_numpy_iterator()
            for ids, types in zip(batch['input_ids'], batch['token_type_ids'])]
    assert _rows(rows) == on_the_fly[split]

  first = _take(pretraining.make_dataset(run_spec.load(prepared_config), 'train'), 3)
  _assert_same(first, _take(pretraining.make_dataset(run_spec.load(prepared_config), 'train'), 3))
  assert first[0]['masked_lm_weights'].sum() > 0
  two_hosts = run_spec.load(prepared_config, process_count=2)
  hosts = [_take(pretraining.make_dataset(two_hosts, 'eval', p), 1)[0] for p in (0, 1)]
  assert hosts[0]['input_ids'].shape == (4, 128)

  prepared_config.data.max_seq_length = 64
  with pytest.raises(ValueError, match='packed to length 128'):
    pretraining.make_dataset(run_spec.load(prepared_config), 'train')


def test_prepared_shards_with_a_wordpiece_vocabulary(config, tmp_path):
  """BERT's vocab.txt (the original release's and Hugging Face's) can be prepared too."""
  for i in range(2):
    text = '\n\n'.join(f'File {i} document {d}. It has a sentence.\nAnd a second one, {d}.'
                       for d in range(40))
    (tmp_path / f'part-{i}.txt').write_text(text)
  pieces = ['[PAD]', '[UNK]', '[CLS]', '[SEP]', '[MASK]', 'file', 'document', 'it', 'has', 'a',
            'sentence', 'and', 'second', 'one', '.', ','] + [str(d) for d in range(10)] + [
                f'##{d}' for d in range(10)]
  vocab = tmp_path / 'vocab.txt'
  vocab.write_text('\n'.join(pieces) + '\n')
  config.tokenizer.type, config.tokenizer.path = 'wordpiece', str(vocab)
  config.data.source = 'files'
  config.data.train_files = str(tmp_path / 'part-*.txt')
  config.data.eval_fraction = 0.1
  out = tmp_path / 'prepared'
  metadata = prepare.prepare(config, str(out), num_workers=2)
  assert metadata['tokenizer'] == {'type': 'wordpiece', 'file': 'vocab.txt', 'lower_case': True,
                                   'strip_accents': True}
  assert (out / 'vocab.txt').read_text() == vocab.read_text()

  on_the_fly = _rows(pretraining.packed_examples(config, 'train', training=False)
                     .as_numpy_iterator())
  prepared_config = config.copy_and_resolve_references()
  prepared_config.data.source = 'prepared'
  prepared_config.data.prepared_dir = str(out)
  prepared_config.tokenizer.path = ''
  tokenizer = pretraining.validate_data_config(run_spec.load(prepared_config))
  assert tokenizer.files() == [str(out / 'vocab.txt')] and tokenizer.cls_id == 2
  records = pretraining._prepared_records(prepared_config, 'train', False, 0, 1)  # noqa: SLF001
  parsed = records.batch(1000).map(
      lambda s: prepare.records.parse_batch(s, 128, metadata['id_dtype'], tokenizer.pad_id))
  rows = [dict(input_ids=ids, token_type_ids=types) for batch in parsed.as_numpy_iterator()
          for ids, types in zip(batch['input_ids'], batch['token_type_ids'])]
  assert _rows(rows) == on_the_fly
  assert not any(tokenizer.unk_id in row[:128] for row in on_the_fly)  # the vocabulary covers it
  batch = _take(pretraining.make_dataset(run_spec.load(prepared_config), 'train'), 1)[0]
  assert batch['masked_lm_weights'].sum() > 0

  other = tmp_path / 'other.txt'
  other.write_text('\n'.join(pieces[:-1]) + '\n')
  prepared_config.tokenizer.path = str(other)
  with pytest.raises(ValueError, match="differs from the tokenizer.*vocab.txt"):
    pretraining.validate_data_config(run_spec.load(prepared_config))

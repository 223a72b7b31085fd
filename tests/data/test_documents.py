"""JSON Lines, Parquet and Hugging Face datasets: the same batches as text, resume, hosts; bad input."""

import gzip
import json

import datasets
from etils import epath
import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
import tensorflow as tf

from electra_jax.configs import tiny
from electra_jax.data import bad_records
from electra_jax.data import corpus
from electra_jax.data import prepare
from electra_jax.data import pretraining
from electra_jax.data import records
from electra_jax.interop import checkpoint as checkpoint_lib
from electra_jax.pretraining import inputs
from electra_jax.spec import run as run_spec
from test_pipeline import _assert_same, _take  # every batch key, compared exactly
from test_pipeline import assert_hosts_split_disjoint_and_complete

NUM_FILES, DOCS_PER_FILE = 4, 30


@pytest.fixture(scope='session')
def tokenizer_path(tmp_path_factory):
  config = tiny.get_config()
  config.tokenizer.cache_dir = str(tmp_path_factory.getbasetemp() / 'electra_jax_cache')
  return pretraining.validate_data_config(run_spec.load(config)).files()[0]


def _texts(file_index):
  """The documents of file `file_index` as record texts (a text file's document, lines joined)."""
  documents = corpus.builtin_corpus().documents[:NUM_FILES * DOCS_PER_FILE]
  return ['\n'.join(d) for d in documents[file_index::NUM_FILES]]


def _write_jsonl(path, texts, extra=None):
  opener = gzip.open if str(path).endswith('.gz') else open
  with opener(path, 'wt') as f:
    for i, text in enumerate(texts):
      f.write(json.dumps({'id': i, 'text': text, **(extra or {})}) + '\n')


@pytest.fixture(scope='session')
def corpora(tmp_path_factory):
  """The same documents as text files, JSON Lines (.jsonl, .jsonl.gz), Parquet and a saved HF
  dataset; one file (for HF: one shard of rows) per text file."""
  root = tmp_path_factory.mktemp('formats')
  for i in range(NUM_FILES):
    texts = _texts(i)
    (root / f'part-{i}.txt').write_text('\n\n'.join(texts) + '\n')
    _write_jsonl(root / f'part-{i}.jsonl', texts)
    _write_jsonl(root / f'part-{i}.jsonl.gz', texts)
    pq.write_table(pa.table({'text': texts, 'id': list(range(len(texts)))}),
                   root / f'part-{i}.parquet')
  rows = [text for i in range(NUM_FILES) for text in _texts(i)]
  datasets.Dataset.from_dict({'text': rows}).save_to_disk(str(root / 'saved'))
  return root


def _config(tokenizer_path, source, **data):
  config = tiny.get_config()
  config.tokenizer.path = tokenizer_path
  config.train.batch_size = 8
  config.data.shuffle_buffer = 50
  config.data.eval_fraction = 0.1
  config.data.source = source
  config.data.update(data)
  return config


def _format_configs(tokenizer_path, root):
  return {
      'text': _config(tokenizer_path, 'files', train_files=f'{root}/part-*.txt'),
      'jsonl': _config(tokenizer_path, 'jsonl', train_files=f'{root}/part-*.jsonl'),
      'jsonl.gz': _config(tokenizer_path, 'jsonl', train_files=f'{root}/part-*.jsonl.gz'),
      'parquet': _config(tokenizer_path, 'parquet', train_files=f'{root}/part-*.parquet'),
      'hf': _config(tokenizer_path, 'hf', hf_path=f'{root}/saved', hf_shard_rows=DOCS_PER_FILE),
  }


def _rows(examples):
  return sorted(tuple(e['input_ids'].tolist()) for e in examples)


def test_every_format_yields_the_batches_of_the_same_text(tokenizer_path, corpora):
  configs = _format_configs(tokenizer_path, corpora)
  expected = {split: _take(iter(pretraining.make_dataset(run_spec.load(configs['text']), split)), 3)
              for split in ('train', 'eval')}
  for name, config in configs.items():
    for split in ('train', 'eval'):
      batches = pretraining.make_dataset(run_spec.load(config), split)
      _assert_same(expected[split], _take(iter(batches), 3))
    assert name and expected['train'][0]['input_ids'].any()


@pytest.mark.parametrize('name', ['jsonl.gz', 'parquet', 'hf streamed'])
def test_resume_mid_file_sees_the_same_batches(tokenizer_path, corpora, tmp_path, name):
  """Saved through the trainer's orbax handler a few batches into the first files."""
  if name == 'hf streamed':
    config = _config(tokenizer_path, 'hf', hf_path='json', hf_streaming=True, hf_shard_rows=7,
                     hf_data_files=','.join(f'{corpora}/part-{i}.jsonl' for i in range(4)))
  else:
    config = _format_configs(tokenizer_path, corpora)[name]
  config.data.shuffle_buffer = 1  # so the saved position lies inside the files, not past them
  handler = checkpoint_lib.TfIteratorHandler()
  iterator = iter(pretraining.make_dataset(run_spec.load(config), 'train'))
  _take(iterator, 2)
  handler.save(epath.Path(tmp_path), checkpoint_lib.TfIteratorSave(iterator))
  expected = _take(iterator, 4)
  restored = iter(pretraining.make_dataset(run_spec.load(config), 'train'))
  handler.restore(epath.Path(tmp_path), checkpoint_lib.TfIteratorRestore(restored))
  _assert_same(expected, _take(restored, 4))


def test_parquet_row_groups_of_one_file_are_split_over_hosts(tokenizer_path, tmp_path):
  texts = [text for i in range(NUM_FILES) for text in _texts(i)]
  pq.write_table(pa.table({'text': texts}), tmp_path / 'one.parquet', row_group_size=20)
  config = _config(tokenizer_path, 'parquet', train_files=str(tmp_path / 'one.parquet'))
  assert_hosts_split_disjoint_and_complete(config, _rows)


def test_prepare_from_jsonl_matches_on_the_fly(tokenizer_path, corpora, tmp_path):
  config = _format_configs(tokenizer_path, corpora)['jsonl.gz']
  metadata = prepare.prepare(config, str(tmp_path / 'prepared'), num_workers=2)
  on_the_fly = list(pretraining.packed_examples(config, 'train', training=False)
                    .as_numpy_iterator())
  assert metadata['counts']['train']['examples'] == len(on_the_fly) > 0


def _bad_config(tokenizer_path, directory, source='jsonl'):
  pattern = '*.parquet' if source == 'parquet' else '*.jsonl*'
  return _config(tokenizer_path, source, train_files=f'{directory}/{pattern}', eval_fraction=0.0,
                 eval_files=f'{directory}/{pattern}')


@pytest.mark.parametrize('lines, message', [
    (['{"text": "fine"}', '{"text": "also fine"', '{"text": "more"}'],
     r'bad.jsonl: line 2 is not JSON'),
    (['{"text": "fine"}', '{"body": "x", "id": 3}'],
     r"bad.jsonl: line 2: the record has no field 'text'; its fields are \['body', 'id'\]"),
    (['{"text": "fine"}', '{"text": 42}'], r"bad.jsonl: line 2: field 'text' holds int, not text"),
])
def test_bad_json_lines_are_refused_at_start(tokenizer_path, tmp_path, lines, message):
  # A bad first record is found by the checks before training; later ones by the pipeline.
  (tmp_path / 'bad.jsonl').write_text('\n'.join(lines[1:]) + '\n')
  with pytest.raises(ValueError, match=message.replace('line 2', 'line 1')):
    pretraining.validate_data_config(run_spec.load(_bad_config(tokenizer_path, tmp_path)))


def _consume(config):
  """One pass over every packed example, read as the trainer reads its batches."""
  examples = pretraining.packed_examples(config, 'train', training=False)
  return list(inputs._numpy(examples))  # noqa: SLF001


def _corpus_with_bad_tenth_file(directory, bad):
  """Twelve JSONL.gz files; the tenth is spoilt by `bad(path)`."""
  for i in range(12):
    path = directory / f'part-{i:02d}.jsonl.gz'
    _write_jsonl(path, [f'Document {d} of file {i} says something.' for d in range(40)])
    if i == 9:
      bad(path)


def _truncate(path):
  raw = path.read_bytes()
  path.write_bytes(raw[:len(raw) // 2])


def test_a_truncated_tenth_file_stops_with_one_line_or_is_skipped(tokenizer_path, tmp_path):
  _corpus_with_bad_tenth_file(tmp_path, _truncate)
  config = _bad_config(tokenizer_path, tmp_path)
  with pytest.raises(ValueError, match=r'part-09.jsonl.gz is a truncated or corrupt gzip file: it '
                     r'breaks off after line \d+ .*on_bad_record=skip') as raised:
    _consume(config)
  assert '\n' not in str(raised.value) and 'Traceback' not in str(raised.value)
  config.data.on_bad_record = 'skip'
  bad_records.LOG.reset()
  assert _consume(config)
  # The cut file's missing end, then its half last line.
  assert bad_records.LOG.count == 2
  assert 'part-09.jsonl.gz is a truncated' in bad_records.LOG.first[0]
  assert 'part-09.jsonl.gz: line' in bad_records.LOG.first[1]


def test_undecodable_lines_far_into_the_corpus(tokenizer_path, tmp_path):
  def spoil(path):
    lines = gzip.decompress(path.read_bytes()).split(b'\n')
    lines[30] = b'{"text": "cut off'
    lines[31] = b'{"id": 7}'
    path.write_bytes(gzip.compress(b'\n'.join(lines)))

  _corpus_with_bad_tenth_file(tmp_path, spoil)
  config = _bad_config(tokenizer_path, tmp_path)
  with pytest.raises(ValueError, match=r'part-09.jsonl.gz: line 31 is not JSON'):
    _consume(config)
  config.data.on_bad_record = 'skip'
  bad_records.LOG.reset()
  assert _consume(config)
  assert bad_records.LOG.count == 2
  assert ("line 32: the record has no field 'text'; its fields are ['id']"
          in bad_records.LOG.first[1])


def test_truncated_plain_text_gzip_too(tokenizer_path, tmp_path):
  for i in range(10):
    with gzip.open(tmp_path / f'part-{i}.txt.gz', 'wt') as f:
      f.write('\n\n'.join(f'Document {d} of file {i}.' for d in range(200)))
  _truncate(tmp_path / 'part-9.txt.gz')
  config = _config(tokenizer_path, 'files', train_files=f'{tmp_path}/*.gz', eval_fraction=0.0,
                   eval_files=f'{tmp_path}/*.gz')
  with pytest.raises(ValueError, match='part-9.txt.gz is a truncated or corrupt gzip'):
    _consume(config)


def test_parquet_without_the_column_or_text(tokenizer_path, tmp_path):
  pq.write_table(pa.table({'body': ['x'], 'id': [1]}), tmp_path / 'a.parquet')
  config = _bad_config(tokenizer_path, tmp_path, 'parquet')
  with pytest.raises(ValueError, match=r"a.parquet has no column 'text'; its columns are "
                     r"\['body', 'id'\]"):
    pretraining.validate_data_config(run_spec.load(config))
  config.data.text_field = 'id'
  with pytest.raises(ValueError, match="column 'id' holds int64, not text"):
    pretraining.validate_data_config(run_spec.load(config))


def test_zstd_json_lines_are_refused_by_name(tokenizer_path, tmp_path):
  (tmp_path / 'c4.jsonl.zst').write_bytes(b'(\xb5/\xfd')
  with pytest.raises(ValueError, match='c4.jsonl.zst is zstd-compressed.*hf_streaming=True'):
    pretraining.validate_data_config(run_spec.load(_bad_config(tokenizer_path, tmp_path)))


def test_empty_datasets(tokenizer_path, tmp_path):
  (tmp_path / 'empty.jsonl').write_text('\n')
  with pytest.raises(ValueError, match='empty corpus'):
    pretraining.validate_data_config(run_spec.load(_bad_config(tokenizer_path, tmp_path)))
  datasets.Dataset.from_dict({'text': ['', ' \n ']}).save_to_disk(str(tmp_path / 'saved'))
  config = _config(tokenizer_path, 'hf', hf_path=str(tmp_path / 'saved'))
  with pytest.raises(ValueError, match="saved \\(split 'train'\\) is an empty corpus"):
    pretraining.validate_data_config(run_spec.load(config))
  config.data.text_field = 'body'
  with pytest.raises(ValueError, match="has no column 'body'; its columns are \\['text'\\]"):
    pretraining.validate_data_config(run_spec.load(config))


def test_hf_load_dataset_from_data_files(tokenizer_path, corpora):
  """`load_dataset('json', data_files=...)`: the Hugging Face way to name local files."""
  configs = _format_configs(tokenizer_path, corpora)
  config = _config(tokenizer_path, 'hf', hf_path='json', hf_shard_rows=DOCS_PER_FILE,
                   hf_data_files=','.join(f'{corpora}/part-{i}.jsonl' for i in range(4)))
  expected = _take(iter(pretraining.make_dataset(run_spec.load(configs['text']), 'train')), 2)
  _assert_same(expected, _take(iter(pretraining.make_dataset(run_spec.load(config), 'train')), 2))
  # Streamed, each file is a shard, read a few records at a time; a restored iterator reopens
  # its shards and skips to the saved row.
  config.data.hf_streaming, config.data.hf_shard_rows = True, 7
  batches = pretraining.make_dataset(run_spec.load(config), 'train')
  _assert_same(expected[:1], _take(iter(batches), 1))


def test_a_corrupt_prepared_record_is_named_or_skipped(tokenizer_path, tmp_path):
  """Ten record shards written as `prepare` writes them; one byte of the tenth is flipped."""
  rng = np.random.default_rng(0)
  names = [records.shard_name('train', i, 10) for i in range(10)]
  for name in names:
    ids = rng.integers(5, 4000, size=(50, 128)).astype(np.int32)
    with tf.io.TFRecordWriter(str(tmp_path / name)) as writer:
      for record in records.serialize_examples(ids, np.zeros_like(ids), 'uint16'):
        writer.write(record)
  records.write_metadata(str(tmp_path), {'format': records.FORMAT,
                                         'shards': {'train': names, 'eval': names[:1]}})
  raw = bytearray((tmp_path / names[9]).read_bytes())
  raw[len(raw) // 2] ^= 0xFF
  (tmp_path / names[9]).write_bytes(bytes(raw))
  config = _config(tokenizer_path, 'prepared', prepared_dir=str(tmp_path))

  def read_all():
    serialized = pretraining._prepared_records(config, 'train', False, 0, 1)  # noqa: SLF001
    return list(inputs._numpy(serialized.map(lambda r: {'record': r})))  # noqa: SLF001

  with pytest.raises(ValueError, match=r'train-00009-of-00010.tfrecord has a corrupt or cut '
                     r'record after record \d+ \(byte \d+ of \d+\)'):
    read_all()
  config.data.on_bad_record = 'skip'
  bad_records.LOG.reset()
  assert 450 < len(read_all()) < 500 and bad_records.LOG.count == 1


def test_tokenizer_reads_the_same_text_from_every_format(corpora):
  from electra_jax import tokenizer  # noqa: PLC0415
  import types  # noqa: PLC0415

  def texts(**values):
    values = {'text_field': 'text', 'hf_name': '', 'hf_data_files': '', 'hf_split': 'train',
              **values}
    return list(tokenizer._texts_from_flags(types.SimpleNamespace(**values)))  # noqa: SLF001

  expected = texts(source='files', files=f'{corpora}/part-*.txt')
  assert len(expected) > 100
  assert texts(source='jsonl', files=f'{corpora}/part-*.jsonl.gz') == expected
  assert texts(source='parquet', files=f'{corpora}/part-*.parquet') == expected
  assert texts(source='hf', hf_path=f'{corpora}/saved') == expected

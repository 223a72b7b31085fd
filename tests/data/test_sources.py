"""Text files as they come (blank runs, bad bytes, huge lines, .gz) and clear errors for bad input."""

import gzip
import os

import numpy as np
import pytest

from electra_jax.configs import tiny
from electra_jax.data import corpus
from electra_jax.data import pretraining
from electra_jax.data import tokenizers
from electra_jax.spec import run as run_spec


@pytest.fixture(scope='session')
def builtin_model(tmp_path_factory):
  config = tiny.get_config()
  config.tokenizer.cache_dir = str(tmp_path_factory.getbasetemp() / 'electra_jax_cache')
  return tokenizers.builtin_tokenizer_path(config)


@pytest.fixture
def config(builtin_model, tmp_path):
  config = tiny.get_config()
  config.tokenizer.cache_dir = str(tmp_path / 'unused_cache')
  config.tokenizer.path = builtin_model
  config.data.source = 'files'
  config.train.batch_size = 4
  config.data.shuffle_buffer = 10
  return config


def test_messy_text_files_are_read_not_fatal(config, tmp_path):
  overlong = ('word ' * 200_000).encode()  # one 1 MB line
  raw = (b'First document, first sentence.\r\nIts second sentence.\n\n\n\n   \n'
         b'Bad bytes \xff\xfe\xc3 inside a line.\n\t\n' + overlong + b'\n\n'
         b'A last document without a trailing newline.')
  (tmp_path / 'messy.txt').write_bytes(raw)
  with gzip.open(tmp_path / 'messy2.txt.gz', 'wb') as f:
    f.write(raw)
  config.data.train_files = f'{tmp_path}/messy.txt, {tmp_path}/messy2.txt.gz'
  config.data.eval_fraction = 0.0
  config.data.eval_files = str(tmp_path / 'messy.txt')
  examples = list(pretraining.packed_examples(config, 'train', training=False)
                  .as_numpy_iterator())
  tokenizer = tokenizers.SentencePieceTokenizer(config.tokenizer.path)
  texts = [tokenizer.decode(e['input_ids']) for e in examples]
  # Per file 4 documents ('\t' is blank too): the two sentences, the bad-bytes line, the huge
  # line (which fills an example on its own), the unterminated last line. Files interleave.
  assert len(examples) == 8 and texts[0::2] == texts[1::2]
  first_file = texts[0::2]
  assert first_file[0] == 'First document, first sentence. Its second sentence.'
  assert first_file[1].startswith('Bad bytes') and first_file[1].endswith('inside a line.')
  assert (examples[4]['input_ids'] != 0).sum() == 128 and first_file[2].startswith('word word')
  assert first_file[3] == 'A last document without a trailing newline.'
  batch = next(iter(pretraining.make_dataset(run_spec.load(config), 'train')))
  assert batch['input_ids'].shape == (4, 128)


def test_clean_line_python_side():
  assert corpus.clean_line(b'  caf\xc3\xa9 \xff ok \r\n', 100) == 'caf\u00e9 \ufffd ok'
  assert corpus.clean_line(b'x' * 50, 10) == 'x' * 10


@pytest.mark.parametrize('field, value, message', [
    ('train_files', '/no/such/dir/*.txt', 'matches no file'),
    ('train_files', '/no/such/file.txt', 'matches no file'),
    ('train_files', ' , ', 'is empty'),
])
def test_missing_paths(config, field, value, message):
  config.data[field] = value
  with pytest.raises(ValueError, match=message):
    pretraining.make_dataset(run_spec.load(config), 'train')


def test_empty_corpus(config, tmp_path):
  (tmp_path / 'blank.txt').write_text('\n\n   \n\t\n')
  config.data.train_files = str(tmp_path / 'blank.txt')
  with pytest.raises(ValueError, match='empty corpus'):
    pretraining.validate_data_config(run_spec.load(config))


def test_sequence_longer_than_positions(config):
  config.data.max_seq_length = 256
  with pytest.raises(ValueError, match='max_position_embeddings=128'):
    pretraining.validate_data_config(run_spec.load(config))


def test_tokenizer_larger_than_model_vocab(config, tmp_path):
  (tmp_path / 'a.txt').write_text('Some text.\n')
  config.data.train_files = str(tmp_path / 'a.txt')
  config.model.vocab_size = 1000
  with pytest.raises(ValueError, match='raise model.vocab_size to at least 4096'):
    pretraining.validate_data_config(run_spec.load(config))
  config.data.source = 'builtin'
  config.tokenizer.path = ''
  with pytest.raises(ValueError, match='tokenizer.vocab_size=4096 exceeds model.vocab_size=1000'):
    pretraining.validate_data_config(run_spec.load(config))
  assert not os.path.exists(config.tokenizer.cache_dir)  # failed before training anything


def test_non_builtin_source_without_tokenizer(config, tmp_path):
  (tmp_path / 'a.txt').write_text('Some text.\n')
  config.data.train_files = str(tmp_path / 'a.txt')
  config.tokenizer.path = ''
  with pytest.raises(ValueError, match='python -m electra_jax.tokenizer'):
    pretraining.validate_data_config(run_spec.load(config))


@pytest.mark.parametrize('field, value, message', [
    ('source', 'web', 'data.source'),
    ('mask_prob', 0.0, 'mask_prob'),
    ('random_token_prob', 0.3, 'exceeds 1'),
    ('max_predictions_per_seq', 500, 'max_predictions_per_seq=500'),
])
def test_bad_data_options(config, field, value, message):
  config.data[field] = value
  with pytest.raises(ValueError, match=message):
    pretraining.validate_data_config(run_spec.load(config))


def test_bad_split_and_host_layout(config, tmp_path):
  (tmp_path / 'a.txt').write_text('Some text.\n')
  config.data.train_files = str(tmp_path / 'a.txt')
  with pytest.raises(ValueError, match="split='test'"):
    pretraining.make_dataset(run_spec.load(config), 'test')
  with pytest.raises(ValueError, match='not divisible by the 3 hosts'):
    pretraining.make_dataset(run_spec.load(config, process_count=3), 'train', 0)


def test_missing_prepared_dir(config, tmp_path):
  config.data.source = 'prepared'
  config.data.prepared_dir = str(tmp_path / 'nothing')
  with pytest.raises(ValueError, match='prepare'):
    pretraining.validate_data_config(run_spec.load(config))


def test_tfds_dataset_unknown(config):
  config.data.source = 'tfds'
  config.data.tfds_name = 'surely_not_a_dataset_name'
  with pytest.raises(ValueError, match='surely_not_a_dataset_name'):
    pretraining.validate_data_config(run_spec.load(config))


def test_batches_respect_the_declared_dtypes(config, tmp_path):
  (tmp_path / 'a.txt').write_text('One sentence here.\nAnother one there.\n\nSecond document.\n')
  config.data.train_files = str(tmp_path / 'a.txt')
  config.data.eval_fraction = 0.0
  config.data.eval_files = str(tmp_path / 'a.txt')
  batch = next(iter(pretraining.make_dataset(run_spec.load(config), 'eval')))
  assert batch['masked_lm_weights'].dtype == np.float32
  assert batch['masked_lm_positions'].dtype == np.int32


def test_builtin_corpus_grows_with_packages_and_is_cached(monkeypatch, tmp_path):
  monkeypatch.setenv('XDG_CACHE_HOME', str(tmp_path))
  corpus.builtin_corpus.cache_clear()
  try:
    base = corpus.builtin_corpus()
    grown = corpus.builtin_corpus('absl, ml_collections')
    # The standard library comes first, in the same order; the packages' documents follow.
    assert grown.documents[:len(base.documents)] == base.documents
    assert len(grown.documents) > len(base.documents) + 20
    key = corpus.builtin_corpus_key(('absl', 'ml_collections'))
    assert key.startswith(corpus.builtin_corpus_key()) and key != corpus.builtin_corpus_key()
    names = os.listdir(tmp_path / 'electra_jax')
    assert f'builtin-corpus-{key}.json.gz' in names and not [n for n in names if '.tmp' in n]
    # A new process reads the cache instead of parsing the sources again.
    corpus.builtin_corpus.cache_clear()
    monkeypatch.setattr(corpus, '_build_documents', lambda packages: pytest.fail('rebuilt'))
    assert corpus.builtin_corpus(('absl', 'ml_collections')) == grown
  finally:
    corpus.builtin_corpus.cache_clear()


def test_unknown_builtin_package(config):
  config.data.source = 'builtin'
  config.data.builtin_packages = 'numpy, no_such_package_here'
  with pytest.raises(ValueError, match="'no_such_package_here', which is not an installed"):
    pretraining.validate_data_config(run_spec.load(config))

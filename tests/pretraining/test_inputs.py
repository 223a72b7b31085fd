"""Tests for electra_jax.pretraining.inputs: the run's tokenizer, and this host's batches.

Synthetic batches (no pipeline, resumable from any step) and real ones: text files read with a
SentencePiece model trained here on made-up sentences, and the built-in corpus with its
tokenizer trained into a temporary cache. `resolve_tokenizer` must record the tokenizer it picks
in the run's config (every checkpoint saves it), and `HostInputs` must give batches of the step's
shapes, resumable from the iterator's checkpoint, with the same eval batches on every pass.
"""

import itertools

import numpy as np
import pytest
import tensorflow as tf

from electra_jax.configs import default as default_config
from electra_jax.data import tokenizers
from electra_jax.data.tokenizers import hf as hf_tokenizer
from electra_jax.pretraining import inputs
from electra_jax.pretraining import steps
from electra_jax.spec import run as run_spec
from model_configs import tiny_model_config  # tests/model_configs.py

BATCH, LENGTH, VOCAB = 8, 32, 256


def _config(source='synthetic', **data):
  config = default_config.get_config()
  tiny = tiny_model_config(vocab_size=VOCAB, max_position_embeddings=LENGTH)
  config.model.update({k: tiny[k] for k in config.model})
  config.electra.update(generator_hidden_fraction=0.5, embedding_sharing='shared')
  config.data.update(source=source, max_seq_length=LENGTH, shuffle_buffer=50, **data)
  config.tokenizer.vocab_size = VOCAB
  config.train.update(batch_size=BATCH, eval_every=10, eval_steps=2)
  return config


def _sentences(count, seed):
  """Made-up sentences over a fixed vocabulary of syllable words (same words for any seed)."""
  syllables = ['ka', 'lo', 'mi', 'ne', 'tu', 'ra', 'si', 'vo', 'pe', 'gu', 'da', 'fi']
  words = [''.join(p) for n in (1, 2, 3) for p in itertools.product(syllables[:8], repeat=n)]
  rng = np.random.default_rng(seed)
  return [' '.join(rng.choice(words, rng.integers(5, 14))).capitalize() + '.'
          for _ in range(count)]


@pytest.fixture(scope='module')
def text_files(tmp_path_factory):
  """(train file, eval file, SentencePiece model): documents of 4-8 lines, blank-line separated."""
  root = tmp_path_factory.mktemp('text')
  paths = {}
  for name, count, seed in (('train', 1200, 0), ('eval', 200, 1)):
    lines = _sentences(count, seed)
    documents, i = [], 0
    while i < len(lines):
      size = 4 + i % 5
      documents.append('\n'.join(lines[i:i + size]))
      i += size
    paths[name] = root / f'{name}.txt'
    paths[name].write_text('\n\n'.join(documents) + '\n', encoding='utf-8')
  model = tokenizers.train_sentencepiece(_sentences(1200, 0), str(root / 'sp'), VOCAB,
                                         allow_smaller_vocab=True)
  return str(paths['train']), str(paths['eval']), model


def _files_spec(text_files, vocab_size=VOCAB, **train):
  train_file, eval_file, model = text_files
  config = _config('files', train_files=train_file, eval_files=eval_file)
  config.model.vocab_size = vocab_size
  config.tokenizer.path = model
  config.train.update(train)
  return run_spec.load(config)


def _shapes(spec):
  return {k: (shape, np.dtype(dtype)) for k, (shape, dtype) in steps.batch_shapes(
      spec.host_batch_size, spec.seq_length, spec.max_predictions).items()}


def _take(batches, count):
  return list(itertools.islice(batches, count))


def _same_batches(a, b):
  return len(a) == len(b) and all(
      sorted(x) == sorted(y) and all(np.array_equal(x[k], y[k]) for k in x) for x, y in zip(a, b))


# ---- Synthetic batches -----------------------------------------------------------------------

def test_synthetic_runs_have_no_tokenizer_iterator_or_eval(tmp_path):
  spec = run_spec.load(_config())
  assert inputs.resolve_tokenizer(spec, str(tmp_path)) is None
  assert spec.config.tokenizer.path == ''
  host = inputs.HostInputs(spec, None)
  assert host.synthetic and host.checkpoint_iterator is None
  assert not host.has_eval and host.eval_batches() is None
  assert host.tokenizer_files == []
  assert list(tmp_path.iterdir()) == []


def test_synthetic_batches_have_the_steps_shapes_and_dtypes():
  spec = run_spec.load(_config())
  batch = next(inputs.HostInputs(spec, None).train_batches(0))
  assert {k: (v.shape, v.dtype) for k, v in batch.items()} == _shapes(spec)


def test_synthetic_batches_resumed_at_step_k_equal_the_batches_after_k():
  spec = run_spec.load(_config())
  host = inputs.HostInputs(spec, None)
  straight = _take(host.train_batches(0), 5)
  assert _same_batches(_take(host.train_batches(3), 2), straight[3:])
  assert not _same_batches(straight[:1], straight[1:2])


def test_each_host_gets_its_rows_of_the_same_global_batch():
  whole = _take(inputs.HostInputs(run_spec.load(_config()), None).train_batches(2), 1)[0]
  spec = run_spec.load(_config(), process_count=2)
  assert spec.host_batch_size == BATCH // 2
  for index in (0, 1):
    part = next(inputs.HostInputs(spec, None, process_index=index).train_batches(2))
    assert {k: (v.shape, v.dtype) for k, v in part.items()} == _shapes(spec)
    rows = slice(index * BATCH // 2, (index + 1) * BATCH // 2)
    for key, value in part.items():
      np.testing.assert_array_equal(value, whole[key][rows], err_msg=key)


# ---- Text files ------------------------------------------------------------------------------

def test_a_given_tokenizer_is_loaded_and_kept_in_the_config(text_files, tmp_path):
  spec = _files_spec(text_files)
  tokenizer = inputs.resolve_tokenizer(spec, str(tmp_path))
  assert spec.config.tokenizer.path == text_files[2]
  assert tokenizer.files() == [text_files[2]]
  assert 5 < tokenizer.vocab_size <= VOCAB
  host = inputs.HostInputs(spec, tokenizer)
  assert host.tokenizer_files == [text_files[2]]


def test_file_batches_have_the_steps_shapes_and_real_tokens(text_files, tmp_path):
  spec = _files_spec(text_files)
  tokenizer = inputs.resolve_tokenizer(spec, str(tmp_path))
  host = inputs.HostInputs(spec, tokenizer)
  assert host.checkpoint_iterator is not None and host.has_eval
  batch = next(host.train_batches(0))
  assert {k: (v.shape, v.dtype) for k, v in batch.items()} == _shapes(spec)
  assert np.all(batch['input_ids'][:, 0] == tokenizer.cls_id)
  assert np.all(batch['input_ids'] < tokenizer.vocab_size)
  assert batch['masked_lm_weights'].sum() > 0
  masked = batch['masked_input_ids'] != batch['input_ids']
  assert masked.any() and np.all(batch['attention_mask'][masked] == 1)


def test_the_training_stream_resumes_from_the_saved_iterator(text_files, tmp_path):
  spec = _files_spec(text_files)
  tokenizer = inputs.resolve_tokenizer(spec, str(tmp_path))
  host = inputs.HostInputs(spec, tokenizer)
  batches = host.train_batches(0)
  _take(batches, 2)
  prefix = tf.train.Checkpoint(iterator=host.checkpoint_iterator).write(str(tmp_path / 'it'))
  expected = _take(batches, 2)
  resumed = inputs.HostInputs(spec, tokenizer)
  tf.train.Checkpoint(iterator=resumed.checkpoint_iterator).read(prefix).assert_consumed()
  assert _same_batches(_take(resumed.train_batches(2), 2), expected)
  # A fresh host starts at the beginning, which differs from where the saved one was.
  assert not _same_batches(_take(inputs.HostInputs(spec, tokenizer).train_batches(0), 2),
                           expected)


def test_eval_batches_are_the_same_on_every_pass(text_files, tmp_path):
  spec = _files_spec(text_files)
  host = inputs.HostInputs(spec, inputs.resolve_tokenizer(spec, str(tmp_path)))
  first, second = _take(host.eval_batches(), 2), _take(host.eval_batches(), 2)
  assert len(first) == 2 and _same_batches(first, second)
  assert {k: (v.shape, v.dtype) for k, v in first[0].items()} == _shapes(spec)
  assert not _same_batches(first[:1], first[1:])
  train = _take(host.train_batches(0), 1)
  assert not any(_same_batches(train, [batch]) for batch in first)


def test_no_eval_batches_when_the_run_does_not_evaluate(text_files, tmp_path):
  spec = _files_spec(text_files, eval_every=0)
  host = inputs.HostInputs(spec, inputs.resolve_tokenizer(spec, str(tmp_path)))
  assert not host.has_eval and host.eval_batches() is None
  assert host.checkpoint_iterator is not None


def test_a_tokenizer_larger_than_the_model_is_refused(text_files, tmp_path):
  spec = _files_spec(text_files, vocab_size=16)
  with pytest.raises(ValueError, match=r'model.vocab_size=16: raise model.vocab_size to at least'):
    inputs.resolve_tokenizer(spec, str(tmp_path))


# ---- Tokenizers picked for the run -----------------------------------------------------------

def test_the_builtin_corpus_tokenizer_is_copied_into_the_workdir_and_recorded(tmp_path):
  config = _config('builtin')
  config.tokenizer.cache_dir = str(tmp_path / 'cache')
  spec = run_spec.load(config)
  workdir = tmp_path / 'workdir'
  tokenizer = inputs.resolve_tokenizer(spec, str(workdir))
  kept = str(workdir / 'tokenizer' / 'builtin.model')
  assert spec.config.tokenizer.path == kept
  assert tokenizer.files() == [kept]
  cached = [p for p in (tmp_path / 'cache').iterdir() if p.suffix == '.model']
  assert len(cached) == 1 and cached[0].read_bytes() == (workdir / 'tokenizer' /
                                                         'builtin.model').read_bytes()
  # A second run in the same workdir keeps the copy it has (and trains nothing).
  again = run_spec.load(_config('builtin'))
  again.config.tokenizer.cache_dir = str(tmp_path / 'other_cache')
  inputs.resolve_tokenizer(again, str(workdir))
  assert again.config.tokenizer.path == kept
  assert not (tmp_path / 'other_cache').exists()


def test_init_froms_tokenizer_is_recorded_when_none_is_given(text_files, tmp_path):
  source = tmp_path / 'source'
  source.mkdir()
  tokenizer = tokenizers.SentencePieceTokenizer(text_files[2])
  export_dir = source / 'discriminator'
  export_dir.mkdir()
  hf_tokenizer.export_tokenizer(tokenizer, str(export_dir), model_max_length=LENGTH)
  (export_dir / 'config.json').write_text('{}')  # detected as a Hugging Face directory
  spec = _files_spec(text_files)
  spec.config.tokenizer.path = ''
  spec.config.init_from = str(source)
  resolved = inputs.resolve_tokenizer(spec, str(tmp_path / 'workdir'))
  assert spec.config.tokenizer.path == str(export_dir / 'spiece.model')
  assert resolved.vocab_size == tokenizer.vocab_size
  assert resolved.encode('Kalo mine tura.') == tokenizer.encode('Kalo mine tura.')

"""The tokenizers package: SentencePiece special ids, offsets, tf.data tokenisation, cached
training, loading by type, errors (WordPiece: test_data_wordpiece.py)."""

import os

import ml_collections
import pytest
import sentencepiece as spm
import tensorflow as tf

from electra_jax.data import corpus
from electra_jax.data import tokenizers


def _tokenizer_config(cache_dir, vocab_size=4096):
  return ml_collections.ConfigDict({'tokenizer': {'cache_dir': str(cache_dir),
                                                  'vocab_size': vocab_size},
                                    'data': {'builtin_packages': ''}})


@pytest.fixture(scope='session')
def cache_dir(tmp_path_factory):
  return tmp_path_factory.getbasetemp() / 'electra_jax_cache'


@pytest.fixture(scope='session')
def builtin_tokenizer(cache_dir):
  return tokenizers.SentencePieceTokenizer(
      tokenizers.builtin_tokenizer_path(_tokenizer_config(cache_dir)))


def test_special_ids_and_vocab(builtin_tokenizer):
  tok = builtin_tokenizer
  assert tok.vocab_size == 4096
  assert (tok.pad_id, tok.unk_id, tok.cls_id, tok.sep_id, tok.mask_id) == (0, 1, 2, 3, 4)
  assert isinstance(tok, tokenizers.Tokenizer)
  # Control symbols: literal "[MASK]" in text is not the mask id.
  assert tokenizers.MASK_ID not in tok.encode('Predict the [MASK] token, [CLS] [SEP].')
  ids = tok.encode('The function returns a list of strings.')
  assert ids and min(ids) >= 5
  assert tok.decode(ids) == 'The function returns a list of strings.'
  assert tok.decode([2] + ids + [3, 0, 0]) == 'The function returns a list of strings.'


@pytest.mark.parametrize('text', ['Hello  wörld, a ﬁne déjà-vu.', 'def f(x):\n  return x * 2',
                                  '日本語 mixed with ASCII'])
def test_offsets_index_the_original_string(builtin_tokenizer, text):
  ids, starts, ends = builtin_tokenizer.encode_with_offsets(text)
  assert ids == builtin_tokenizer.encode(text)
  assert len(ids) == len(starts) == len(ends)
  assert all(0 <= s <= e <= len(text) for s, e in zip(starts, ends))
  assert starts == sorted(starts)
  # The pieces' spans tile the string (whitespace belongs to the following piece).
  assert ''.join(text[s:e] for s, e in zip(starts, ends)) == text.strip() or \
      ''.join(text[s:e] for s, e in zip(starts, ends)).replace('\n', ' ') == text.replace('\n', ' ')


def test_tf_tokenize_matches_encode(builtin_tokenizer):
  texts = ['The quick brown fox.', '', 'Iterators and generators: yield from.']
  ragged = builtin_tokenizer.tf_tokenize(tf.constant(texts))
  assert ragged.dtype == tf.int32
  assert ragged.to_list() == [builtin_tokenizer.encode(t) for t in texts]
  dataset = tf.data.Dataset.from_tensor_slices(texts).batch(3).map(builtin_tokenizer.tf_tokenize)
  assert next(iter(dataset)).to_list() == ragged.to_list()


def test_builtin_model_is_cached_atomically(builtin_tokenizer, cache_dir):
  path = builtin_tokenizer.files()[0]
  assert os.path.dirname(path) == str(cache_dir) and 'v4096' in os.path.basename(path)
  mtime = os.path.getmtime(path)
  assert tokenizers.builtin_tokenizer_path(_tokenizer_config(cache_dir)) == path
  assert os.path.getmtime(path) == mtime  # not trained again
  assert not [n for n in os.listdir(cache_dir) if '.tmp' in n]


def test_default_cache_dir_honours_xdg(monkeypatch, tmp_path):
  monkeypatch.setenv('XDG_CACHE_HOME', str(tmp_path))
  assert tokenizers.default_cache_dir() == str(tmp_path / 'electra_jax')
  monkeypatch.delenv('XDG_CACHE_HOME')
  monkeypatch.setenv('HOME', str(tmp_path / 'home'))
  assert tokenizers.default_cache_dir() == str(tmp_path / 'home' / '.cache' / 'electra_jax')


_SMALL_TEXT = [f'Sentence number {i} talks about {w} and other things.'
               for i in range(200) for w in ('lists', 'tuples', 'dicts')]


def test_train_small_model_and_vocab_limits(tmp_path):
  texts = list(corpus.builtin_corpus().texts())[:2000]
  path = tokenizers.train_sentencepiece(texts, str(tmp_path / 'small'), 300)
  assert path == str(tmp_path / 'small.model')
  assert tokenizers.SentencePieceTokenizer(path).vocab_size == 300
  with pytest.raises(ValueError, match='supports at most'):
    tokenizers.train_sentencepiece(texts, str(tmp_path / 'big'), 50_000)
  path = tokenizers.train_sentencepiece(texts, str(tmp_path / 'big'), 50_000,
                                        allow_smaller_vocab=True)
  assert 300 < tokenizers.SentencePieceTokenizer(path).vocab_size < 50_000
  with pytest.raises(ValueError, match='empty'):
    tokenizers.train_sentencepiece(['', '  '], str(tmp_path / 'none'), 100)


def test_model_without_special_symbols_is_rejected(tmp_path):
  spm.SentencePieceTrainer.train(sentence_iterator=iter(_SMALL_TEXT),
                                 model_prefix=str(tmp_path / 'plain'), vocab_size=50,
                                 minloglevel=2)
  with pytest.raises(ValueError, match=r'lacks the special symbols.*\[PAD\]'):
    tokenizers.SentencePieceTokenizer(str(tmp_path / 'plain.model'))
  with pytest.raises(ValueError, match='does not exist'):
    tokenizers.SentencePieceTokenizer(str(tmp_path / 'missing.model'))


def test_load_tokenizer_dispatch(builtin_tokenizer):
  config = ml_collections.ConfigDict({'type': 'sentencepiece',
                                      'path': builtin_tokenizer.files()[0]})
  assert tokenizers.load_tokenizer(config).vocab_size == 4096
  config.type = 'wordpiece'
  with pytest.raises(ValueError, match='wordpiece'):
    tokenizers.load_tokenizer(config)
  config.type = 'bpe-ish'
  with pytest.raises(ValueError, match='unknown'):
    tokenizers.load_tokenizer(config)
  config.type, config.path = 'sentencepiece', ''
  with pytest.raises(ValueError, match='python -m electra_jax.tokenizer'):
    tokenizers.load_tokenizer(config)

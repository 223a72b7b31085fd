"""WordPiece (BERT vocab.txt) tokenizer: equal to Hugging Face's BertTokenizer, works in tf.data."""

import json
import os

import ml_collections
import numpy as np
import pytest
import tensorflow as tf

from electra_jax.data import tokenizers
from electra_jax.data.tokenizers import hf as hf_tokenizer
from electra_jax.spec import run as run_spec

# BERT's layout: [PAD] first, then unused slots, then the other specials (ids read from the file).
VOCAB = (['[PAD]', '[unused0]', '[unused1]', '[UNK]', '[CLS]', '[SEP]', '[MASK]']
         + ['the', 'cafe', 'caf', '##e', '##é', 'é', 'naive', 'hello', 'world', 'Hello', ',', '.',
            '!', '?', "'", '"', '(', ')', 's', 'don', 't', '中', '国', '人', 'un', '##known',
            '##able', '##s', 'a', '##b', '##c', 'b', 'c', 'über', 'uber', 'resume', 'résumé',
            '$', '5', '##0', '-', 'e', 'mail', '@', 'x', '##y', 'σ', 'ς', 'ß', 'fi', '##sh',
            'ﬁ', 'stop', 'is', 'it', 'and', 'of', '##ing', 'tab', 'here', 'new', 'line'])
TRICKY = [
    'Hello, World!', 'Café naïve résumé', 'über Über UBER', "don't stop (it's \"fine\")",
    '中国人 是 中国', 'unknownable abc', '$50-e-mail@x.y', 'zero\u200bwidth', 'no\u00a0break',
    'vertical\x0btab\x00nul \ufffd', 'ΣΑΣ σς', 'ß ﬁsh', 'ＡＢＣ full width', 'x' * 120, 'é' * 60,
    '  leading   spaces\t\nand tabs ', 'a\u3000b\u2028c\x85d', 'e\u0301 decomposed ñ',
    'private\ue000use', 'emoji \U0001F600 x', 'soft\u00adhyphen', '', '   ', 'the unknownables',
]


@pytest.fixture(scope='module')
def vocab_path(tmp_path_factory):
  path = tmp_path_factory.mktemp('wordpiece') / 'vocab.txt'
  path.write_text('\n'.join(VOCAB) + '\n', encoding='utf-8')
  return str(path)


@pytest.mark.parametrize('lower_case', [True, False])
def test_ids_and_offsets_equal_huggingface_bert_tokenizer(vocab_path, lower_case):
  from transformers import BertTokenizer  # noqa: PLC0415
  reference = BertTokenizer.from_pretrained(os.path.dirname(vocab_path), do_lower_case=lower_case)
  ours = tokenizers.WordPieceTokenizer(vocab_path, lower_case=lower_case, strip_accents=lower_case)
  unknown_seen = 0
  for text in TRICKY:
    expected = reference(text, add_special_tokens=False, return_offsets_mapping=True)
    ids, starts, ends = ours.encode_with_offsets(text)
    assert ours.encode(text) == expected['input_ids'], text
    assert ids == expected['input_ids'], text
    assert list(zip(starts, ends)) == [tuple(o) for o in expected['offset_mapping']], text
    unknown_seen += ids.count(ours.unk_id)
  assert unknown_seen > 5  # the strings really exercise unknown words


def test_special_ids_come_from_the_vocab(vocab_path):
  tokenizer = tokenizers.WordPieceTokenizer(vocab_path)
  assert (tokenizer.pad_id, tokenizer.unk_id, tokenizer.cls_id, tokenizer.sep_id,
          tokenizer.mask_id) == (0, 3, 4, 5, 6)
  assert tokenizer.vocab_size == len(VOCAB)
  assert tokenizer.files() == [vocab_path]
  # A literal "[MASK]" in text is text, never the mask id (as in the original BERT/ELECTRA).
  assert tokenizer.mask_id not in tokenizer.encode('[MASK] hello')


def test_tf_tokenize_inside_tf_data_equals_encode(vocab_path):
  tokenizer = tokenizers.WordPieceTokenizer(vocab_path)
  dataset = tf.data.Dataset.from_tensor_slices(TRICKY).batch(5).map(tokenizer.tf_tokenize)
  rows = [row.tolist() for batch in dataset for row in batch.numpy()]
  assert rows == [tokenizer.encode(text) for text in TRICKY]
  assert next(iter(dataset)).dtype == tf.int32


def test_decode_joins_continuations_and_drops_specials(vocab_path):
  tokenizer = tokenizers.WordPieceTokenizer(vocab_path)
  ids = [tokenizer.cls_id] + tokenizer.encode('Hello, unknownable world!') + [tokenizer.sep_id,
                                                                             tokenizer.pad_id]
  assert tokenizer.decode(ids) == 'hello , unknownable world !'


def test_bad_vocab_files_raise_clear_errors(tmp_path, vocab_path):
  no_mask = tmp_path / 'vocab.txt'
  no_mask.write_text('\n'.join(v for v in VOCAB if v != '[MASK]') + '\n')
  with pytest.raises(ValueError, match=r"lacks the special tokens \['\[MASK\]'\]"):
    tokenizers.WordPieceTokenizer(str(no_mask))
  binary = tmp_path / 'sp.model'
  binary.write_bytes(b'\x0a\xff\xfe\x00binary')
  with pytest.raises(ValueError, match="tokenizer.type='sentencepiece'"):
    tokenizers.WordPieceTokenizer(str(binary))
  with pytest.raises(ValueError, match='does not exist'):
    tokenizers.WordPieceTokenizer(str(tmp_path / 'missing.txt'))


def test_load_tokenizer_dispatches_wordpiece_with_casing(vocab_path):
  config = ml_collections.ConfigDict(dict(type='wordpiece', path=vocab_path, lower_case=False,
                                          strip_accents=False))
  cased = tokenizers.load_tokenizer(config)
  assert isinstance(cased, tokenizers.WordPieceTokenizer)
  assert cased.encode('Hello') == [VOCAB.index('Hello')]
  config.lower_case = config.strip_accents = True
  assert tokenizers.load_tokenizer(config).encode('Hello') == [VOCAB.index('hello')]


@pytest.mark.parametrize('lower_case', [True, False])
def test_hf_export_loads_in_transformers_with_the_same_ids(tmp_path, vocab_path, lower_case):
  from transformers import AutoTokenizer  # noqa: PLC0415
  ours = tokenizers.WordPieceTokenizer(vocab_path, lower_case=lower_case, strip_accents=lower_case)
  files = hf_tokenizer.export_tokenizer(ours, str(tmp_path), model_max_length=64)
  assert sorted(f.rsplit('/', 1)[1] for f in files) == ['tokenizer_config.json', 'vocab.txt']
  assert json.loads((tmp_path / 'tokenizer_config.json').read_text())['do_lower_case'] == lower_case
  theirs = AutoTokenizer.from_pretrained(str(tmp_path))
  for text in TRICKY:
    assert theirs(text, add_special_tokens=False)['input_ids'] == ours.encode(text), text
  pair = theirs('Hello world', 'the cafe')
  assert pair['input_ids'] == ([ours.cls_id] + ours.encode('Hello world') + [ours.sep_id]
                               + ours.encode('the cafe') + [ours.sep_id])
  assert pair['token_type_ids'] == [0] * 4 + [1] * 3
  loaded, _ = hf_tokenizer.find_tokenizer(str(tmp_path))
  assert (loaded.lower_case, loaded.strip_accents) == (lower_case, lower_case)


def test_pretraining_pipeline_runs_on_wordpiece(tmp_path, vocab_path, repo_root):
  from electra_jax.data import pretraining  # noqa: PLC0415
  from electra_jax import startup  # noqa: PLC0415
  config = startup.load_config_file(repo_root / 'configs' / 'tiny.py')
  words = [w for w in VOCAB[7:] if not w.startswith('##')]
  rng = np.random.default_rng(0)
  lines = []
  for _ in range(60):  # documents of a few sentences, blank line between documents
    lines += [' '.join(rng.choice(words, size=rng.integers(4, 12))) for _ in range(3)] + ['']
  corpus = tmp_path / 'corpus.txt'
  corpus.write_text('\n'.join(lines), encoding='utf-8')
  config.data.source, config.data.train_files = 'files', str(corpus)
  config.data.eval_fraction, config.data.max_seq_length = 0.1, 32
  config.tokenizer.type, config.tokenizer.path = 'wordpiece', vocab_path
  config.model.vocab_size, config.train.batch_size = len(VOCAB), 4
  batch = next(iter(pretraining.make_dataset(run_spec.load(config), 'train')))
  ids = batch['input_ids'].numpy()
  assert ids.shape == (4, 32)
  assert (ids[:, 0] == VOCAB.index('[CLS]')).all()
  assert ids.max() < len(VOCAB) and VOCAB.index('[UNK]') not in ids  # every word is in the vocab
  masked = batch['masked_input_ids'].numpy()
  assert (masked == VOCAB.index('[MASK]')).any()
  real = batch['attention_mask'].numpy().astype(bool)
  assert set(ids[real & (ids != VOCAB.index('[CLS]')) & (ids != VOCAB.index('[SEP]'))]) <= {
      VOCAB.index(w) for w in words}

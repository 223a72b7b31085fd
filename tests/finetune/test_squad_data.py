"""SQuAD readers and windowed features, with a SentencePiece and a WordPiece-style tokenizer."""

import io
import json
import re
import unicodedata

import numpy as np
import pytest
import sentencepiece as spm
import tensorflow as tf
import tensorflow_datasets as tfds

from electra_jax.data import tokenizers
from electra_jax.finetune import squad_data

_RNG = np.random.default_rng(7)
WORDS = ['alpha', 'bravo', 'charlie', 'delta', 'echo', 'foxtrot', 'golf', 'hotel', 'india',
         'juliet', 'kilo', 'lima', 'mike', 'november', 'oscar', 'papa', 'quebec', 'romeo',
         'sierra', 'tango', 'uniform', 'victor', 'whiskey', 'xray', 'yankee', 'zulu']


def _sentence(num_words):
  words = list(_RNG.choice(WORDS, size=num_words))
  return ' '.join(words).capitalize() + '.'


class WordPieceStyleTokenizer:
  """A tiny BERT-style tokenizer with character offsets (lower-cases, splits punctuation,
  greedy longest-match pieces with '##' continuations), standing in for the real WordPiece."""
  pad_id, unk_id, cls_id, sep_id, mask_id = 0, 100, 101, 102, 103

  def __init__(self, pieces):
    self.vocab = {piece: 1000 + i for i, piece in enumerate(pieces)}

  def _words(self, text):
    for match in re.finditer(r'\w+|[^\w\s]', text):
      yield match.start(), match.group()

  def encode_with_offsets(self, text):
    ids, starts, ends = [], [], []
    for word_start, word in self._words(text):
      word = unicodedata.normalize('NFD', word.lower())
      position = 0
      while position < len(word):
        for end in range(len(word), position, -1):
          piece = word[position:end] if position == 0 else '##' + word[position:end]
          if piece in self.vocab:
            break
        else:  # no piece: the rest of the word is unknown
          ids.append(self.unk_id)
          starts.append(word_start + position)
          ends.append(word_start + len(word))
          break
        ids.append(self.vocab[piece])
        starts.append(word_start + position)
        ends.append(word_start + end)
        position = end
    return ids, starts, ends

  def encode(self, text):
    return self.encode_with_offsets(text)[0]


def _wordpiece_tokenizer():
  # Whole words for half the vocabulary, two pieces for the other half, plus punctuation.
  pieces = ['.', '?', ',', 'what', 'is', 'after']
  for i, word in enumerate(WORDS):
    pieces += [word] if i % 2 else [word[:3], '##' + word[3:]]
  return WordPieceStyleTokenizer(pieces)


@pytest.fixture(scope='module')
def sentencepiece_tokenizer(tmp_path_factory):
  """The project's SentencePieceTokenizer on a tiny model trained here ([PAD]=0 ... [MASK]=4)."""
  text = [_sentence(int(n)) for n in _RNG.integers(4, 12, size=400)]
  text += ['What is after alpha?', 'What is after zulu?']
  model = io.BytesIO()
  spm.SentencePieceTrainer.train(
      sentence_iterator=iter(text), model_writer=model, vocab_size=90, model_type='unigram',
      pad_id=0, pad_piece='[PAD]', unk_id=1, unk_piece='[UNK]', bos_id=-1, eos_id=-1,
      control_symbols=['[CLS]', '[SEP]', '[MASK]'], num_threads=1, minloglevel=2)
  path = tmp_path_factory.mktemp('spm') / 'tiny.model'
  path.write_bytes(model.getvalue())
  return tokenizers.SentencePieceTokenizer(str(path))


def _long_example(qid, answer_word_index, num_answer_words=1, num_sentences=30):
  """A context of several windows whose answer starts right after a cue word."""
  sentences = [_sentence(8) for _ in range(num_sentences)]
  context = ' '.join(sentences)
  words = [(m.start(), m.end()) for m in re.finditer(r'\w+', context)]
  answer_start = words[answer_word_index][0]
  answer = context[answer_start:words[answer_word_index + num_answer_words - 1][1]]
  cue = context[slice(*words[answer_word_index - 1])].lower()
  return squad_data.SquadExample(
      qid=qid, title='t', question=f'What is after {cue}?', context=context,
      answer_texts=(answer, answer.lower()), answer_starts=(answer_start, answer_start))


def test_doc_windows_by_hand():
  assert squad_data.doc_windows(10, 4, 3) == [(0, 4), (3, 4), (6, 4)]
  assert squad_data.doc_windows(3, 4, 3) == [(0, 3)]
  assert squad_data.doc_windows(0, 4, 3) == [(0, 0)]
  assert squad_data.doc_windows(9, 4, 5) == [(0, 4), (4, 4), (8, 1)]  # stride capped by length
  # Token 4 is in windows 0 ([0,6)) and 1 ([3,9)): context min(4, 1) vs min(1, 4); tie -> 0.
  np.testing.assert_array_equal(squad_data.max_context_windows([(0, 6), (3, 6)], 9),
                                [0, 0, 0, 0, 0, 1, 1, 1, 1])


def test_char_span_to_tokens():
  # Pieces '▁ab' [0,2), '▁cd' [2,5) (with its leading space), 'e' [5,6).
  starts, ends = [0, 2, 5], [2, 5, 6]
  assert squad_data.char_span_to_tokens(starts, ends, 3, 6) == (1, 2)
  assert squad_data.char_span_to_tokens(starts, ends, 0, 1) == (0, 0)
  assert squad_data.char_span_to_tokens(starts, ends, 6, 7) is None


@pytest.mark.parametrize('tokenizer_kind', ['sentencepiece', 'wordpiece'])
def test_answer_spans_survive_windowing(tokenizer_kind, sentencepiece_tokenizer):
  tokenizer = (sentencepiece_tokenizer if tokenizer_kind == 'sentencepiece'
               else _wordpiece_tokenizer())
  # Answers of one to three words (some with a '.' inside) at many places, so that some
  # start or end right at a window's edge; the first and last words included.
  examples = [_long_example(f'q{i}', i, num_answer_words=1 + i % 3) for i in range(1, 238, 4)]
  examples.append(_long_example('last', 239))
  max_seq_length, doc_stride, max_query_length = 64, 20, 10
  features = squad_data.create_features(tokenizer, examples, max_seq_length, doc_stride,
                                        max_query_length)
  for example_index, example in enumerate(examples):
    rows = np.flatnonzero(features.example_index == example_index)
    context_ids = tokenizer.encode_with_offsets(example.context)[0]
    assert len(rows) > 3, 'the context must span several windows'
    np.testing.assert_array_equal(features.window_index[rows], np.arange(len(rows)))
    # Each context token is "max context" in exactly one window.
    assert features.token_is_max_context[rows].sum() == len(context_ids)

    answered = [r for r in rows if features.start_positions[r] != 0]
    assert answered, f'{example.qid}: no window holds the answer'
    for r in rows:
      ids = features.input_ids[r]
      query = tokenizer.encode(example.question)[:max_query_length]
      offset = len(query) + 2
      assert ids[0] == tokenizer.cls_id and list(ids[1:offset - 1]) == query
      assert ids[offset - 1] == tokenizer.sep_id
      length = int(features.attention_mask[r].sum())
      assert ids[length - 1] == tokenizer.sep_id
      assert list(features.token_type_ids[r, :length]) == [0] * offset + [1] * (length - offset)
      assert (features.token_char_start[r, :offset] == -1).all()
      assert (features.token_char_start[r, length - 1:] == -1).all()
      assert (features.token_char_start[r, offset:length - 1] >= 0).all()
      start, end = features.start_positions[r], features.end_positions[r]
      assert features.window_is_impossible[r] == int(start == 0)
      if start:
        span = example.context[features.token_char_start[r, start]:
                               features.token_char_end[r, end]]
        assert span.strip() == example.answer_texts[0]
        assert example.context[features.token_char_start[r, start]:].lstrip().startswith(
            example.answer_texts[0])
    # Windows without the answer are exactly those that do not contain all of its tokens.
    _, char_starts, char_ends = tokenizer.encode_with_offsets(example.context)
    answer_start = example.answer_starts[0]
    answer_end = answer_start + len(example.answer_texts[0])
    answer_tokens = [i for i, (s, e) in enumerate(zip(char_starts, char_ends))
                     if s < answer_end and e > answer_start]
    windows = squad_data.doc_windows(len(context_ids), max_seq_length - len(query) - 3,
                                     doc_stride)
    expected = [w for w, (s, n) in enumerate(windows)
                if s <= answer_tokens[0] and answer_tokens[-1] < s + n]
    assert [features.window_index[r] for r in answered] == expected


def test_unanswerable_and_out_of_window_answers_point_at_cls():
  tokenizer = _wordpiece_tokenizer()
  example = _long_example('q', 100)
  impossible = squad_data.SquadExample('nope', 't', example.question, example.context, (), (),
                                       is_impossible=True)
  features = squad_data.create_features(tokenizer, [example, impossible], 48, 16, 8)
  rows = features.example_index == 1
  assert (features.start_positions[rows] == 0).all()
  assert (features.end_positions[rows] == 0).all()
  assert (features.window_is_impossible[rows] == 1).all()
  answered = features.start_positions[features.example_index == 0] != 0
  assert 0 < answered.sum() < len(answered)


def test_question_is_truncated_and_bad_settings_rejected():
  tokenizer = _wordpiece_tokenizer()
  example = squad_data.SquadExample('q', 't', 'alpha ' * 50, 'bravo charlie.', ('bravo',), (0,))
  features = squad_data.create_features(tokenizer, [example], 32, 8, max_query_length=5)
  query = tokenizer.encode('alpha ' * 50)
  assert len(query) == 100
  assert list(features.input_ids[0, :7]) == [101] + query[:5] + [102]
  assert features.start_positions[0] == 7 and features.end_positions[0] == 7
  with pytest.raises(ValueError, match='no room for context'):
    squad_data.create_features(tokenizer, [example], 32, 8, max_query_length=29)
  with pytest.raises(ValueError, match='character offsets'):
    squad_data.create_features(object(), [example], 32, 8, 5)
  broken = squad_data.SquadExample('bad', 't', 'q', 'short', ('answer',), (3,))
  with pytest.raises(ValueError, match="'bad'.*outside"):
    squad_data.create_features(tokenizer, [broken], 32, 8, 5)


def _squad_json(version):
  qas = [{'id': 'q1', 'question': 'Who?', 'answers': [
      {'text': 'Ann', 'answer_start': 0}, {'text': 'Ann Lee', 'answer_start': 0}]}]
  if version == 'v2.0':
    qas[0]['is_impossible'] = False
    qas.append({'id': 'q2', 'question': 'Why?', 'answers': [], 'is_impossible': True,
                'plausible_answers': [{'text': 'Lee', 'answer_start': 4}]})
  return {'version': version, 'data': [{'title': 'Doc', 'paragraphs': [
      {'context': 'Ann Lee wrote it.', 'qas': qas}]}]}


@pytest.mark.parametrize('version', ['1.1', 'v2.0'])
def test_json_reader(tmp_path, version):
  path = tmp_path / 'dev.json'
  path.write_text(json.dumps(_squad_json(version)))
  examples = squad_data.read_examples('json', path=str(path))
  assert examples[0] == squad_data.SquadExample(
      'q1', 'Doc', 'Who?', 'Ann Lee wrote it.', ('Ann', 'Ann Lee'), (0, 0), False, ())
  if version == 'v2.0':
    assert examples[1] == squad_data.SquadExample(
        'q2', 'Doc', 'Why?', 'Ann Lee wrote it.', (), (), True, ('Lee',))
  else:
    assert len(examples) == 1
  with pytest.raises(ValueError, match='needs path'):
    squad_data.read_examples('json')


@pytest.mark.parametrize('version', ['v1.1', 'v2.0'])
def test_tfds_reader_on_mock_data(version):
  with tfds.testing.mock_data(num_examples=4):
    examples = list(squad_data.read_tfds_examples(version, 'validation'))
  assert len(examples) == 4
  for example in examples:
    # (mock_data draws each sequence's length independently, so texts and starts can differ
    # in number here; the exact mapping is checked in the next test.)
    assert isinstance(example.context, str) and isinstance(example.qid, str)
    assert all(isinstance(t, str) for t in example.answer_texts)
    assert all(isinstance(s, int) for s in example.answer_starts)
    if version == 'v1.1':
      assert not example.is_impossible and example.plausible_answer_texts == ()


def test_tfds_reader_maps_v2_features_exactly():
  def fake_as_dataset(builder, split, **kwargs):
    del builder, split, kwargs
    return tf.data.Dataset.from_tensors({
        'id': b'q2', 'title': b'Doc', 'context': b'Ann Lee wrote it.', 'question': b'Why?',
        'answers': {'text': tf.zeros([0], tf.string), 'answer_start': tf.zeros([0], tf.int32)},
        'is_impossible': True,
        'plausible_answers': {'text': [b'Lee'], 'answer_start': [4]}})

  with tfds.testing.mock_data(as_dataset_fn=fake_as_dataset):
    examples = squad_data.read_examples('tfds', version='v2.0', split='validation')
  assert examples == [squad_data.SquadExample(
      'q2', 'Doc', 'Why?', 'Ann Lee wrote it.', (), (), True, ('Lee',))]
  with pytest.raises(ValueError, match='Unknown SQuAD version'):
    list(squad_data.read_tfds_examples('v3', 'train'))

"""SQuAD v1.1 / v2.0: readers (official JSON or TFDS) and windowed features, the standard recipe.

Data flow: `read_examples` yields `SquadExample`s from a JSON file (local or gs://) or TFDS
`squad/v1.1` / `squad/v2.0`. `create_features` tokenises each question (cut to
`max_query_length` tokens) and context, slides windows of `max_seq_length` tokens over the
context with `doc_stride`, and lays each out as `[CLS] question [SEP] context-window [SEP]`. The
answer's character span is mapped to tokens through the tokenizer's character offsets, so any
tokenizer with `encode_with_offsets` (SentencePiece or WordPiece) works. A window that does not
hold the whole answer, and every window of an unanswerable question, is labelled start = end = 0
(the `[CLS]` position); `is_impossible` is the question's own label, the same in every window
(what the original's answerability classifier is trained on). `SquadFeatures` keeps, per
window, what post-processing needs to turn token logits back into text: the example it came
from, each token's character span in the context, and whether the window is the one giving
that token the most context.
"""

import dataclasses
import json
from typing import Iterator, Optional, Sequence

from absl import logging
import numpy as np
import tensorflow as tf

from electra_jax.errors import UserError


@dataclasses.dataclass(frozen=True)
class SquadExample:
  qid: str
  title: str
  question: str
  context: str
  answer_texts: tuple[str, ...]  # all gold answers; () for unanswerable questions
  answer_starts: tuple[int, ...]  # their character offsets into `context`
  is_impossible: bool = False  # v2.0 only
  plausible_answer_texts: tuple[str, ...] = ()  # v2.0: a wrong-but-plausible span, unused


# ---- Readers ---------------------------------------------------------------------------------


def read_json_examples(path: str) -> Iterator[SquadExample]:
  """Reads an official SQuAD v1.1 or v2.0 JSON file (local or gs://)."""
  with tf.io.gfile.GFile(path, 'r') as f:
    dataset = json.load(f)
  if 'data' not in dataset:
    raise UserError(f'{path} has no "data" field; is it a SQuAD dataset file?')
  for article in dataset['data']:
    for paragraph in article['paragraphs']:
      context = paragraph['context']
      for qa in paragraph['qas']:
        answers = qa.get('answers', [])
        yield SquadExample(
            qid=qa['id'], title=article.get('title', ''), question=qa['question'],
            context=context, answer_texts=tuple(a['text'] for a in answers),
            answer_starts=tuple(int(a['answer_start']) for a in answers),
            is_impossible=bool(qa.get('is_impossible', False)),
            plausible_answer_texts=tuple(a['text'] for a in qa.get('plausible_answers', [])))


def read_tfds_examples(version: str, split: str, data_dir: Optional[str] = None,
                       download: bool = True) -> Iterator[SquadExample]:
  """Reads TFDS `squad/v1.1` or `squad/v2.0` ('train' or 'validation')."""
  import tensorflow_datasets as tfds  # noqa: PLC0415  (heavy, TFDS only)

  config = {'1.1': 'v1.1', 'v1.1': 'v1.1', '2.0': 'v2.0', 'v2.0': 'v2.0'}.get(version)
  if config is None:
    raise UserError(f"Unknown SQuAD version {version!r}; use 'v1.1' or 'v2.0'.")
  dataset = tfds.load(f'squad/{config}', split=split, data_dir=data_dir or None,
                      shuffle_files=False, download=download)
  text = lambda value: value.decode('utf-8')
  for record in tfds.as_numpy(dataset):
    plausible = record.get('plausible_answers', {'text': []})['text']
    yield SquadExample(
        qid=text(record['id']), title=text(record['title']), question=text(record['question']),
        context=text(record['context']),
        answer_texts=tuple(text(t) for t in record['answers']['text']),
        answer_starts=tuple(int(s) for s in record['answers']['answer_start']),
        is_impossible=bool(record.get('is_impossible', False)),
        plausible_answer_texts=tuple(text(t) for t in plausible))


def read_examples(source: str, *, path: str = '', version: str = '', split: str = '',
                  data_dir: str = '') -> list[SquadExample]:
  """`source='json'` reads `path`; `source='tfds'` reads `version` / `split`."""
  if source == 'json':
    if not path:
      raise UserError("source='json' needs path: a SQuAD JSON file such as dev-v2.0.json.")
    return list(read_json_examples(path))
  if source == 'tfds':
    if not version or not split:
      raise UserError("source='tfds' needs version ('v1.1'/'v2.0') and split.")
    return list(read_tfds_examples(version, split, data_dir=data_dir or None))
  raise UserError(f"Unknown SQuAD source {source!r}; use 'json' or 'tfds'.")


# ---- Features --------------------------------------------------------------------------------


@dataclasses.dataclass
class SquadFeatures:
  """Windows of many examples; arrays are `[num_features, max_seq_length]` unless noted."""
  input_ids: np.ndarray  # int32
  token_type_ids: np.ndarray  # int32: 0 for [CLS] question [SEP], 1 for window [SEP]
  attention_mask: np.ndarray  # int32
  start_positions: np.ndarray  # int32 [num_features]: answer start token, 0 = [CLS]
  end_positions: np.ndarray  # int32 [num_features]: answer end token (inclusive), 0 = [CLS]
  window_is_impossible: np.ndarray  # int32 [num_features]: 1 iff labelled [CLS]
  is_impossible: np.ndarray  # int32 [num_features]: 1 iff the question has no answer (v2.0)
  example_index: np.ndarray  # int32 [num_features]: position in the examples list
  window_index: np.ndarray  # int32 [num_features]: which window of its example
  token_char_start: np.ndarray  # int32: character span in the context; -1 outside it
  token_char_end: np.ndarray  # int32: exclusive end; -1 outside the context
  token_is_max_context: np.ndarray  # bool: this window sees the token with most context

  def __len__(self) -> int:
    return len(self.input_ids)

  def model_inputs(self) -> dict[str, np.ndarray]:
    return {'input_ids': self.input_ids, 'token_type_ids': self.token_type_ids,
            'attention_mask': self.attention_mask}

  def labels(self) -> dict[str, np.ndarray]:
    return {'start_positions': self.start_positions, 'end_positions': self.end_positions,
            'window_is_impossible': self.window_is_impossible,
            'is_impossible': self.is_impossible}


def doc_windows(num_tokens: int, max_tokens: int, doc_stride: int) -> list[tuple[int, int]]:
  """(start, length) of each context window: stride `doc_stride`, the last reaching the end."""
  windows, start = [], 0
  while True:
    length = min(num_tokens - start, max_tokens)
    windows.append((start, length))
    if start + length >= num_tokens:
      return windows
    start += min(length, doc_stride)


def max_context_windows(windows: Sequence[tuple[int, int]], num_tokens: int) -> np.ndarray:
  """For each context token, the window that gives it the most context: int32 `[num_tokens]`.

  Score = min(tokens left, tokens right) + 0.01 * window length, as in the reference, so that
  among equally centred windows the longer one wins, and on a tie the earlier one.
  """
  positions = np.arange(num_tokens)
  scores = np.full((len(windows), num_tokens), -np.inf)
  for index, (start, length) in enumerate(windows):
    end = start + length - 1
    inside = (positions >= start) & (positions <= end)
    score = np.minimum(positions - start, end - positions) + 0.01 * length
    scores[index] = np.where(inside, score, -np.inf)
  return np.argmax(scores, axis=0).astype(np.int32)


def char_span_to_tokens(char_starts: Sequence[int], char_ends: Sequence[int],
                        answer_start: int, answer_end: int) -> Optional[tuple[int, int]]:
  """First and last token overlapping characters [answer_start, answer_end); None if none.

  Tokens may carry leading whitespace in their span (SentencePiece's '▁'), so overlap, not
  containment, decides; a token lying wholly in whitespace next to the answer never overlaps.
  """
  overlapping = [i for i, (s, e) in enumerate(zip(char_starts, char_ends))
                 if s < answer_end and e > answer_start and e > s]
  if not overlapping:
    return None
  return overlapping[0], overlapping[-1]


def _validate(tokenizer, max_seq_length: int, doc_stride: int, max_query_length: int) -> None:
  if max_query_length < 1 or doc_stride < 1:
    raise UserError(f'max_query_length ({max_query_length}) and doc_stride ({doc_stride}) '
                    'must be positive.')
  if max_seq_length - max_query_length - 3 < 1:
    raise UserError(
        f'max_seq_length={max_seq_length} leaves no room for context after a question of '
        f'up to max_query_length={max_query_length} tokens and 3 special tokens; raise '
        'max_seq_length or lower max_query_length.')
  missing = [name for name in ('encode', 'encode_with_offsets', 'cls_id', 'sep_id', 'pad_id')
             if not hasattr(tokenizer, name)]
  if missing:
    raise UserError(f'The tokenizer lacks {missing}: SQuAD features need character offsets.')


def create_features(tokenizer, examples: Sequence[SquadExample], max_seq_length: int = 512,
                    doc_stride: int = 128, max_query_length: int = 64) -> SquadFeatures:
  """Turns examples into windowed, labelled features (see the module docstring).

  Args:
    tokenizer: has `encode(text) -> ids`, `encode_with_offsets(text) -> (ids, char_starts,
      char_ends)` and `cls_id`, `sep_id`, `pad_id`.
    examples: the questions, with their first gold answer used as the label.
    max_seq_length: window length L, special tokens included.
    doc_stride: context tokens between the starts of consecutive windows.
    max_query_length: the question is cut to this many tokens.

  Returns:
    `SquadFeatures` with one row per window.
  """
  _validate(tokenizer, max_seq_length, doc_stride, max_query_length)
  rows = {name: [] for name in (
      'input_ids', 'token_type_ids', 'attention_mask', 'start_positions', 'end_positions',
      'window_is_impossible', 'is_impossible', 'example_index', 'window_index', 'token_char_start',
      'token_char_end', 'token_is_max_context')}
  unmatched = 0
  cached_context, cached_encoding = None, None  # questions come grouped by paragraph
  for example_index, example in enumerate(examples):
    query_ids = list(tokenizer.encode(example.question))[:max_query_length]
    if example.context != cached_context:
      cached_context = example.context
      cached_encoding = tokenizer.encode_with_offsets(example.context)
    context_ids, char_starts, char_ends = (list(part) for part in cached_encoding)

    answer_tokens = None
    if not example.is_impossible and example.answer_texts:
      answer_start = example.answer_starts[0]
      answer_end = answer_start + len(example.answer_texts[0])
      if answer_start < 0 or answer_end > len(example.context):
        raise UserError(
            f'Question {example.qid!r}: answer span [{answer_start}, {answer_end}) lies '
            f'outside its {len(example.context)}-character context; fix answer_start.')
      answer_tokens = char_span_to_tokens(char_starts, char_ends, answer_start, answer_end)
      unmatched += answer_tokens is None

    offset = len(query_ids) + 2  # the context starts after [CLS] question [SEP]
    max_context_tokens = max_seq_length - len(query_ids) - 3
    windows = doc_windows(len(context_ids), max_context_tokens, doc_stride)
    best_window = max_context_windows(windows, len(context_ids))
    for window_index, (start, length) in enumerate(windows):
      ids = [tokenizer.cls_id, *query_ids, tokenizer.sep_id,
             *context_ids[start:start + length], tokenizer.sep_id]
      types = [0] * offset + [1] * (length + 1)
      char_start = np.full(max_seq_length, -1, np.int32)
      char_end = np.full(max_seq_length, -1, np.int32)
      char_start[offset:offset + length] = char_starts[start:start + length]
      char_end[offset:offset + length] = char_ends[start:start + length]
      max_context = np.zeros(max_seq_length, bool)
      max_context[offset:offset + length] = best_window[start:start + length] == window_index

      start_position = end_position = 0
      if answer_tokens is not None and (
          start <= answer_tokens[0] and answer_tokens[1] < start + length):
        start_position = answer_tokens[0] - start + offset
        end_position = answer_tokens[1] - start + offset

      padding = max_seq_length - len(ids)
      rows['input_ids'].append(ids + [tokenizer.pad_id] * padding)
      rows['token_type_ids'].append(types + [0] * padding)
      rows['attention_mask'].append([1] * len(ids) + [0] * padding)
      rows['start_positions'].append(start_position)
      rows['end_positions'].append(end_position)
      rows['window_is_impossible'].append(int(start_position == 0))
      rows['is_impossible'].append(int(example.is_impossible))
      rows['example_index'].append(example_index)
      rows['window_index'].append(window_index)
      rows['token_char_start'].append(char_start)
      rows['token_char_end'].append(char_end)
      rows['token_is_max_context'].append(max_context)

  if unmatched:
    # Only possible if the tokenizer drops the answer's characters (e.g. a whitespace answer).
    logging.warning('%d answer span(s) overlap no context token; labelled as [CLS].',
                    unmatched)

  def stack(name, dtype, width=None):
    if rows[name]:
      return np.asarray(rows[name], dtype)
    return np.zeros((0,) if width is None else (0, width), dtype)

  L = max_seq_length  # noqa: N806
  return SquadFeatures(
      input_ids=stack('input_ids', np.int32, L),
      token_type_ids=stack('token_type_ids', np.int32, L),
      attention_mask=stack('attention_mask', np.int32, L),
      start_positions=stack('start_positions', np.int32),
      end_positions=stack('end_positions', np.int32),
      window_is_impossible=stack('window_is_impossible', np.int32),
      is_impossible=stack('is_impossible', np.int32),
      example_index=stack('example_index', np.int32),
      window_index=stack('window_index', np.int32),
      token_char_start=stack('token_char_start', np.int32, L),
      token_char_end=stack('token_char_end', np.int32, L),
      token_is_max_context=stack('token_is_max_context', bool, L))

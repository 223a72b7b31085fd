"""Packing: a stream of text lines into fixed-length `[CLS] A [SEP] B [SEP]` examples, in tf.data.

This is the original ELECTRA example builder (`build_pretraining_dataset.py`), written as tf.data
transformations so that the on-the-fly path stays inside the TF runtime (fast, and saveable by a
`tf.train.Checkpoint` of the iterator) and the `prepare` step packs with the very same code:

1. Lines are cleaned (bad UTF-8 replaced, stripped, overlong lines cut) and tokenised in batches.
2. A `scan` accumulates the sentences of a document until their token count reaches the target
   length, or the document ends (blank line); it then emits the buffered sentences. After each
   example the next target is `max_seq_length`, or with probability `short_seq_prob` a length drawn
   uniformly from [5, max_seq_length].
3. A parallel `map` splits the sentences into segments A and B: with probability
   `single_segment_prob` everything goes to A; otherwise a sentence joins A while A is empty or
   stays under `(target - 3) // 2`, or, while B is still empty, with probability 1/2 even if it
   overshoots; the rest go to B. A is cut to `max_seq_length - 2`, B to what remains.

Randomness is stateless, keyed on a per-shard seed and the example's index within the shard, so the
packing of a shard never depends on how shards are spread over hosts or on thread timing.
Documents can be held out by a fixed hash of (shard, document index): see `DocumentFilter`.
"""

import dataclasses

import tensorflow as tf

from electra_jax.data import corpus
from electra_jax.data import tokenizers

MIN_SHORT_TARGET = 5  # the original's lower bound for random short target lengths
_TOKENIZE_BATCH = 256  # lines tokenised per op call: amortises per-op overhead
_SELECT_BATCH = 4096  # lines per step when selecting held-out documents
# Salts separate the random streams drawn from one seed.
_SALT_TARGET, _SALT_SPLIT = 101, 102
# Held-out documents: FarmHash fingerprint of 'electra-holdout:<shard>:<document>' (stable across
# TensorFlow versions) into 2^30 buckets; the lowest eval_fraction of them is held out.
_HOLDOUT_KEY, _HOLDOUT_BUCKETS = 'electra-holdout', 1 << 30


@dataclasses.dataclass(frozen=True)
class PackingOptions:
  """How examples are built (see the module docstring)."""
  max_seq_length: int
  short_seq_prob: float = 0.05
  single_segment_prob: float = 0.1


@dataclasses.dataclass(frozen=True)
class DocumentFilter:
  """Which documents of a shard to keep: a fixed `eval_fraction` of them is held out for eval.

  Document d of shard s is held out iff U(s, d) < eval_fraction, with U a fixed hash of (s, d)
  scaled to [0, 1) that depends on neither the seed nor the host layout, so the eval set is always
  the same text.

  Attributes:
    keep: 'all', 'train' (documents not held out) or 'eval' (held-out documents).
    eval_fraction: share of documents held out.
  """
  keep: str = 'all'
  eval_fraction: float = 0.0

  def __post_init__(self):
    if self.keep not in ('all', 'train', 'eval'):
      raise ValueError(f'DocumentFilter.keep must be all/train/eval, not {self.keep!r}')

  def keeps(self, shard_index: tf.Tensor, document_index: tf.Tensor) -> tf.Tensor:
    """Bool, shaped like `document_index`: is document `document_index` of shard `shard_index` in
    this split? Vectorised (a fingerprint, not a per-document random op), so that whole batches of
    lines are selected at once."""
    if self.keep == 'all':
      return tf.ones_like(document_index, tf.bool)
    key = tf.strings.join([_HOLDOUT_KEY, tf.strings.as_string(tf.cast(shard_index, tf.int64)),
                           tf.strings.as_string(tf.cast(document_index, tf.int64))], ':')
    draw = tf.cast(tf.strings.to_hash_bucket_fast(key, _HOLDOUT_BUCKETS), tf.float64)
    held_out = draw < self.eval_fraction * _HOLDOUT_BUCKETS
    return held_out if self.keep == 'eval' else tf.logical_not(held_out)


def fold_in(seed: tf.Tensor, data) -> tf.Tensor:
  """A new `[2]` int64 stateless seed from `seed` and an integer."""
  return tf.random.experimental.stateless_fold_in(tf.cast(seed, tf.int64),
                                                  tf.cast(data, tf.int64))


def _clean(lines: tf.Tensor) -> tf.Tensor:
  """Lines as text: undecodable bytes become U+FFFD, surrounding whitespace goes."""
  return tf.strings.strip(tf.strings.unicode_transcode(lines, 'UTF-8', 'UTF-8', errors='replace',
                                                       replacement_char=0xFFFD))


def _is_blank(lines: tf.Tensor) -> tf.Tensor:
  """Document boundaries: lines that are empty once cleaned."""
  return tf.equal(tf.strings.length(_clean(lines)), 0)


def select_documents(lines: tf.data.Dataset, shard_index: tf.Tensor,
                     document_filter: DocumentFilter) -> tf.data.Dataset:
  """The raw lines of one shard's documents that `document_filter` keeps (boundaries included).

  Document d is the text after the d-th blank line of the shard, as `accumulate_sentences`
  counts them, so the same documents are selected as when filtering tokenised lines. Works on
  batches of `_SELECT_BATCH` lines: only the running document count is carried between them.
  """
  def step(first_document, batch):
    blank = tf.cast(_is_blank(batch), tf.int64)
    document_index = first_document + tf.cumsum(blank, exclusive=True)
    keep = document_filter.keeps(shard_index, document_index)
    return first_document + tf.reduce_sum(blank), tf.boolean_mask(batch, keep)

  return (lines.batch(_SELECT_BATCH)
          .scan(tf.constant(0, tf.int64), step)
          .unbatch())


def tokenize_lines(lines: tf.data.Dataset, tokenizer: tokenizers.Tokenizer,
                   max_seq_length: int) -> tf.data.Dataset:
  """Raw lines -> `(tokens [n] int32, is_boundary bool)`; a blank line is a document boundary.

  Undecodable bytes become U+FFFD, and lines are cut to `MAX_LINE_CHARS_PER_TOKEN * max_seq_length`
  characters: a longer line would overfill any example anyway.
  """
  max_chars = corpus.MAX_LINE_CHARS_PER_TOKEN * max_seq_length

  def tokenize(raw_lines):
    text = _clean(raw_lines)
    is_boundary = tf.equal(tf.strings.length(text), 0)
    text = tf.strings.substr(text, 0, max_chars, unit='UTF8_CHAR')
    return tokenizer.tf_tokenize(text), is_boundary

  return (lines.batch(_TOKENIZE_BATCH)
          .map(tokenize, num_parallel_calls=tf.data.AUTOTUNE, deterministic=True)
          .unbatch())


def _next_target_length(seed: tf.Tensor, example_index: tf.Tensor,
                        options: PackingOptions) -> tf.Tensor:
  """Target token count of the example after `example_index`: usually max, sometimes short."""
  draws = tf.random.stateless_uniform([2], seed=fold_in(fold_in(seed, _SALT_TARGET), example_index))
  span = options.max_seq_length - MIN_SHORT_TARGET + 1
  short_length = MIN_SHORT_TARGET + tf.minimum(
      tf.cast(draws[1] * span, tf.int32), span - 1)
  return tf.where(draws[0] < options.short_seq_prob, short_length, options.max_seq_length)


def accumulate_sentences(tokenized: tf.data.Dataset, seed: tf.Tensor, shard_index: tf.Tensor,
                         options: PackingOptions,
                         document_filter: DocumentFilter) -> tf.data.Dataset:
  """Tokenised lines -> buffered sentence groups, one per example to build.

  Args:
    tokenized: `(tokens [n], is_boundary)` elements of one shard, in order, ending with a boundary.
    seed: `[2]` int64 seed of this shard (and epoch).
    shard_index: the shard's index in the global shard list (keys the held-out documents).
    options: packing options.
    document_filter: which documents to use.

  Returns:
    Elements `{'tokens': [n] int32, 'sentence_lengths': [s] int32, 'target_length': int32,
    'example_index': int64}`: the concatenated tokens of the example's sentences.
  """
  initial_state = (
      tf.zeros([0], tf.int32),  # tokens buffered for the current example
      tf.zeros([0], tf.int32),  # length of each buffered sentence
      tf.constant(options.max_seq_length, tf.int32),  # target length of the current example
      tf.constant(0, tf.int64),  # examples emitted so far
      tf.constant(0, tf.int64),  # index of the current document
  )

  def step(state, line):
    tokens_buffer, sentence_lengths, target_length, num_examples, document_index = state
    tokens, is_boundary = line
    add = tf.logical_and(tf.logical_not(is_boundary),
                         document_filter.keeps(shard_index, document_index))
    num_added = tf.where(add, tf.size(tokens), 0)
    tokens_buffer = tf.concat([tokens_buffer, tokens[:num_added]], 0)
    sentence_lengths = tf.concat(
        [sentence_lengths, tf.reshape(num_added, [1])[:tf.cast(add, tf.int32)]], 0)
    buffered = tf.size(tokens_buffer)
    emit = tf.logical_or(tf.logical_and(is_boundary, buffered > 0),
                         tf.logical_and(add, buffered >= target_length))
    output = {
        'emit': emit,
        'tokens': tokens_buffer,
        'sentence_lengths': sentence_lengths,
        'target_length': target_length,
        'example_index': num_examples,
    }
    keep = tf.where(emit, 0, buffered)
    keep_sentences = tf.where(emit, 0, tf.size(sentence_lengths))
    new_state = (
        tokens_buffer[:keep],
        sentence_lengths[:keep_sentences],
        tf.where(emit, _next_target_length(seed, num_examples, options), target_length),
        num_examples + tf.cast(emit, tf.int64),
        document_index + tf.cast(is_boundary, tf.int64),
    )
    return new_state, output

  def drop_emit_flag(element):
    return {k: v for k, v in element.items() if k != 'emit'}

  return (tokenized.scan(initial_state, step)
          .filter(lambda element: element['emit'])
          .map(drop_emit_flag))


def build_example(group: dict[str, tf.Tensor], seed: tf.Tensor, options: PackingOptions,
                  cls_id: int, sep_id: int, pad_id: int) -> dict[str, tf.Tensor]:
  """One sentence group -> `{'input_ids': [max_seq_length], 'token_type_ids': [max_seq_length]}`.

  Layout `[CLS] A [SEP] B [SEP]` (or `[CLS] A [SEP]` when B is empty), padded with `pad_id`; token
  type 0 for `[CLS] A [SEP]`, 1 for `B [SEP]`, 0 for padding.
  """
  max_length = options.max_seq_length
  tokens, sentence_lengths = group['tokens'], group['sentence_lengths']
  num_sentences = tf.size(sentence_lengths)
  draws = tf.random.stateless_uniform(
      [1 + num_sentences], seed=fold_in(fold_in(seed, _SALT_SPLIT), group['example_index']))
  first_target = tf.where(draws[0] < options.single_segment_prob, 100_000,
                          (group['target_length'] - 3) // 2)

  def assign(carry, sentence):
    (a_length, b_length), _ = carry
    sentence_length, coin = sentence
    to_a = ((a_length == 0)
            | (a_length + sentence_length < first_target)
            | ((b_length == 0) & (a_length < first_target) & (coin < 0.5)))
    to_a_int = tf.cast(to_a, tf.int32)
    return (a_length + to_a_int * sentence_length,
            b_length + (1 - to_a_int) * sentence_length), to_a

  _, sentence_to_a = tf.scan(assign, (sentence_lengths, draws[1:]),
                             initializer=((tf.constant(0), tf.constant(0)), tf.constant(True)))
  token_to_a = tf.repeat(sentence_to_a, sentence_lengths)
  segment_a = tf.boolean_mask(tokens, token_to_a)[:max_length - 2]
  segment_b = tf.boolean_mask(tokens, tf.logical_not(token_to_a))
  segment_b = segment_b[:tf.maximum(0, max_length - tf.size(segment_a) - 3)]
  has_b = tf.cast(tf.size(segment_b) > 0, tf.int32)

  cls, sep = tf.constant([cls_id], tf.int32), tf.constant([sep_id], tf.int32)
  input_ids = tf.concat([cls, segment_a, sep, segment_b, sep[:has_b]], 0)
  token_type_ids = tf.concat([tf.zeros([tf.size(segment_a) + 2], tf.int32),
                              tf.ones([(tf.size(segment_b) + 1) * has_b], tf.int32)], 0)
  padding = max_length - tf.size(input_ids)
  input_ids = tf.pad(input_ids, [[0, padding]], constant_values=pad_id)
  token_type_ids = tf.pad(token_type_ids, [[0, padding]])
  return {'input_ids': tf.ensure_shape(input_ids, [max_length]),
          'token_type_ids': tf.ensure_shape(token_type_ids, [max_length])}


def pack_lines(lines: tf.data.Dataset, tokenizer: tokenizers.Tokenizer, seed: tf.Tensor,
               shard_index: tf.Tensor, options: PackingOptions,
               document_filter: DocumentFilter = DocumentFilter()) -> tf.data.Dataset:
  """The lines of one shard -> packed examples `{'input_ids', 'token_type_ids'}`, each `[length]`.

  Args:
    lines: scalar string elements, one line each (blank line = document boundary).
    tokenizer: turns text into ids; supplies [CLS]/[SEP]/[PAD].
    seed: `[2]` int64 seed for this shard's random choices (fold in the epoch to vary them).
    shard_index: global index of the shard (keys held-out documents).
    options: packing options.
    document_filter: which documents to use.
  """
  # Ending every shard with a blank line flushes its last document like any other.
  lines = lines.concatenate(tf.data.Dataset.from_tensors(tf.constant('')))
  if document_filter.keep != 'all':
    # Selected before tokenising, so an eval pass tokenises only the held-out text. The examples
    # are those the filter would give inside `accumulate_sentences`: a left-out document adds
    # nothing there, and its boundary finds an empty buffer.
    lines = select_documents(lines, shard_index, document_filter)
  groups = accumulate_sentences(tokenize_lines(lines, tokenizer, options.max_seq_length), seed,
                                shard_index, options, DocumentFilter())
  return groups.map(
      lambda group: build_example(group, seed, options, tokenizer.cls_id, tokenizer.sep_id,
                                  tokenizer.pad_id),
      num_parallel_calls=tf.data.AUTOTUNE, deterministic=True)

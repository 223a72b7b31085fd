"""SentencePiece tokenizers: loading a model and training one with the special pieces first.

Every model trained here reserves the same special ids: [PAD]=0, [UNK]=1, [CLS]=2, [SEP]=3,
[MASK]=4. [CLS]/[SEP]/[MASK] are SentencePiece *control* symbols, so a literal "[MASK]" in raw text
is never turned into the mask id.
"""

import io
import itertools
import os
import re
from typing import Iterable, Sequence

from absl import logging
import sentencepiece as spm
import tensorflow as tf

from electra_jax import files
from electra_jax.data.tokenizers import base
from electra_jax.errors import UserError


class SentencePieceTokenizer(base.Tokenizer):
  """A SentencePiece model whose first five pieces are [PAD] [UNK] [CLS] [SEP] [MASK]."""

  def __init__(self, model_path: str):
    if not tf.io.gfile.exists(model_path):
      raise UserError(f'SentencePiece model {model_path!r} does not exist. Train one with '
                      '`python -m electra_jax.tokenizer --output=PREFIX` and set '
                      '--config.tokenizer.path=PREFIX.model, or leave the path empty on the '
                      'built-in corpus.')
    with tf.io.gfile.GFile(model_path, 'rb') as f:
      self._model_proto = f.read()
    self._model_path = model_path
    self._processor = spm.SentencePieceProcessor()
    try:
      self._processor.load_from_serialized_proto(self._model_proto)
    except (RuntimeError, OSError) as e:
      raise UserError(f'{model_path!r} is not a SentencePiece model (it cannot be parsed); '
                      'expected a .model file written by `python -m electra_jax.tokenizer` (or, '
                      'for a BERT vocab.txt, --config.tokenizer.type=wordpiece).') from e
    found = [self._processor.id_to_piece(i) if i < self._processor.get_piece_size() else None
             for i in range(len(base.SPECIAL_PIECES))]
    if tuple(found) != base.SPECIAL_PIECES:
      raise UserError(
          f'SentencePiece model {model_path!r} lacks the special symbols: ids 0..4 must be '
          f'{list(base.SPECIAL_PIECES)} but are {found}. Train it with '
          '`python -m electra_jax.tokenizer` (which reserves them) or pass pad_id=0, unk_id=1, '
          'bos_id=-1, eos_id=-1 and control_symbols=[CLS],[SEP],[MASK] to the SentencePiece '
          'trainer.')
    self.vocab_size = self._processor.get_piece_size()
    self.pad_id, self.unk_id, self.cls_id, self.sep_id, self.mask_id = (
        base.PAD_ID, base.UNK_ID, base.CLS_ID, base.SEP_ID, base.MASK_ID)
    self._tf_tokenizer = None

  def encode(self, text: str) -> list[int]:
    return self._processor.encode(text, out_type=int)

  def encode_with_offsets(self, text: str) -> tuple[list[int], list[int], list[int]]:
    proto = self._processor.encode(text, out_type='proto')
    # SentencePiece reports byte offsets into the (unnormalised) UTF-8 input; map them to characters.
    char_of_byte = []
    for char_index, char in enumerate(text):
      char_of_byte.extend([char_index] * len(char.encode('utf-8')))
    char_of_byte.append(len(text))
    ids, starts, ends = [], [], []
    for piece in proto.pieces:
      ids.append(piece.id)
      starts.append(char_of_byte[piece.begin])
      ends.append(char_of_byte[piece.end])
    return ids, starts, ends

  def decode(self, ids: Sequence[int]) -> str:
    return self._processor.decode([int(i) for i in ids])

  def id_to_piece(self, token_id: int) -> str:
    return self._processor.id_to_piece(int(token_id))

  def tf_tokenize(self, strings: tf.Tensor) -> tf.RaggedTensor:
    if self._tf_tokenizer is None:
      import tensorflow_text as tf_text  # noqa: PLC0415
      # Created eagerly even when first called while tracing a tf.data function, so the one
      # resource is shared by every dataset (and thread) that uses this tokenizer.
      with tf.init_scope():
        self._tf_tokenizer = tf_text.SentencepieceTokenizer(model=self._model_proto,
                                                            out_type=tf.int32)
    return self._tf_tokenizer.tokenize(strings)

  def files(self) -> list[str]:
    return [self._model_path]

  @property
  def model_proto(self) -> bytes:
    """The serialised model (what `files()[0]` holds)."""
    return self._model_proto


_VOCAB_TOO_HIGH = re.compile(r'Vocabulary size too high \((\d+)\)\. Please set it to a value <= (\d+)')


def train_sentencepiece(texts: Iterable[str],
                        model_prefix: str,
                        vocab_size: int,
                        *,
                        model_type: str = 'unigram',
                        character_coverage: float = 0.9995,
                        max_sentences: int = 10_000_000,
                        byte_fallback: bool = False,
                        allow_smaller_vocab: bool = False,
                        num_threads: int = 0) -> str:
  """Trains a SentencePiece model with the special pieces at ids 0..4; returns `PREFIX.model`.

  Args:
    texts: training sentences, one per item (empty ones are skipped).
    model_prefix: output prefix, local or gs://; the model is written to `PREFIX.model` atomically.
    vocab_size: number of pieces, specials included.
    model_type: 'unigram' or 'bpe'.
    character_coverage: share of characters covered by pieces (the rest map to [UNK] or bytes).
    max_sentences: sentences sampled for training from a larger input.
    byte_fallback: spell unknown characters as UTF-8 byte pieces instead of [UNK].
    allow_smaller_vocab: if the text cannot support `vocab_size` pieces, train the largest model it
      supports (logged) instead of raising.
    num_threads: trainer threads; 0 = all CPUs.

  Raises:
    ValueError: the text is empty, or supports fewer pieces than `vocab_size` (and
      `allow_smaller_vocab` is False).
  """
  if vocab_size <= len(base.SPECIAL_PIECES):
    raise UserError(f'vocab_size={vocab_size} leaves no room besides the 5 special pieces.')
  sentences = (t for t in texts if t and t.strip())
  first = next(sentences, None)
  if first is None:
    raise UserError('No text to train the tokenizer on: the source is empty.')
  sentences = itertools.chain([first], sentences)
  if allow_smaller_vocab:
    sentences = list(sentences)  # a retry needs the text twice; only used for small corpora

  def train(size: int) -> bytes:
    model = io.BytesIO()
    spm.SentencePieceTrainer.train(
        sentence_iterator=iter(sentences), model_writer=model, vocab_size=size,
        model_type=model_type, character_coverage=character_coverage,
        input_sentence_size=max_sentences, shuffle_input_sentence=True,
        pad_id=base.PAD_ID, pad_piece=base.PAD_PIECE, unk_id=base.UNK_ID,
        unk_piece=base.UNK_PIECE, bos_id=-1, eos_id=-1,
        control_symbols=[base.CLS_PIECE, base.SEP_PIECE, base.MASK_PIECE],
        byte_fallback=byte_fallback,
        num_threads=num_threads or os.cpu_count() or 1, minloglevel=2)
    return model.getvalue()

  try:
    proto = train(vocab_size)
  except RuntimeError as e:
    too_high = _VOCAB_TOO_HIGH.search(str(e))
    if not too_high:
      raise
    supported = int(too_high.group(2))
    if not allow_smaller_vocab:
      raise UserError(f'vocab_size={vocab_size} is too large for this text: it supports at '
                      f'most {supported} pieces. Lower --vocab_size or give more text.') from e
    logging.warning('The text supports only %d pieces, not %d: training a %d-piece model.',
                    supported, vocab_size, supported)
    proto = train(supported)
  model_path = f'{model_prefix}.model'
  if os.path.dirname(model_path):
    tf.io.gfile.makedirs(os.path.dirname(model_path))
  files.write_atomically(model_path, proto)
  return model_path

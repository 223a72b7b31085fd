"""BERT WordPiece tokenization (a `vocab.txt`), inside tf.data, with `tensorflow_text`.

The ids match Hugging Face's `BertTokenizer` (and Google's original BERT/ELECTRA tokenization):

  1. clean: drop control/format characters (Unicode category C, except tab, newline and carriage
     return), NUL and U+FFFD; map other whitespace (Zs, U+2028, U+2029) to a space;
  2. `lower_case`: Unicode lower-casing; `strip_accents`: NFD, then drop combining marks (Mn);
  3. split on whitespace, around punctuation and around each CJK ideograph (tensorflow_text's
     BERT `BasicTokenizer`);
  4. a word longer than 100 characters is one [UNK]; any other word is split greedily into the
     longest vocabulary pieces (`##` marks a continuation), [UNK] if that fails
     (tensorflow_text's `WordpieceTokenizer`).

tensorflow_text does steps 3-4; step 1 differs in it (it turns control characters into spaces,
where BERT deletes them) and its `lower_case` always strips accents and applies NFKC, and its word
limit counts bytes, not characters, so those steps are written here with TF string ops.

The special ids are read from the vocab: [PAD], [UNK], [CLS], [SEP] and [MASK] must be present
(BERT's uncased vocab has them at 0, 100, 101, 102, 103). A literal "[MASK]" in raw text is split
like any other text (as in the original), never turned into the mask id.
"""

from __future__ import annotations

from typing import Sequence

import numpy as np
import tensorflow as tf

from electra_jax.data.tokenizers import base
from electra_jax.errors import UserError

MAX_CHARS_PER_WORD = 100  # BERT's limit: a longer word is a single [UNK]
CONTINUATION_PREFIX = '##'
# Category C (Cc, Cf, Co, Cs) except \t \n \r, plus U+FFFD: deleted, as BERT's clean_text does.
_DELETED_CHARS = r'[^\PC\t\n\r]|\x{fffd}'
# Whitespace that survives the deletion above and RE2's `\s` (ASCII only) does not cover.
_UNICODE_SPACES = r'[\p{Zs}\x{2028}\x{2029}]'


def read_vocab(path: str) -> list[str]:
  """The pieces of a BERT `vocab.txt`, one per line, in id order."""
  if not tf.io.gfile.exists(path):
    raise UserError(f"tokenizer.type='wordpiece' needs a BERT vocab.txt, but {path!r} does "
                    'not exist; set --config.tokenizer.path to it.')
  with tf.io.gfile.GFile(path, 'rb') as f:
    data = f.read()
  try:
    text = data.decode('utf-8')
  except UnicodeDecodeError as e:
    raise UserError(f"{path!r} is not a UTF-8 text vocab (tokenizer.type='wordpiece' needs a "
                    'BERT vocab.txt with one piece per line; a SentencePiece .model needs '
                    "tokenizer.type='sentencepiece').") from e
  lines = text.split('\n')
  if lines and lines[-1] == '':
    lines.pop()  # the newline after the last piece
  return [line.rstrip('\r') for line in lines]


class WordPieceTokenizer(base.Tokenizer):
  """A BERT `vocab.txt` tokenizer satisfying `base.Tokenizer`.

  Args:
    vocab_path: the vocab file (local or gs://), one piece per line, id = line number.
    lower_case: lower-case the text (BERT uncased).
    strip_accents: remove accents (NFD, then drop combining marks); uncased BERT does both.
  """

  def __init__(self, vocab_path: str, *, lower_case: bool = True, strip_accents: bool = True):
    self._vocab_path = vocab_path
    self._pieces = read_vocab(vocab_path)
    # Like Hugging Face's loader, a piece listed twice keeps its last id.
    self._ids = {piece: index for index, piece in enumerate(self._pieces)}
    missing = [p for p in base.SPECIAL_PIECES if p not in self._ids]
    if missing:
      raise UserError(f'WordPiece vocab {vocab_path!r} lacks the special tokens {missing}; a BERT '
                      f'vocab.txt has all of {list(base.SPECIAL_PIECES)} (check that '
                      "tokenizer.type='wordpiece' is right for this file).")
    self.lower_case, self.strip_accents = bool(lower_case), bool(strip_accents)
    self.vocab_size = len(self._pieces)
    self.pad_id, self.unk_id, self.cls_id, self.sep_id, self.mask_id = (
        self._ids[p] for p in base.SPECIAL_PIECES)
    self._tf_ops = None

  # ---- TF ops (usable inside tf.data) --------------------------------------------------------

  def _ops(self):
    """(basic tokenizer, wordpiece tokenizer), created once, eagerly, and shared by all datasets."""
    if self._tf_ops is None:
      import tensorflow_text as tf_text  # noqa: PLC0415
      from tensorflow_text.python.ops import bert_tokenizer  # noqa: PLC0415
      with tf.init_scope():
        pieces = list(self._ids)
        table = tf.lookup.StaticVocabularyTable(
            tf.lookup.KeyValueTensorInitializer(
                tf.constant(pieces), tf.constant([self._ids[p] for p in pieces], tf.int64)),
            num_oov_buckets=1)
        basic = bert_tokenizer.BasicTokenizer(lower_case=False)  # normalisation is done here
        wordpiece = tf_text.WordpieceTokenizer(
            table, suffix_indicator=CONTINUATION_PREFIX,
            # Long words are handled by character count in `_words`; this only bounds the work.
            max_bytes_per_word=4 * MAX_CHARS_PER_WORD, token_out_type=tf.int64,
            unknown_token=base.UNK_PIECE)
        self._tf_ops = (basic, wordpiece)
    return self._tf_ops

  def normalize(self, text: tf.Tensor) -> tf.Tensor:
    """Steps 1-2 of the module docstring on a string tensor of any shape (character-wise)."""
    import tensorflow_text as tf_text  # noqa: PLC0415
    text = tf.strings.regex_replace(text, _DELETED_CHARS, '')
    text = tf.strings.regex_replace(text, _UNICODE_SPACES, ' ')
    if self.lower_case:
      text = tf.strings.lower(text, encoding='utf-8')
    if self.strip_accents:
      text = tf.strings.regex_replace(tf_text.normalize_utf8(text, 'NFD'), r'\p{Mn}', '')
    return text

  def _words(self, normalized: tf.Tensor):
    """Basic tokenisation: `[n]` -> `[n, (words)]` strings and their [start, end) byte offsets.

    A word over `MAX_CHARS_PER_WORD` characters is replaced by "[UNK]", a vocabulary piece, so the
    word piece step turns it into exactly one [UNK] (its offsets still span the whole word).
    """
    basic, _ = self._ops()
    words, starts, ends = basic.tokenize_with_offsets(normalized)
    too_long = tf.strings.length(words.flat_values, unit='UTF8_CHAR') > MAX_CHARS_PER_WORD
    flat = tf.where(too_long, base.UNK_PIECE, words.flat_values)
    return words.with_flat_values(flat), starts, ends

  def tf_tokenize(self, strings: tf.Tensor) -> tf.RaggedTensor:
    words, _, _ = self._words(self.normalize(strings))
    _, wordpiece = self._ops()
    ids = wordpiece.tokenize(words)  # [n, (words), (pieces)]
    return tf.cast(ids.merge_dims(-2, -1), tf.int32)

  # ---- Python API --------------------------------------------------------------------------

  def encode(self, text: str) -> list[int]:
    return self.tf_tokenize(tf.constant([text]))[0].numpy().tolist()

  def encode_with_offsets(self, text: str) -> tuple[list[int], list[int], list[int]]:
    if not text:
      return [], [], []
    # Normalise each character on its own (the normalisation is character-wise), so that every
    # byte of the normalised text knows the character it came from.
    chars = tf.strings.unicode_split(tf.constant(text), 'UTF-8')
    normalized_chars = self.normalize(chars).numpy()
    origin = np.repeat(np.arange(len(normalized_chars)),
                       [len(c) for c in normalized_chars])  # normalised byte -> char index
    normalized = tf.constant([b''.join(normalized_chars)])
    words, word_starts, word_ends = self._words(normalized)
    _, wordpiece = self._ops()
    ids, piece_starts, piece_ends = wordpiece.tokenize_with_offsets(words)
    out_ids, out_starts, out_ends = [], [], []
    for word_ids, starts, ends, word_start, word_end in zip(
        ids[0].numpy(), piece_starts[0].numpy(), piece_ends[0].numpy(), word_starts[0].numpy(),
        word_ends[0].numpy()):
      whole_word = len(word_ids) == 1 and word_ids[0] == self.unk_id  # unknown or over-long
      for piece_id, start, end in zip(word_ids, starts, ends):
        start, end = (word_start, word_end) if whole_word else (word_start + start,
                                                                word_start + end)
        out_ids.append(int(piece_id))
        out_starts.append(int(origin[start]))
        out_ends.append(int(origin[end - 1]) + 1)
    return out_ids, out_starts, out_ends

  def decode(self, ids: Sequence[int]) -> str:
    dropped = {self.pad_id, self.cls_id, self.sep_id, self.mask_id}
    text = ''
    for i in ids:
      i = int(i)
      if i in dropped:
        continue
      piece = self._pieces[i]
      if piece.startswith(CONTINUATION_PREFIX) and text:
        text += piece[len(CONTINUATION_PREFIX):]
      else:
        text += (' ' if text else '') + piece
    return text

  def id_to_piece(self, token_id: int) -> str:
    return self._pieces[token_id]

  def files(self) -> list[str]:
    return [self._vocab_path]

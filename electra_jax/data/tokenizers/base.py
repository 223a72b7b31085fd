"""The `Tokenizer` interface and the special pieces every tokenizer here carries.

Every SentencePiece model trained here has them at the same ids: [PAD]=0, [UNK]=1, [CLS]=2,
[SEP]=3, [MASK]=4 (the `*_ID` constants). A BERT vocab.txt has the same pieces at other ids, so
code that takes any tokenizer reads its ids from it (`tokenizer.pad_id`, ...).
"""

import abc
from typing import Sequence

import tensorflow as tf

PAD_PIECE, UNK_PIECE, CLS_PIECE, SEP_PIECE, MASK_PIECE = '[PAD]', '[UNK]', '[CLS]', '[SEP]', '[MASK]'
SPECIAL_PIECES = (PAD_PIECE, UNK_PIECE, CLS_PIECE, SEP_PIECE, MASK_PIECE)  # ids 0..4, in order
PAD_ID, UNK_ID, CLS_ID, SEP_ID, MASK_ID = range(5)


class Tokenizer(abc.ABC):
  """What the data pipeline, fine-tuning and export need from a tokenizer.

  A WordPiece implementation satisfies the same interface (its special ids differ: BERT's
  vocab.txt has [PAD]=0, [UNK]=100, [CLS]=101, ...), so code must read the ids from here.
  """
  vocab_size: int
  pad_id: int
  unk_id: int
  cls_id: int
  sep_id: int
  mask_id: int

  @abc.abstractmethod
  def encode(self, text: str) -> list[int]:
    """Token ids of `text`, without [CLS]/[SEP]."""

  @abc.abstractmethod
  def encode_with_offsets(self, text: str) -> tuple[list[int], list[int], list[int]]:
    """Token ids and, per token, the [start, end) character offsets into `text`."""

  @abc.abstractmethod
  def decode(self, ids: Sequence[int]) -> str:
    """Text of `ids`; special tokens are dropped."""

  @abc.abstractmethod
  def id_to_piece(self, token_id: int) -> str:
    """The vocabulary entry of one id, as stored ('▁the', '##ing', '[CLS]'): for showing tokens."""

  @abc.abstractmethod
  def tf_tokenize(self, strings: tf.Tensor) -> tf.RaggedTensor:
    """Tokenises a `[n]` string tensor inside tf.data: a `[n, (tokens)]` int32 RaggedTensor."""

  @abc.abstractmethod
  def files(self) -> list[str]:
    """The files that make up this tokenizer (to copy into a workdir, checkpoint or export)."""

  def special_ids(self) -> tuple[int, ...]:
    """Ids that are never masked or predicted: [PAD], [CLS], [SEP], [MASK]."""
    return (self.pad_id, self.cls_id, self.sep_id, self.mask_id)

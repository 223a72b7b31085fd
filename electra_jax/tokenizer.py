"""Tokenizers: the `Tokenizer` interface, SentencePiece models, and the tokenizer-training CLI.

Every model trained here reserves the same special ids: [PAD]=0, [UNK]=1, [CLS]=2, [SEP]=3,
[MASK]=4. [CLS]/[SEP]/[MASK] are SentencePiece *control* symbols, so a literal "[MASK]" in raw text
is never turned into the mask id.

Train a model from any text source:

  python -m electra_jax.tokenizer --source=files --files='/data/wiki/*.txt.gz' \
      --vocab_size=30522 --output=/data/wiki_sp   # writes /data/wiki_sp.model

Pre-training on the built-in corpus with no `tokenizer.path` trains one automatically, once, into
`tokenizer.cache_dir` (see `builtin_tokenizer_path`).
"""

import abc
import io
import itertools
import os
import re
from typing import Iterable, Sequence

from absl import flags
from absl import logging
import ml_collections
import sentencepiece as spm
import tensorflow as tf

from electra_jax import files
from electra_jax.errors import UserError
from electra_jax.data import corpus
from electra_jax import startup

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


class SentencePieceTokenizer(Tokenizer):
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
             for i in range(len(SPECIAL_PIECES))]
    if tuple(found) != SPECIAL_PIECES:
      raise UserError(
          f'SentencePiece model {model_path!r} lacks the special symbols: ids 0..4 must be '
          f'{list(SPECIAL_PIECES)} but are {found}. Train it with `python -m electra_jax.tokenizer` '
          '(which reserves them) or pass pad_id=0, unk_id=1, bos_id=-1, eos_id=-1 and '
          'control_symbols=[CLS],[SEP],[MASK] to the SentencePiece trainer.')
    self.vocab_size = self._processor.get_piece_size()
    self.pad_id, self.unk_id, self.cls_id, self.sep_id, self.mask_id = (
        PAD_ID, UNK_ID, CLS_ID, SEP_ID, MASK_ID)
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


# ---- Loading -----------------------------------------------------------------------------------


def _load_sentencepiece(path: str, tokenizer_config: ml_collections.ConfigDict) -> Tokenizer:
  del tokenizer_config
  return SentencePieceTokenizer(path)


def _load_wordpiece(path: str, tokenizer_config: ml_collections.ConfigDict) -> Tokenizer:
  from electra_jax import wordpiece  # noqa: PLC0415  (imports this module)
  return wordpiece.WordPieceTokenizer(path, lower_case=tokenizer_config.get('lower_case', True),
                                      strip_accents=tokenizer_config.get('strip_accents', True))


# Tokenizer type -> loader(path, tokenizer_config). A new type registers its loader here.
TOKENIZER_LOADERS = {
    'sentencepiece': _load_sentencepiece,
    'wordpiece': _load_wordpiece,
}


def load_tokenizer(tokenizer_config: ml_collections.ConfigDict, path: str = '') -> Tokenizer:
  """Loads the tokenizer that `config.tokenizer` names (or `path`, if given).

  Raises:
    ValueError: unknown type, no path, or a model lacking the special symbols.
  """
  kind = tokenizer_config.type
  if kind not in TOKENIZER_LOADERS:
    raise UserError(f'tokenizer.type={kind!r} is unknown; choose one of '
                    f'{sorted(TOKENIZER_LOADERS)}.')
  path = path or tokenizer_config.path
  if not path:
    raise UserError('tokenizer.path is empty. Train a tokenizer with `python -m '
                    'electra_jax.tokenizer --output=PREFIX` and pass '
                    '--config.tokenizer.path=PREFIX.model.')
  return TOKENIZER_LOADERS[kind](path, tokenizer_config)


# ---- Training ----------------------------------------------------------------------------------

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
  if vocab_size <= len(SPECIAL_PIECES):
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
        pad_id=PAD_ID, pad_piece=PAD_PIECE, unk_id=UNK_ID, unk_piece=UNK_PIECE, bos_id=-1,
        eos_id=-1, control_symbols=[CLS_PIECE, SEP_PIECE, MASK_PIECE], byte_fallback=byte_fallback,
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


default_cache_dir = corpus.default_cache_dir


# The built-in corpus's tokenizer is trained on every k-th sentence, k chosen so that about this
# many characters are used: with package docstrings the corpus is ~16M characters, on which
# SentencePiece needs minutes, and a few-thousand-piece vocabulary is estimated as well from a
# quarter of it. A fixed stride (not SentencePiece's random sampling) keeps every host's model
# the same.
BUILTIN_TOKENIZER_MAX_CHARS = 4_000_000


def builtin_tokenizer_path(config: ml_collections.ConfigDict) -> str:
  """The SentencePiece model of the built-in corpus, trained on first use and then cached.

  The cache name holds everything the model depends on (Python version, corpus builder version,
  the packages in the corpus and their versions, vocab size), so a changed setting trains a new
  model instead of reusing a stale one.

  Args:
    config: the full config (reads `tokenizer.vocab_size`, `tokenizer.cache_dir` and
      `data.builtin_packages`).
  """
  cache_dir = config.tokenizer.cache_dir or default_cache_dir()
  vocab_size = config.tokenizer.vocab_size
  packages = config.data.builtin_packages
  prefix = os.path.join(
      cache_dir, f'builtin-sp-unigram-v{vocab_size}-{corpus.builtin_corpus_key(packages)}')
  path = f'{prefix}.model'
  if not tf.io.gfile.exists(path):
    logging.info('Training a %d-piece SentencePiece model on the built-in corpus into %s ...',
                 vocab_size, path)
    texts = list(corpus.builtin_corpus(packages).texts())
    stride = max(1, -(-sum(len(t) for t in texts) // BUILTIN_TOKENIZER_MAX_CHARS))
    train_sentencepiece(texts[::stride], prefix, vocab_size, allow_smaller_vocab=True)
  return path


# ---- CLI ---------------------------------------------------------------------------------------

FLAGS = flags.FLAGS


def _define_flags() -> None:
  """CLI flags, defined only when the CLI runs (importing this module must not add global flags)."""
  flags.DEFINE_enum('source', 'builtin', ['builtin', 'files', 'tfds'], 'Where the text comes from.')
  flags.DEFINE_string('builtin_packages', '', 'source=builtin: installed packages whose '
                      'docstrings join the corpus, comma-separated (data.builtin_packages).')
  flags.DEFINE_string('files', '', 'source=files: paths/globs, comma-separated (local, gs://, .gz).')
  flags.DEFINE_string('tfds_name', '', 'source=tfds: dataset name, e.g. wikipedia/20230601.en.')
  flags.DEFINE_string('tfds_split', 'train', 'source=tfds: split (slicing allowed).')
  flags.DEFINE_string('tfds_text_feature', 'text', 'source=tfds: the feature holding the text.')
  flags.DEFINE_string('tfds_data_dir', '', 'source=tfds: TFDS data_dir (e.g. gs://bucket/tfds).')
  flags.DEFINE_integer('vocab_size', 30522, 'Pieces in the model, the 5 specials included.')
  flags.DEFINE_string('output', '', 'Output prefix: writes PREFIX.model.')
  flags.DEFINE_enum('model_type', 'unigram', ['unigram', 'bpe'], 'SentencePiece algorithm.')
  flags.DEFINE_float('character_coverage', 0.9995, 'Share of characters covered by pieces.')
  flags.DEFINE_integer('max_sentences', 10_000_000, 'Sentences sampled for training.')
  flags.DEFINE_bool('byte_fallback', False, 'Spell unknown characters as byte pieces.')


def _texts_from_flags() -> Iterable[str]:
  max_chars = 1 << 16  # SentencePiece ignores longer sentences anyway (max_sentence_length 4192)
  if FLAGS.source == 'builtin':
    return corpus.builtin_corpus(FLAGS.builtin_packages).texts()
  if FLAGS.source == 'files':
    return corpus.iter_files_texts(corpus.expand_file_patterns(FLAGS.files, '--files'), max_chars)
  from electra_jax.data import sources  # noqa: PLC0415
  return sources.iter_tfds_texts(FLAGS.tfds_name, FLAGS.tfds_split, FLAGS.tfds_text_feature,
                                 FLAGS.tfds_data_dir, limit=FLAGS.max_sentences)


def main(argv: Sequence[str]) -> None:
  startup.no_arguments(argv)
  if not FLAGS.output:
    raise UserError('--output=PREFIX is required (the model is written to PREFIX.model).')
  startup.check_output_dir(FLAGS.output, 'output', create=False)  # before reading any text
  path = train_sentencepiece(_texts_from_flags(), FLAGS.output, FLAGS.vocab_size,
                             model_type=FLAGS.model_type,
                             character_coverage=FLAGS.character_coverage,
                             max_sentences=FLAGS.max_sentences, byte_fallback=FLAGS.byte_fallback)
  tokenizer = SentencePieceTokenizer(path)
  print(f'Wrote {path} ({tokenizer.vocab_size} pieces). Use it with '
        f'--config.tokenizer.path={path}')


def run():
  """Console-script entry point (`electra-jax-tokenizer`)."""
  _define_flags()
  startup.run(main)


if __name__ == '__main__':
  run()

"""Tokenizers: the `Tokenizer` interface, SentencePiece and WordPiece, and `load_tokenizer`.

  base.py           the `Tokenizer` interface and the special pieces ([PAD] [UNK] [CLS] [SEP]
                    [MASK]).
  sentencepiece.py  SentencePiece models: loading, and training one with the special pieces first.
  wordpiece.py      BERT WordPiece (a `vocab.txt`), inside tf.data with tensorflow_text.
  builtin.py        the built-in corpus's SentencePiece model, trained on first use and cached.
  hf.py             our tokenizers <-> the tokenizer files of a Hugging Face model directory.

`load_tokenizer(config.tokenizer)` loads the tokenizer a config names. The tokenizer-training CLI
is `electra_jax.tokenizer`.
"""

import ml_collections

from electra_jax.data.tokenizers.base import CLS_ID
from electra_jax.data.tokenizers.base import CLS_PIECE
from electra_jax.data.tokenizers.base import MASK_ID
from electra_jax.data.tokenizers.base import MASK_PIECE
from electra_jax.data.tokenizers.base import PAD_ID
from electra_jax.data.tokenizers.base import PAD_PIECE
from electra_jax.data.tokenizers.base import SEP_ID
from electra_jax.data.tokenizers.base import SEP_PIECE
from electra_jax.data.tokenizers.base import SPECIAL_PIECES
from electra_jax.data.tokenizers.base import Tokenizer
from electra_jax.data.tokenizers.base import UNK_ID
from electra_jax.data.tokenizers.base import UNK_PIECE
from electra_jax.data.tokenizers.builtin import builtin_tokenizer_path
from electra_jax.data.tokenizers.builtin import default_cache_dir
from electra_jax.data.tokenizers.sentencepiece import SentencePieceTokenizer
from electra_jax.data.tokenizers.sentencepiece import train_sentencepiece
from electra_jax.data.tokenizers.wordpiece import WordPieceTokenizer
from electra_jax.errors import UserError

__all__ = [
    'CLS_ID', 'CLS_PIECE', 'MASK_ID', 'MASK_PIECE', 'PAD_ID', 'PAD_PIECE', 'SEP_ID', 'SEP_PIECE',
    'SPECIAL_PIECES', 'TOKENIZER_LOADERS', 'UNK_ID', 'UNK_PIECE', 'SentencePieceTokenizer',
    'Tokenizer', 'WordPieceTokenizer', 'builtin_tokenizer_path', 'default_cache_dir',
    'load_tokenizer', 'train_sentencepiece',
]


def _load_sentencepiece(path: str, tokenizer_config: ml_collections.ConfigDict) -> Tokenizer:
  del tokenizer_config
  return SentencePieceTokenizer(path)


def _load_wordpiece(path: str, tokenizer_config: ml_collections.ConfigDict) -> Tokenizer:
  return WordPieceTokenizer(path, lower_case=tokenizer_config.get('lower_case', True),
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

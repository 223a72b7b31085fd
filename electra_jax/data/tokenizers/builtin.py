"""The built-in corpus's SentencePiece model: trained once, on first use, then cached.

Pre-training on the built-in corpus with no `tokenizer.path` uses it (see `builtin_tokenizer_path`).
"""

import os

from absl import logging
import ml_collections
import tensorflow as tf

from electra_jax.data import corpus
from electra_jax.data.tokenizers import sentencepiece

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
    sentencepiece.train_sentencepiece(texts[::stride], prefix, vocab_size,
                                      allow_smaller_vocab=True)
  return path

"""Test helper: tiny learnable GLUE-layout tasks (a sentiment word decides the label, a number
word the similarity score), shared by the fine-tuning tests and the CLI's end-to-end test."""

import pathlib

import numpy as np

from electra_jax.data import tokenizers

FILLER = ('the a cat dog sat on mat it was very quite rather movie film plot story actor scene '
          'and then').split()
NUMBERS = ('zero', 'one', 'two', 'three', 'four', 'five')


def filler_words(rng, low=4, high=10):
  return list(rng.choice(FILLER, size=int(rng.integers(low, high))))


def sentiment_sentence(rng, label):
  """Filler words with 'good' (label 1) or 'bad' (label 0) somewhere among them."""
  words = filler_words(rng)
  words.insert(int(rng.integers(0, len(words) + 1)), 'good' if label else 'bad')
  return ' '.join(words)


def similarity_pair(rng, score):
  """A sentence pair whose score (0..5) is the number word hidden in the first sentence."""
  words = filler_words(rng)
  words.insert(int(rng.integers(0, len(words) + 1)), NUMBERS[score])
  return ' '.join(words), ' '.join(filler_words(rng))


def write_sst2(directory: pathlib.Path, rng, sizes=(('train', 320), ('dev', 96))):
  """SST-2-layout TSV files (`sentence<TAB>label`, test `index<TAB>sentence`); returns texts."""
  directory.mkdir(parents=True, exist_ok=True)
  texts = []
  for split, size in sizes:
    labels = rng.integers(0, 2, size)
    rows = [sentiment_sentence(rng, label) for label in labels]
    texts += rows
    (directory / f'{split}.tsv').write_text(
        'sentence\tlabel\n' + ''.join(f'{s}\t{l}\n' for s, l in zip(rows, labels)))
  test_rows = [sentiment_sentence(rng, label) for label in rng.integers(0, 2, 40)]
  (directory / 'test.tsv').write_text(
      'index\tsentence\n' + ''.join(f'{i}\t{s}\n' for i, s in enumerate(test_rows)))
  return texts + test_rows


def sst2_dir(tmp_path_factory):
  """SST-2 TSV files and a SentencePiece model trained on their text: (directory, model path)."""
  directory = tmp_path_factory.mktemp('glue') / 'SST-2'
  texts = write_sst2(directory, np.random.default_rng(0))
  prefix = str(directory.parent / 'sp')
  path = tokenizers.train_sentencepiece(texts + [' '.join(NUMBERS)], prefix, 48,
                                        allow_smaller_vocab=True, num_threads=1)
  return directory, path

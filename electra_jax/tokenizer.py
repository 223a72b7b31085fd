"""The tokenizer-training CLI: a SentencePiece model from any text source.

  python -m electra_jax.tokenizer --source=files --files='/data/wiki/*.txt.gz' \
      --vocab_size=30522 --output=/data/wiki_sp   # writes /data/wiki_sp.model

The model reserves the special ids [PAD]=0, [UNK]=1, [CLS]=2, [SEP]=3, [MASK]=4. Pre-training on
the built-in corpus with no `tokenizer.path` trains one automatically, once, into
`tokenizer.cache_dir`. The tokenizers themselves live in `electra_jax.data.tokenizers`.
"""

from typing import Iterable, Sequence

from absl import flags
import ml_collections

from electra_jax import startup
from electra_jax.data import corpus
from electra_jax.data import documents
from electra_jax.data import sources
from electra_jax.data import tokenizers
from electra_jax.errors import UserError

FLAGS = flags.FLAGS


def _define_flags() -> None:
  """CLI flags, defined only when the CLI runs (importing this module must not add global flags)."""
  flags.DEFINE_enum('source', 'builtin', ['builtin', 'files', 'jsonl', 'parquet', 'hf', 'tfds'],
                    'Where the text comes from.')
  flags.DEFINE_string('builtin_packages', '', 'source=builtin: installed packages whose '
                      'docstrings join the corpus, comma-separated (data.builtin_packages).')
  flags.DEFINE_string('files', '', 'source=files/jsonl/parquet: paths/globs, comma-separated '
                      '(local, gs://, .gz).')
  flags.DEFINE_string('text_field', 'text', 'source=jsonl/parquet/hf: the field holding the text.')
  flags.DEFINE_string('hf_path', '', 'source=hf: a save_to_disk directory, or a load_dataset '
                      'name/path (data.hf_path).')
  flags.DEFINE_string('hf_name', '', 'source=hf: load_dataset configuration name.')
  flags.DEFINE_string('hf_data_files', '', 'source=hf: load_dataset data_files, comma-separated.')
  flags.DEFINE_string('hf_split', 'train', 'source=hf: the split.')
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


def _texts_from_flags(values: flags.FlagValues) -> Iterable[str]:
  """The training text of the source the parsed flag `values` name."""
  max_chars = 1 << 16  # SentencePiece ignores longer sentences anyway (max_sentence_length 4192)
  if values.source == 'builtin':
    return corpus.builtin_corpus(values.builtin_packages).texts()
  if values.source == 'files':
    return corpus.iter_files_texts(corpus.expand_file_patterns(values.files, '--files'), max_chars)
  if values.source in ('jsonl', 'parquet'):
    files = corpus.expand_file_patterns(values.files, '--files')
    return documents.document_texts(
        documents.iter_documents(values.source, files, values.text_field), max_chars)
  if values.source == 'hf':
    data = ml_collections.ConfigDict(dict(
        hf_path=values.hf_path, hf_name=values.hf_name, hf_data_files=values.hf_data_files,
        text_field=values.text_field, on_bad_record='error'))
    return documents.document_texts(documents.iter_hf_documents(data, values.hf_split), max_chars)
  return sources.iter_tfds_texts(values.tfds_name, values.tfds_split, values.tfds_text_feature,
                                 values.tfds_data_dir, limit=values.max_sentences)


def main(argv: Sequence[str]) -> None:
  startup.no_arguments(argv)
  if not FLAGS.output:
    raise UserError('--output=PREFIX is required (the model is written to PREFIX.model).')
  startup.check_output_dir(FLAGS.output, 'output', create=False)  # before reading any text
  path = tokenizers.train_sentencepiece(_texts_from_flags(FLAGS), FLAGS.output, FLAGS.vocab_size,
                                        model_type=FLAGS.model_type,
                                        character_coverage=FLAGS.character_coverage,
                                        max_sentences=FLAGS.max_sentences,
                                        byte_fallback=FLAGS.byte_fallback)
  tokenizer = tokenizers.SentencePieceTokenizer(path)
  print(f'Wrote {path} ({tokenizer.vocab_size} pieces). Use it with '
        f'--config.tokenizer.path={path}')


def run():
  """Console-script entry point (`electra-jax-tokenizer`)."""
  _define_flags()
  startup.run(main)


if __name__ == '__main__':
  run()

"""Tokenise and pack a corpus once into sharded TFRecord files (masking stays dynamic).

  python -m electra_jax.data.prepare --config=configs/small.py \
      --config.data.source=files --config.data.train_files='gs://bucket/wiki/*.txt.gz' \
      --config.tokenizer.path=gs://bucket/wiki_sp.model --output_dir=gs://bucket/wiki_packed

then pre-train with `--config.data.source=prepared --config.data.prepared_dir=gs://bucket/wiki_packed`.

Each input shard (a file, a Parquet row group, a run of a Hugging Face dataset's rows, a built-in
corpus shard, or a slice of a TFDS split) becomes one output
shard, packed by the same tf.data code as the on-the-fly path (`pretraining.packed_examples`), with
`--num_workers` shards in flight at once (TF ops release the GIL, so threads run in parallel).
Every shard is written under a temporary name and renamed when complete; `metadata.json` is written
last, so a directory is usable only once all of it exists. See `records.py` for the format.
"""

import concurrent.futures
import os
from typing import Sequence

from absl import flags
from absl import logging
import ml_collections
from ml_collections import config_flags
import tensorflow as tf

from electra_jax import startup
from electra_jax.data import corpus
from electra_jax.data import pretraining
from electra_jax.data import records
from electra_jax.data import sources
from electra_jax.data import tokenizers
from electra_jax.errors import UserError
from electra_jax.spec import run as run_spec

_WRITE_BATCH = 1024  # examples serialised per step
_MIN_EXAMPLES_PER_TFDS_SHARD = 16


def _num_input_shards(config: ml_collections.ConfigDict, split: str, tfds_shards: int) -> int:
  """How many input shards (and so output shards) a split of the source has."""
  data = config.data
  if data.source == 'builtin':
    return corpus.BUILTIN_NUM_SHARDS
  if data.source in pretraining.FILE_SOURCES + ('hf',):
    return pretraining.sharded_source(config, split)[1]  # files, row groups or runs of rows
  builder = sources.tfds_builder(data.tfds_name, data.tfds_data_dir, data.tfds_text_feature)
  train_split, eval_split = sources.tfds_splits(builder, data.tfds_train_split,
                                                data.tfds_eval_split, data.eval_fraction)
  split_name = train_split if split == 'train' else eval_split
  wanted = tfds_shards if split == 'train' else max(1, tfds_shards // 8)
  if not builder.info.splits:  # sizes unknown (e.g. under tfds.testing.mock_data)
    return wanted
  num_examples = builder.info.splits[split_name].num_examples
  return max(1, min(wanted, num_examples // _MIN_EXAMPLES_PER_TFDS_SHARD))


def _write_shard(examples: tf.data.Dataset, path: str, id_dtype: str,
                 pad_id: int) -> tuple[int, int]:
  """Writes packed `examples` into the record file `path` (temporary name, then renamed).

  Returns:
    (examples, non-padding tokens) written.
  """
  num_examples = num_tokens = 0
  temp_path = f'{path}.tmp'
  with tf.io.TFRecordWriter(temp_path) as writer:
    for batch in examples.batch(_WRITE_BATCH).as_numpy_iterator():
      for record in records.serialize_examples(batch['input_ids'], batch['token_type_ids'],
                                               id_dtype):
        writer.write(record)
      num_examples += len(batch['input_ids'])
      num_tokens += int((batch['input_ids'] != pad_id).sum())
  tf.io.gfile.rename(temp_path, path, overwrite=True)
  return num_examples, num_tokens


def _store_tokenizer(tokenizer: tokenizers.Tokenizer, output_dir: str) -> dict:
  """Copies the tokenizer into `output_dir`; returns its `metadata.json` entry."""
  if isinstance(tokenizer, tokenizers.SentencePieceTokenizer):
    with tf.io.gfile.GFile(os.path.join(output_dir, records.TOKENIZER_FILE), 'wb') as f:
      f.write(tokenizer.model_proto)
    return {'type': 'sentencepiece', 'file': records.TOKENIZER_FILE}
  if isinstance(tokenizer, tokenizers.WordPieceTokenizer):
    tf.io.gfile.copy(tokenizer.files()[0],
                     os.path.join(output_dir, records.WORDPIECE_VOCAB_FILE), overwrite=True)
    return {'type': 'wordpiece', 'file': records.WORDPIECE_VOCAB_FILE,
            'lower_case': tokenizer.lower_case, 'strip_accents': tokenizer.strip_accents}
  raise UserError(f'prepare cannot store a {type(tokenizer).__name__}; use a SentencePiece or '
                  'WordPiece tokenizer.')


def prepare(config: ml_collections.ConfigDict, output_dir: str, num_workers: int = 0,
            tfds_shards: int = 64) -> dict:
  """Writes the packed train and eval shards of `config.data`'s source into `output_dir`.

  Args:
    config: a pre-training config; any data source but 'prepared' and 'synthetic'.
    output_dir: local or gs:// directory (created; earlier shards there are overwritten).
    num_workers: shards packed at once; 0 = number of CPUs.
    tfds_shards: output shards for a TFDS train split (its eval part gets an eighth).

  Returns:
    The metadata written to `output_dir/metadata.json`.

  Raises:
    ValueError: a bad config or source (checked first), or a split that yields no examples.
  """
  if config.data.source == 'prepared':
    raise UserError('data.source="prepared" is already prepared: choose a text source '
                    '(builtin, files, jsonl, parquet, hf or tfds).')
  if not output_dir:
    raise UserError('--output_dir is required.')
  tokenizer = pretraining.validate_data_config(run_spec.load(config))
  tf.io.gfile.makedirs(output_dir)
  metadata_path = os.path.join(output_dir, records.METADATA_FILE)
  if tf.io.gfile.exists(metadata_path):
    tf.io.gfile.remove(metadata_path)  # the directory is incomplete until we finish
  tokenizer_metadata = _store_tokenizer(tokenizer, output_dir)

  id_dtype = records.id_dtype(tokenizer.vocab_size)
  jobs = []  # (split, output file name, packed examples of one input shard)
  for split in pretraining.SPLITS:
    num_shards = _num_input_shards(config, split, tfds_shards)
    for shard_index in range(num_shards):
      # Built here, in one thread (tracing is not thread-safe); the threads only iterate.
      examples = pretraining.packed_examples(config, split, shard_index, num_shards, tokenizer,
                                             training=False)
      jobs.append((split, records.shard_name(split, shard_index, num_shards), examples))
  workers = num_workers or os.cpu_count() or 1
  logging.info('Packing %d shards into %s with %d workers ...', len(jobs), output_dir, workers)
  with concurrent.futures.ThreadPoolExecutor(workers) as pool:
    results = list(pool.map(
        lambda job: _write_shard(job[2], os.path.join(output_dir, job[1]), id_dtype,
                                 tokenizer.pad_id), jobs))

  shards = {split: [] for split in pretraining.SPLITS}
  counts = {split: {'examples': 0, 'tokens': 0} for split in pretraining.SPLITS}
  for (split, name, _), (num_examples, num_tokens) in zip(jobs, results):
    if num_examples:
      shards[split].append(name)  # an empty shard (e.g. no held-out document) is not listed
    counts[split]['examples'] += num_examples
    counts[split]['tokens'] += num_tokens
  for split in pretraining.SPLITS:
    if not shards[split]:
      raise UserError(f'The {split} split of data.source={config.data.source!r} yields no '
                      'examples: the corpus (or its held-out part) is empty. For eval, raise '
                      'data.eval_fraction or give eval files.')
  metadata = {
      'format': records.FORMAT,
      'max_seq_length': config.data.max_seq_length,
      'vocab_size': tokenizer.vocab_size,
      'id_dtype': id_dtype,
      'shards': shards,
      'counts': counts,
      'source': config.data.source,
      'tokenizer': tokenizer_metadata,
      'seed': config.seed,
      'short_seq_prob': config.data.short_seq_prob,
      'single_segment_prob': config.data.single_segment_prob,
  }
  records.write_metadata(output_dir, metadata)
  return metadata


FLAGS = flags.FLAGS


def _define_flags() -> None:
  """CLI flags, defined only when the CLI runs (importing this module must not add global flags)."""
  config_flags.DEFINE_config_file('config', None, 'Pre-training config (data + tokenizer): a '
                                  'file or a packaged name (tiny, small, base, large).',
                                  lock_config=True)
  flags.DEFINE_string('output_dir', None, 'Where the shards go (local or gs://).')
  flags.DEFINE_integer('num_workers', 0, 'Shards packed at once; 0 = number of CPUs.')
  flags.DEFINE_integer('tfds_shards', 64, 'Output shards for a TFDS train split.')
  flags.mark_flags_as_required(['config', 'output_dir'])


def main(argv: Sequence[str]) -> None:
  startup.no_arguments(argv)
  startup.check_output_dir(FLAGS.output_dir, 'output_dir')  # before the tokenizer or any text
  metadata = prepare(FLAGS.config, FLAGS.output_dir, FLAGS.num_workers, FLAGS.tfds_shards)
  for split, count in metadata['counts'].items():
    print(f'{split}: {count["examples"]} examples, {count["tokens"]} tokens in '
          f'{len(metadata["shards"][split])} shards')
  print(f'Train with --config.data.source=prepared --config.data.prepared_dir={FLAGS.output_dir}')


def run():
  """Console-script entry point (`electra-jax-prepare`)."""
  _define_flags()
  startup.run(main)


if __name__ == '__main__':
  run()

"""Input-pipeline throughput on the built-in corpus: on-the-fly tokenisation vs prepared shards.

  python benchmarks/bench_data.py [--batch_size=128] [--seq_len=128] [--batches=200]
  python benchmarks/bench_data.py --eval_pass     # one eval pass at 1x and 10x the corpus
  python benchmarks/bench_data.py --formats       # the same documents as text, JSONL(.gz),
                                                  # Parquet, a saved HF dataset, prepared shards

`--eval_pass` times what the trainer does at each evaluation (a fresh held-out iterator, then
`train.eval_steps` batches) on the built-in corpus written to 16 files (1x) and to 160 files
(10x: the same text ten times, each copy its own shards with its own held-out documents).

Prints tokens/s (all batch positions, i.e. what a train step consumes, and non-padding tokens)
for both paths of `electra_jax.data.pretraining.make_dataset`. Not a test: numbers depend on the
machine. The pipeline should deliver >= 10x what the train step consumes, and ~1M tokens/s per host
from prepared shards on a TPU host.
"""

import os
import tempfile
import time

from absl import app
from absl import flags

from electra_jax.configs import tiny
from electra_jax.data import prepare
from electra_jax.data import pretraining
from electra_jax.spec import run as run_spec

_BATCH_SIZE = flags.DEFINE_integer('batch_size', 128, 'Examples per batch.')
_SEQ_LEN = flags.DEFINE_integer('seq_len', 128, 'Packed sequence length.')
_BATCHES = flags.DEFINE_integer('batches', 200, 'Batches timed per path.')
_WARMUP = flags.DEFINE_integer('warmup', 20, 'Batches drawn before timing (fills buffers).')
_CACHE_DIR = flags.DEFINE_string('cache_dir', '', 'Tokenizer cache; "" = the default cache.')
_FORMATS = flags.DEFINE_bool('formats', False, 'Time the on-the-fly path on the built-in '
                              'corpus written as text, JSONL, JSONL.gz, Parquet and a saved HF '
                              'dataset (16 files/shards each), then prepared shards.')
_EVAL_PASS = flags.DEFINE_bool('eval_pass', False, 'Time one eval pass at 1x and 10x the '
                               'built-in corpus instead.')


def _time_eval_passes(config) -> None:
  from electra_jax.data import corpus  # noqa: PLC0415
  documents = corpus.builtin_corpus().documents
  config.train.batch_size = 32  # as the tiny config evaluates
  tokenizer_path = pretraining.validate_data_config(run_spec.load(config)).files()[0]
  with tempfile.TemporaryDirectory() as directory:
    for copies in (1, 10):
      for copy in range(copies):
        for shard in range(16):
          path = os.path.join(directory, f'{copies}x', f'part-{copy:02d}-{shard:02d}.txt')
          os.makedirs(os.path.dirname(path), exist_ok=True)
          with open(path, 'w') as f:
            f.write('\n\n'.join('\n'.join(d) for d in documents[shard::16]) + '\n')
      config.data.source = 'files'
      config.data.train_files = os.path.join(directory, f'{copies}x', '*.txt')
      config.tokenizer.path = tokenizer_path
      dataset = pretraining.make_dataset(run_spec.load(config), 'eval')
      start = time.perf_counter()
      iterator = iter(dataset)  # a fresh pass, as train.evaluate makes
      for _ in range(config.train.eval_steps):
        next(iterator)
      print(f'eval pass at {copies:2d}x the built-in corpus ({16 * copies} files): '
            f'{config.train.eval_steps} batches of {config.train.batch_size} x '
            f'{config.data.max_seq_length} in {time.perf_counter() - start:.1f}s')


def _time_formats(config) -> None:
  """The built-in corpus's documents in every format, one file (or HF shard) per 16th."""
  import gzip  # noqa: PLC0415
  import json  # noqa: PLC0415
  import datasets  # noqa: PLC0415
  import pyarrow as pa  # noqa: PLC0415
  import pyarrow.parquet as pq  # noqa: PLC0415
  from electra_jax.data import corpus  # noqa: PLC0415
  documents = corpus.builtin_corpus().documents
  config.tokenizer.path = pretraining.validate_data_config(run_spec.load(config)).files()[0]
  with tempfile.TemporaryDirectory() as directory:
    rows = []
    for shard in range(16):
      texts = ['\n'.join(d) for d in documents[shard::16]]
      rows.extend(texts)
      with open(os.path.join(directory, f'part-{shard:02d}.txt'), 'w') as f:
        f.write('\n\n'.join(texts) + '\n')
      records = ''.join(json.dumps({'text': t}) + '\n' for t in texts)
      with open(os.path.join(directory, f'part-{shard:02d}.jsonl'), 'w') as f:
        f.write(records)
      with gzip.open(os.path.join(directory, f'part-{shard:02d}.jsonl.gz'), 'wt') as f:
        f.write(records)
      pq.write_table(pa.table({'text': texts}),
                     os.path.join(directory, f'part-{shard:02d}.parquet'))
    datasets.Dataset.from_dict({'text': rows}).save_to_disk(os.path.join(directory, 'saved'))
    shard_rows = -(-len(rows) // 16)
    print(f'{len(rows)} documents, 16 files (HF: {shard_rows} rows per shard)')
    formats = [('text', 'files', '*.txt'), ('jsonl', 'jsonl', '*.jsonl'),
               ('jsonl.gz', 'jsonl', '*.jsonl.gz'), ('parquet', 'parquet', '*.parquet'),
               ('hf', 'hf', '')]
    for name, source, pattern in formats:
      config.data.source = source
      config.data.train_files = os.path.join(directory, pattern)
      config.data.hf_path, config.data.hf_shard_rows = os.path.join(directory, 'saved'), shard_rows
      _time_path(config, name)
    config.data.source, config.data.train_files = 'files', os.path.join(directory, '*.txt')
    config.data.prepared_dir = os.path.join(directory, 'prepared')
    prepare.prepare(config, config.data.prepared_dir)
    config.data.source = 'prepared'
    config.tokenizer.path = ''
    _time_path(config, 'prepared')


def _time_path(config, name: str) -> None:
  start = time.perf_counter()
  iterator = iter(pretraining.make_dataset(run_spec.load(config), 'train'))
  for _ in range(_WARMUP.value):
    next(iterator)
  ready = time.perf_counter()
  real_tokens = 0
  for _ in range(_BATCHES.value):
    batch = next(iterator)
    real_tokens += int(batch['attention_mask'].numpy().sum())
  elapsed = time.perf_counter() - ready
  positions = _BATCHES.value * _BATCH_SIZE.value * _SEQ_LEN.value
  print(f'{name:>10}: {positions / elapsed:12,.0f} tokens/s (positions), '
        f'{real_tokens / elapsed:12,.0f} non-padding tokens/s, '
        f'{_BATCHES.value / elapsed:8.1f} batches/s; start-up {ready - start:.1f}s')


def main(argv):
  del argv
  config = tiny.get_config()
  config.train.batch_size = _BATCH_SIZE.value
  config.data.max_seq_length = _SEQ_LEN.value
  config.model.max_position_embeddings = max(config.model.max_position_embeddings, _SEQ_LEN.value)
  config.tokenizer.cache_dir = _CACHE_DIR.value
  if _EVAL_PASS.value:
    _time_eval_passes(config)
    return
  if _FORMATS.value:
    print(f'batch {_BATCH_SIZE.value} x {_SEQ_LEN.value}, {os.cpu_count()} CPUs, '
          f'{_BATCHES.value} batches timed after {_WARMUP.value} warm-up batches')
    _time_formats(config)
    return
  print(f'batch {_BATCH_SIZE.value} x {_SEQ_LEN.value}, {os.cpu_count()} CPUs, '
        f'{_BATCHES.value} batches timed after {_WARMUP.value} warm-up batches')
  _time_path(config, 'on-the-fly')
  with tempfile.TemporaryDirectory() as prepared_dir:
    start = time.perf_counter()
    metadata = prepare.prepare(config, prepared_dir)
    print(f'   prepare: {metadata["counts"]["train"]["tokens"]:,} train tokens in '
          f'{time.perf_counter() - start:.1f}s')
    config.data.source = 'prepared'
    config.data.prepared_dir = prepared_dir
    _time_path(config, 'prepared')


if __name__ == '__main__':
  app.run(main)

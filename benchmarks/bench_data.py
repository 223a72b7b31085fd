"""Input-pipeline throughput on the built-in corpus: on-the-fly tokenisation vs prepared shards.

  python benchmarks/bench_data.py [--batch_size=128] [--seq_len=128] [--batches=200]

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

_BATCH_SIZE = flags.DEFINE_integer('batch_size', 128, 'Examples per batch.')
_SEQ_LEN = flags.DEFINE_integer('seq_len', 128, 'Packed sequence length.')
_BATCHES = flags.DEFINE_integer('batches', 200, 'Batches timed per path.')
_WARMUP = flags.DEFINE_integer('warmup', 20, 'Batches drawn before timing (fills buffers).')
_CACHE_DIR = flags.DEFINE_string('cache_dir', '', 'Tokenizer cache; "" = the default cache.')


def _time_path(config, name: str) -> None:
  start = time.perf_counter()
  iterator = iter(pretraining.make_dataset(config, 'train'))
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

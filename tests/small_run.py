"""Test helper: the small pre-training config the loop tests share, and a run's metrics."""

import json
import pathlib

import ml_collections

from electra_jax import startup


def load_config(repo_root, name='tiny'):
  return startup.load_config_file(repo_root / 'configs' / f'{name}.py')


def small_config(repo_root, **mesh) -> ml_collections.ConfigDict:
  """A model small enough to compile in seconds, wide enough for tensor=2 on both networks."""
  config = load_config(repo_root)
  m = config.model
  m.vocab_size, m.embedding_size, m.hidden_size, m.num_heads = 256, 64, 128, 2
  m.intermediate_size, m.num_layers, m.max_position_embeddings = 256, 1, 64
  config.electra.generator_hidden_fraction = 1.0  # generator 128 wide: 2 heads of 64
  config.electra.embedding_sharing = 'shared'  # the original's tied tables (tiny.py unties them)
  config.data.source = 'synthetic'
  config.data.max_seq_length = 32
  config.train.batch_size = 16
  config.train.num_steps = 3
  config.train.warmup_steps = 1
  config.train.log_every = 1
  config.train.eval_every = 0
  config.train.checkpoint_every = 1000
  config.mesh.update(dict(data=-1, fsdp=1, tensor=1), **mesh)
  return config


def read_metrics(workdir) -> list[dict]:
  lines = (pathlib.Path(workdir) / 'metrics.jsonl').read_text().splitlines()
  return [json.loads(line) for line in lines]

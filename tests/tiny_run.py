"""Test helper: a tiny pre-training run with real text, eval records and two checkpoints.

Shared by tests/inspection/test_inspect.py and tests/test_plot.py through the session fixture
`trained_tiny_run` in conftest.py, so the suite trains it once.
"""

import collections
import difflib
import functools
import inspect
import json
import os
import re
import shutil
import string
import textwrap

import ml_collections

from electra_jax import startup
from electra_jax.data import tokenizers
from electra_jax.pretraining import train


def _documents():
  """Docstrings of a few standard-library modules: real English text, no corpus parsing."""
  documents = []
  for module in (collections, difflib, functools, json, shutil, string, textwrap, os.path, re):
    for name in sorted(dir(module)):
      doc = inspect.getdoc(getattr(module, name))
      if doc and not name.startswith('_') and len(doc) > 200:
        documents.append([line for line in doc.splitlines() if line.strip()])
  return documents


def tiny_run_config(repo_root, root) -> ml_collections.ConfigDict:
  """A 1-layer model; sequence length = position count, so an HF export masks the same way."""
  documents = _documents()
  train_docs, eval_docs = documents[:-8], documents[-8:]
  for name, docs in (('train.txt', train_docs), ('eval.txt', eval_docs)):
    (root / name).write_text('\n\n'.join('\n'.join(d) for d in docs) + '\n', encoding='utf-8')
  sp_path = tokenizers.train_sentencepiece(
      [line for d in train_docs for line in d], str(root / 'sp'), 256, allow_smaller_vocab=True)
  config = startup.load_config_file(repo_root / 'configs' / 'tiny.py')
  m = config.model
  m.vocab_size, m.embedding_size, m.hidden_size, m.num_heads = 256, 32, 64, 2
  m.intermediate_size, m.num_layers, m.max_position_embeddings = 128, 1, 32
  config.electra.generator_hidden_fraction = 0.5  # generator: hidden 32, 1 head
  config.electra.embedding_sharing = 'shared'  # the original's tied tables (tiny.py unties them)
  config.data.max_seq_length = 32
  config.data.source = 'files'
  config.data.train_files, config.data.eval_files = str(root / 'train.txt'), str(root / 'eval.txt')
  config.tokenizer.path = sp_path
  config.train.batch_size = 8
  config.train.num_steps = 4
  config.train.warmup_steps = 1
  config.train.log_every = 1
  config.train.eval_every = 2
  config.train.eval_steps = 1
  config.train.checkpoint_every = 2
  config.mesh.data = -1
  return config


def train_tiny_run(repo_root, root) -> ml_collections.ConfigDict:
  """Four steps of a tiny model in ROOT/workdir; checkpoints at steps 2 and 4, eval at 2 and 4."""
  config = tiny_run_config(repo_root, root)
  workdir = root / 'workdir'
  train.train_and_evaluate(config, str(workdir))
  return ml_collections.ConfigDict(dict(workdir=str(workdir), config=config,
                                        eval_file=str(root / 'eval.txt')))

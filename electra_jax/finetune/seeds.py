"""Several seeds of one task: each run once, its result kept as JSON, so a job resumes."""

from __future__ import annotations

import json
from typing import Any, Callable

import jax
import ml_collections
import tensorflow as tf
from absl import logging

from electra_jax import files
from electra_jax.errors import UserError


def _fingerprint(config: ml_collections.ConfigDict) -> dict[str, Any]:
  """The config as JSON, less the seed list: what makes two seeds' results comparable."""
  settings = json.loads(json.dumps(config.to_dict(), default=str))
  settings.pop('seeds', None)
  # The probe config's `linear_*` fields configure the frozen-encoder linear probe
  # (finetune/linear_probe.py) alone: a change to them leaves fine-tuned seeds valid.
  probe = settings.get('probe', {})
  for key in [key for key in probe if key.startswith('linear_')]:
    del probe[key]
  return settings


def run_seeds(config: ml_collections.ConfigDict, task_dir: str,
              run_seed: Callable[[int, str], dict[str, Any]]) -> list[dict[str, Any]]:
  """Runs `run_seed(seed, seed_dir)` for each of `config.seeds`, keeping each result as JSON.

  A seed whose `seed_<n>/result.json` was written with the same config is not run again, so an
  interrupted multi-seed job resumes at the first unfinished seed.

  Returns:
    [{'seed', **run_seed's result, 'config'}] in `config.seeds` order.
  """
  fingerprint = _fingerprint(config)
  results = []
  for seed in config.seeds:
    seed_dir = f'{task_dir.rstrip("/")}/seed_{seed}'
    path = f'{seed_dir}/result.json'
    if tf.io.gfile.exists(path):
      with tf.io.gfile.GFile(path) as f:
        saved = json.load(f)
      if saved.get('config') != fingerprint:
        raise UserError(f'{seed_dir} holds the result of a different configuration; use a new '
                        '--workdir (or restore the earlier settings to add seeds to it).')
      logging.info('Seed %d: reusing the finished run in %s.', seed, seed_dir)
      results.append(saved)
      continue
    result = {'seed': int(seed), **run_seed(int(seed), seed_dir), 'config': fingerprint}
    if jax.process_index() == 0:
      tf.io.gfile.makedirs(seed_dir)
      files.write_json(path, result)
    results.append(result)
  return results

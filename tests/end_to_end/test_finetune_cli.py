"""The fine-tuning CLI end to end: `python -m electra_jax.finetune` on a tiny SST-2."""

import json
import os
import subprocess
import sys

import pytest


@pytest.mark.slow
def test_cli_runs_a_task(repo_root, sst2_dir, tmp_path):
  """`python -m electra_jax.finetune --config=configs/finetune/glue.py:sst2 ...` end to end."""
  directory, tokenizer_path = sst2_dir
  env = dict(os.environ, XLA_FLAGS='--xla_force_host_platform_device_count=2')
  command = [
      sys.executable, '-m', 'electra_jax.finetune',
      f'--config={repo_root}/configs/finetune/glue.py:sst2', f'--workdir={tmp_path}',
      '--config.data.source=tsv', f'--config.data.data_dir={directory}',
      f'--config.tokenizer.path={tokenizer_path}', '--config.model.vocab_size=64',
      '--config.model.embedding_size=32', '--config.model.hidden_size=32',
      '--config.model.num_heads=2', '--config.model.num_layers=1',
      '--config.model.intermediate_size=64', '--config.model.max_position_embeddings=32',
      '--config.model.initializer_range=0.1',
      '--config.data.max_seq_length=32', '--config.train.num_epochs=1',
      '--config.train.learning_rate=1e-2', '--config.train.eval_batch_size=64']
  completed = subprocess.run(command, env=env, capture_output=True, text=True, timeout=300,
                             check=False)
  assert completed.returncode == 0, completed.stderr[-3000:]
  assert 'SST-2' in completed.stdout and 'accuracy' in completed.stdout
  overview = json.loads((tmp_path / 'results.json').read_text())
  assert overview['tasks']['sst2']['num_seeds'] == 1

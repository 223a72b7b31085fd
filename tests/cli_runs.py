"""Test helper: running the real CLIs as subprocesses, and the one-line error they must give.

Shared by the end-to-end tests (tests/end_to_end) and the tool tests that run a CLI.
"""

import os
import subprocess
import sys

from electra_jax import errors

SMALL_OVERRIDES = [
    '--config.data.source=synthetic', '--config.model.vocab_size=256',
    '--config.model.embedding_size=64', '--config.model.hidden_size=64',
    '--config.model.num_heads=2', '--config.model.intermediate_size=128',
    '--config.model.num_layers=1', '--config.model.max_position_embeddings=32',
    '--config.data.max_seq_length=32', '--config.train.batch_size=16',
    '--config.train.num_steps=3', '--config.train.warmup_steps=1', '--config.train.log_every=1',
    '--config.train.eval_every=0',
]


def subprocess_env(num_devices: int) -> dict:
  env = dict(os.environ)
  env['XLA_FLAGS'] = f'--xla_force_host_platform_device_count={num_devices}'
  env['JAX_PLATFORMS'] = 'cpu'
  env['TF_CPP_MIN_LOG_LEVEL'] = '2'
  return env


def pretrain_command(repo_root, workdir, *extra) -> list[str]:
  return [sys.executable, '-m', 'electra_jax.main', f'--config={repo_root}/configs/tiny.py',
          f'--workdir={workdir}', *extra]


def assert_one_line_error(result: subprocess.CompletedProcess, culprits=()) -> str:
  """Exit status 2, no traceback, and the last stderr line is `error: ...` naming the culprits."""
  output = result.stdout + result.stderr
  assert result.returncode == errors.EXIT_STATUS, output[-3000:]
  assert 'Traceback' not in output, output[-3000:]
  lines = [line for line in result.stderr.splitlines() if line.strip()]
  error_lines = [line for line in lines if line.startswith('error: ')]
  assert len(error_lines) == 1 and lines[-1] == error_lines[0], output[-3000:]
  for culprit in culprits:
    assert culprit in error_lines[0], error_lines[0]
  return error_lines[0]

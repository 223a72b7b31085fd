"""benchmarks/accelerator_check.sh runs end to end on CPU (tiny shapes), so it cannot rot."""

import os
import subprocess
import sys

import pytest


@pytest.mark.slow
def test_accelerator_check_prints_one_complete_table(repo_root, tmp_path):
  result = subprocess.run(
      ['bash', 'benchmarks/accelerator_check.sh', '--cpu', '--timed_steps=1', '--tiny_steps=40',
       f'--workdir={tmp_path}'], cwd=repo_root, capture_output=True, text=True, timeout=1200,
      env={**os.environ, 'PYTHON': sys.executable})  # this interpreter, whatever PATH says
  assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
  table = [line for line in result.stdout.splitlines() if line.startswith('|')]
  assert table[0].startswith('| check | shape | tokens/s | TFLOP/s/device | MFU |')
  rows = {line.split(' | ')[0].lstrip('| '): line for line in table[2:]}
  assert '8 x cpu' in rows['devices']
  model_rows = [line for line in table if line.startswith('| tiny (for ELECTRA-')]
  assert len(model_rows) == 3 and all(line.rstrip(' |').endswith('ok') for line in model_rows)
  assert 'falling' in rows['tiny pre-training, 40 steps']
  assert 'NOT' not in rows['tiny pre-training, 40 steps']
  assert 'loads in transformers' in rows['conversion to Hugging Face']
  assert (tmp_path / 'hf' / 'discriminator').is_dir()

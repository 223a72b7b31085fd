"""benchmarks/accelerator_check.sh runs end to end on CPU (tiny shapes), so it cannot rot."""

import json
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


# Runs in a child: accelerator_check.py defines absl flags, which must not meet this process's.
_ESTIMATE_PROBE = '''
import json, sys, types
import ml_collections
sys.path.insert(0, 'benchmarks')
import accelerator_check

class Device:
  def __init__(self, platform, kind):
    self.platform, self.device_kind = platform, kind

calls = []
def estimate(config, topology):
  calls.append([config.train.batch_size, topology])
  return {'step_seconds': 0.05, 'tokens_per_second': 81920.0, 'mfu': 0.5}

import electra_jax.pretraining
stand_in = types.ModuleType('electra_jax.pretraining.tpu_compile')
stand_in.estimate = estimate
electra_jax.pretraining.tpu_compile = stand_in
config = ml_collections.ConfigDict(dict(train=dict(batch_size=32)))
cells = {}
sys.modules['electra_jax.pretraining.tpu_compile'] = stand_in
cells['v4'] = accelerator_check._estimate(config, [Device('tpu', 'TPU v4')] * 4, 0.1)
cells['v5e'] = accelerator_check._estimate(config, [Device('tpu', 'TPU v5 lite')] * 8, 0.1)
cells['cpu'] = accelerator_check._estimate(config, [Device('cpu', 'cpu')] * 8, 0.1)
sys.modules['electra_jax.pretraining.tpu_compile'] = None  # not importable
del electra_jax.pretraining.tpu_compile
cells['missing'] = accelerator_check._estimate(config, [Device('tpu', 'TPU v3')] * 8, 0.1)
print(json.dumps({'cells': cells, 'calls': calls}))
'''


def test_estimate_beside_the_measured_step_on_a_tpu(repo_root):
  """The compile check's estimate for this TPU's topology, with measured / estimated; a clear
  n/a off TPUs or without the compile check (a stand-in answers for it here)."""
  result = subprocess.run([sys.executable, '-c', _ESTIMATE_PROBE], cwd=repo_root,
                          capture_output=True, text=True, timeout=300,
                          env={**os.environ, 'JAX_PLATFORMS': 'cpu'})
  assert result.returncode == 0, result.stderr[-3000:]
  probe = json.loads(result.stdout.strip().splitlines()[-1])
  assert probe['calls'] == [[32, 'v4-8'], [32, 'v5e-8']]
  assert probe['cells']['v4'] == ('v4-8: 50.0 ms/step, 81,920 tokens/s, MFU 50.0%; '
                                  'measured 100.0 ms = 2.00x')
  assert probe['cells']['cpu'] == 'n/a (TPU only)'
  assert probe['cells']['missing'].startswith("n/a (the compile check's estimate is unavailable")

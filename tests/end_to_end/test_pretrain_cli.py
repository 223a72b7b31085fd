"""The real CLI as subprocesses: multi-host equivalence, SIGTERM and resume, learning on `tiny`."""

import json
import pathlib
import signal
import socket
import subprocess
import time

import numpy as np
import pytest

from cli_runs import SMALL_OVERRIDES, pretrain_command, subprocess_env  # tests/cli_runs.py

def _losses(workdir) -> list[float]:
  lines = (pathlib.Path(workdir) / 'metrics.jsonl').read_text().splitlines()
  return [json.loads(line)['loss'] for line in lines if 'loss' in json.loads(line)]


def _free_port() -> int:
  with socket.socket() as s:
    s.bind(('127.0.0.1', 0))
    return s.getsockname()[1]


@pytest.mark.slow
def test_two_processes_of_four_devices_match_one_process_of_eight(repo_root, tmp_path):
  single = subprocess.run(pretrain_command(repo_root, tmp_path / 'single', *SMALL_OVERRIDES),
                          env=subprocess_env(8), cwd=repo_root, capture_output=True, text=True,
                          timeout=600)
  assert single.returncode == 0, single.stderr[-3000:]
  port = _free_port()
  workers = [subprocess.Popen(
      pretrain_command(repo_root, tmp_path / 'multi', *SMALL_OVERRIDES,
                       f'--coordinator_address=127.0.0.1:{port}', '--num_processes=2',
                       f'--process_id={i}'),
      env=subprocess_env(4), cwd=repo_root, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
      text=True)
      for i in range(2)]
  outputs = [w.communicate(timeout=600)[0] for w in workers]
  for worker, output in zip(workers, outputs):
    assert worker.returncode == 0, output[-3000:]
  assert 'Process 1 of 2' in outputs[1]
  np.testing.assert_allclose(_losses(tmp_path / 'multi'), _losses(tmp_path / 'single'), rtol=2e-5)


@pytest.mark.slow
def test_sigterm_saves_a_checkpoint_that_resumes(repo_root, tmp_path):
  workdir = tmp_path / 'run'
  overrides = [o for o in SMALL_OVERRIDES if 'num_steps' not in o] + [
      '--config.train.num_steps=100000', '--config.train.checkpoint_every=100000']
  process = subprocess.Popen(pretrain_command(repo_root, workdir, *overrides),
                             env=subprocess_env(8), cwd=repo_root, stdout=subprocess.PIPE,
                             stderr=subprocess.STDOUT, text=True)
  metrics = workdir / 'metrics.jsonl'
  deadline = time.time() + 300
  while not (metrics.exists() and len(metrics.read_text().splitlines()) >= 3):
    assert process.poll() is None, process.stdout.read()[-3000:]
    assert time.time() < deadline, 'training did not start'
    time.sleep(0.5)
  process.send_signal(signal.SIGTERM)
  output = process.communicate(timeout=300)[0]
  assert process.returncode == 0, output[-3000:]
  assert 'Preempted: checkpoint saved at step' in output
  saved = sorted(int(p.name) for p in (workdir / 'checkpoints').iterdir() if p.name.isdigit())
  assert saved, output[-3000:]
  steps_done = saved[-1]

  resumed = subprocess.run(
      pretrain_command(repo_root, workdir, *overrides[:-2],
                       f'--config.train.num_steps={steps_done + 2}'),
      env=subprocess_env(8), cwd=repo_root, capture_output=True, text=True, timeout=600)
  assert resumed.returncode == 0, resumed.stderr[-3000:]
  assert f'Resumed from the checkpoint at step {steps_done}' in resumed.stderr
  assert (workdir / 'COMPLETED').exists()


def _unigram_baseline(repo_root, tokenizer_path) -> float:
  """Accuracy of always guessing the most frequent masked token of the held-out split."""
  import collections

  from electra_jax.data import pretraining
  from electra_jax import startup
  config = startup.load_config_file(repo_root / 'configs' / 'tiny.py')
  config.tokenizer.path = str(tokenizer_path)
  counts = collections.Counter()
  from electra_jax.spec import run as run_spec
  eval_batches = pretraining.make_dataset(run_spec.load(config), 'eval')
  for batch in eval_batches.take(config.train.eval_steps):
    ids = batch['masked_lm_ids'].numpy()[batch['masked_lm_weights'].numpy() > 0]
    counts.update(ids.tolist())
  return counts.most_common(1)[0][1] / sum(counts.values())


@pytest.mark.slow
def test_tiny_quick_start_learns(repo_root, tmp_path):
  """The README's quick start, exactly as shipped: its discriminator must learn from context."""
  workdir = tmp_path / 'tiny'
  env = subprocess_env(1)
  env['XLA_FLAGS'] = ''  # as shipped: the CLI splits the CPU into devices (mesh.cpu_devices auto)
  env['XDG_CACHE_HOME'] = str(tmp_path / 'cache')
  result = subprocess.run(pretrain_command(repo_root, workdir), env=env, cwd=repo_root,
                          capture_output=True, text=True, timeout=1800)
  assert result.returncode == 0, result.stderr[-3000:]
  records = [json.loads(line) for line in (workdir / 'metrics.jsonl').read_text().splitlines()]
  evals = [r for r in records if 'eval_disc_auc' in r]
  final_eval = evals[-1]
  baseline = _unigram_baseline(repo_root, workdir / 'tokenizer' / 'builtin.model')
  print(f'tiny after {final_eval["step"]} steps: eval masked-LM accuracy '
        f'{final_eval["eval_masked_lm_accuracy"]:.3f} (unigram baseline {baseline:.3f}), eval disc '
        'AUC ' + ', '.join(
            f'{r["eval_disc_auc"]:.3f} (token-only {r["eval_disc_auc_token_only"]:.3f})'
            for r in evals))
  # Several evaluations, each with its context-free baseline, so the curve can be read.
  assert [r['step'] for r in evals] == [250, 500, 750, 1000, 1250, 1500]
  for r in evals:
    assert r['eval_disc_auc_context_gain'] == pytest.approx(
        r['eval_disc_auc'] - r['eval_disc_auc_token_only'], abs=1e-6)
    assert r['eval_disc_auc_with_padding'] > r['eval_disc_auc']
  # The discriminator learns from context (issue 11; WORKSPACE, research log): its eval AUC rises
  # at every evaluation and ends far above what token identity alone gives. Measured on 2 cores
  # (2 devices): 0.630, 0.685, 0.716, 0.735, 0.742, 0.755 (gain +0.235); on one device 0.632,
  # 0.694, 0.715, 0.735, 0.740, 0.751. The bounds leave room for another CPU's rounding.
  aucs = [r['eval_disc_auc'] for r in evals]
  assert all(later > earlier - 0.005 for earlier, later in zip(aucs, aucs[1:])), aucs
  assert aucs[-1] > aucs[0] + 0.08, aucs
  assert final_eval['eval_disc_auc'] >= 0.72
  assert final_eval['eval_disc_auc_context_gain'] >= 0.15
  assert final_eval['eval_masked_lm_accuracy'] > baseline  # the weak generator beats unigram
  assert (workdir / 'COMPLETED').exists()

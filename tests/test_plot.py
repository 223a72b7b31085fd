"""Learning-curve plots from metrics.jsonl: a real run's, a hand-written one's, and bad input."""

import json
import os
import struct
import subprocess
import sys

import pytest
from absl import flags

from electra_jax import errors
from electra_jax import plot

PNG_SIGNATURE = b'\x89PNG\r\n\x1a\n'


def png_size(path) -> tuple[int, int]:
  """(width, height) from a PNG's IHDR chunk; fails unless the file is a PNG."""
  data = open(path, 'rb').read()
  assert data[:8] == PNG_SIGNATURE and data[12:16] == b'IHDR', path
  return struct.unpack('>II', data[16:24])


def _write_metrics(directory, records):
  directory.mkdir(parents=True, exist_ok=True)
  with open(directory / 'metrics.jsonl', 'w') as f:
    for record in records:
      f.write(json.dumps(record) + '\n')
  return directory


def test_plot_of_a_real_run(trained_tiny_run, tmp_path):
  report = plot.plot_curves([trained_tiny_run.workdir], str(tmp_path / 'curves.png'))
  assert list(report) == ['total loss', 'generator masked-LM loss', 'generator masked-LM accuracy',
                          'discriminator loss', 'discriminator AUC',
                          'AUC context gain (AUC - token-only AUC)', 'learning rate', 'throughput',
                          'input wait share']
  # Eval points are marked too.
  assert report['discriminator AUC'] == ['AUC (train)', 'AUC (eval)', 'token-only baseline (eval)',
                                         'AUC with padding (train)', 'AUC with padding (eval)']
  assert report['AUC context gain (AUC - token-only AUC)'] == ['context gain (eval)']
  width, height = png_size(tmp_path / 'curves.png')
  assert (width, height) == (1200, 1600)  # 2 columns x 5 rows of 6 x 3.2 inches at 100 dpi
  assert os.path.getsize(tmp_path / 'curves.png') > 20_000


def test_token_only_baseline_context_gain_and_overlay(trained_tiny_run, tmp_path):
  """A hand-written run (a resumed step, a line cut by a kill) overlaid on the real one."""
  records = []
  for step in (100, 200, 300):
    records.append(dict(step=step, loss=20.0 - step / 100, disc_auc=0.6 + step / 1000,
                        tokens_per_sec=12000.0, data_wait_fraction=0.1, learning_rate=1e-3))
    records.append(dict(step=step, eval_disc_auc=0.6 + step / 1000, eval_disc_auc_token_only=0.62,
                        eval_disc_auc_context_gain=step / 1000 - 0.02,
                        eval_disc_auc_with_padding=0.7))
  records.append(dict(step=300, loss=1.0))  # a resumed run logs step 300 again: the last counts
  hand = _write_metrics(tmp_path / 'hand', records)
  with open(hand / 'metrics.jsonl', 'a') as f:
    f.write('{"step": 400, "loss": 3.')  # a run killed mid-line
  report = plot.plot_curves([str(hand)], str(tmp_path / 'hand.png'))
  assert report['discriminator AUC'] == ['AUC (train)', 'AUC (eval)', 'token-only baseline (eval)',
                                         'AUC with padding (eval)']
  assert report['AUC context gain (AUC - token-only AUC)'] == ['context gain (eval)']
  assert report['input wait share'] == ['waiting for data (train)']
  assert 'generator masked-LM loss' not in report  # nothing recorded, no empty panel
  assert plot.read_metrics(str(hand))['loss'] == {100: 19.0, 200: 18.0, 300: 1.0}

  overlay = plot.plot_curves([trained_tiny_run.workdir, str(hand)], str(tmp_path / 'both.png'))
  assert overlay['discriminator AUC'][:2] == ['workdir: AUC (train)', 'workdir: AUC (eval)']
  assert 'hand: token-only baseline (eval)' in overlay['discriminator AUC']
  assert len(overlay) == 9
  png_size(tmp_path / 'both.png')


def _cli(tmp_path, *argv):
  return subprocess.run([sys.executable, '-m', 'electra_jax.plot', *argv], capture_output=True,
                        text=True, cwd=tmp_path, timeout=120)


def test_cli_writes_the_default_file(tmp_path):
  run_dir = _write_metrics(tmp_path / 'run', [dict(step=1, loss=3.0), dict(step=2, loss=2.0)])
  result = _cli(tmp_path, f'--workdir={run_dir}')
  assert result.returncode == 0, result.stderr
  assert result.stdout.strip() == f'Wrote {run_dir}/curves.png: total loss.'
  png_size(run_dir / 'curves.png')
  result = _cli(tmp_path, '--wrokdir=x')  # absl's flag errors are one line too
  assert result.returncode == 2 and result.stderr.strip() == (
      "error: Unknown command line flag 'wrokdir'. Did you mean: workdir ? (see --helpfull)"), result.stderr


def _cli_error(capsys, *argv) -> str:
  """The in-process CLI's one-line error on `argv` (exit status 2 asserted)."""
  values = flags.FlagValues()
  plot.define_flags(values)
  with pytest.raises(SystemExit) as exit_info:
    errors.guard(plot.main)(values(['plot', *argv]), values)  # as startup.run runs it
  assert exit_info.value.code == 2
  lines = capsys.readouterr().err.strip().splitlines()
  assert len(lines) == 1 and lines[0].startswith('error: '), lines
  return lines[0]


def test_bad_input_is_a_one_line_error(tmp_path, capsys):
  run_dir = _write_metrics(tmp_path / 'run', [dict(step=1, loss=3.0)])
  values = flags.FlagValues()
  plot.define_flags(values)
  plot.main(values(['plot', f'--workdir={run_dir}']), values)  # the default output ...
  plot.main(values(['plot', f'--workdir={run_dir}']), values)  # ... is replaced on every call
  capsys.readouterr()
  assert f'--workdir={tmp_path} has no metrics.jsonl' in _cli_error(capsys,
                                                                     f'--workdir={tmp_path}')
  assert 'does not exist' in _cli_error(capsys, f'--workdir={tmp_path}/missing')
  mine = tmp_path / 'mine.png'
  mine.write_bytes(b'not yours')
  assert 'already exists: pass --overwrite' in _cli_error(capsys, f'--workdir={run_dir}',
                                                          f'--out={mine}')
  assert mine.read_bytes() == b'not yours'
  assert 'ending in .png' in _cli_error(capsys, f'--workdir={run_dir}', '--out=curves.svg')
  assert 'does not exist' in _cli_error(capsys, f'--workdir={run_dir}',
                                        f'--out={tmp_path}/no/such/c.png')
  assert '--workdir is required' in _cli_error(capsys, '--workdir=')
  assert '--dpi=0' in _cli_error(capsys, f'--workdir={run_dir}', '--dpi=0')
  assert 'holds no metrics record' in _cli_error(capsys,
                                                 f'--workdir={_write_metrics(tmp_path / "e", [])}')
  assert 'none of the keys' in _cli_error(
      capsys, f'--workdir={_write_metrics(tmp_path / "odd", [dict(step=1, other=2.0)])}',
      f'--out={tmp_path}/odd.png')

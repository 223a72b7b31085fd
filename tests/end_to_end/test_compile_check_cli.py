"""The compile check's CLI end to end (`python -m electra_jax.compile_check`): the table and exit 0
when the step fits; one error line, and with --suggest a setting that fits, when it does not."""

import os
import subprocess
import sys

import pytest

from cli_runs import assert_one_line_error  # tests/cli_runs.py
from libtpu_marks import needs_libtpu  # tests/libtpu_marks.py


def _cli(*args, timeout=900):
  env = dict(os.environ, JAX_PLATFORMS='cpu', TF_CPP_MIN_LOG_LEVEL='2')
  return subprocess.run([sys.executable, '-m', 'electra_jax.compile_check', *args], env=env,
                        capture_output=True, text=True, timeout=timeout, check=False)


@needs_libtpu
def test_cli_prints_the_table_and_exits_0_when_it_fits():
  result = _cli('--config=tiny', '--topology=v4-8', '--noeval')
  assert result.returncode == 0, result.stderr[-3000:]
  for row in ('mesh', 'HBM per device', 'fits', 'FLOPs per device', 'collectives',
              'compile time', 'roofline step', 'tokens/s', 'MFU', 'days'):
    assert row in result.stdout, result.stdout


@needs_libtpu
@pytest.mark.slow
def test_a_step_that_does_not_fit_is_one_error_line_and_suggest_names_a_fix():
  # tiny's activations at 16k x 128 per v4 core far exceed its 16 GiB; 8 micro-batches fit.
  args = ('--config=tiny', '--topology=v4-8', '--noeval', '--config.train.batch_size=131072')
  line = assert_one_line_error(_cli(*args))
  assert 'does not fit on v4-8' in line and '--suggest' in line
  line = assert_one_line_error(_cli(*args, '--suggest'))
  assert 'It fits with --config.' in line, line

"""Faults of long runs, through the real CLI: a full disk (a small tmpfs) and a lost host.

The other faults have their tests next to what they exercise; WORKSPACE.md's fault table lists
them all.
"""

import shutil
import subprocess

import pytest

from test_cli_errors import assert_one_line_error  # tests/test_cli_errors.py
from test_main import SMALL_OVERRIDES, _cli, _env  # tests/test_main.py

# One checkpoint of the SMALL_OVERRIDES model is ~0.9 MB: the first fits, the second does not.
SMALL_DISK = '1400k'


@pytest.fixture
def small_disk(tmp_path):
  mount_point = tmp_path / 'small_disk'
  mount_point.mkdir()
  mounted = subprocess.run(['mount', '-t', 'tmpfs', '-o', f'size={SMALL_DISK}', 'tmpfs',
                            str(mount_point)], capture_output=True, text=True, check=False)
  if mounted.returncode:
    pytest.skip(f'cannot mount a {SMALL_DISK} tmpfs here (needs root): {mounted.stderr.strip()}')
  yield mount_point
  subprocess.run(['umount', str(mount_point)], check=False)


@pytest.mark.slow
def test_a_full_disk_stops_with_one_line_and_the_copied_workdir_resumes(repo_root, tmp_path,
                                                                         small_disk):
  overrides = [o for o in SMALL_OVERRIDES if 'num_steps' not in o] + [
      '--config.train.num_steps=5', '--config.train.checkpoint_every=1']
  workdir = small_disk / 'run'
  full = subprocess.run(_cli(repo_root, workdir, *overrides), env=_env(1), cwd=repo_root,
                        capture_output=True, text=True, timeout=600)
  line = assert_one_line_error(full, ['No space left on device', f'{workdir}/checkpoints/',
                                      'checkpoint of step 1 is intact'])
  assert 'orbax' not in full.stderr.replace(line, ''), full.stderr[-3000:]

  roomy = tmp_path / 'roomy'
  shutil.copytree(workdir, roomy)
  resumed = subprocess.run(_cli(repo_root, roomy, *overrides), env=_env(1), cwd=repo_root,
                           capture_output=True, text=True, timeout=600)
  assert resumed.returncode == 0, resumed.stderr[-3000:]
  assert 'Resumed from the checkpoint at step 1' in resumed.stderr
  assert (roomy / 'COMPLETED').exists()

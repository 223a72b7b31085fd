"""Faults of long runs, through the real CLI: a full disk (a small tmpfs) and a lost host.

The other faults have their tests next to what they exercise; WORKSPACE.md's fault table lists
them all.
"""

import shutil
import signal
import socket
import subprocess
import time

import pytest

from cli_runs import SMALL_OVERRIDES, assert_one_line_error, pretrain_command, subprocess_env

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
  full = subprocess.run(pretrain_command(repo_root, workdir, *overrides), env=subprocess_env(1),
                        cwd=repo_root, capture_output=True, text=True, timeout=600)
  line = assert_one_line_error(full, ['No space left on device', f'{workdir}/checkpoints/',
                                      'checkpoint of step 1 is intact'])
  assert 'orbax' not in full.stderr.replace(line, ''), full.stderr[-3000:]

  roomy = tmp_path / 'roomy'
  shutil.copytree(workdir, roomy)
  resumed = subprocess.run(pretrain_command(repo_root, roomy, *overrides), env=subprocess_env(1),
                           cwd=repo_root, capture_output=True, text=True, timeout=600)
  assert resumed.returncode == 0, resumed.stderr[-3000:]
  assert 'Resumed from the checkpoint at step 1' in resumed.stderr
  assert (roomy / 'COMPLETED').exists()


def _free_port() -> int:
  with socket.socket() as s:
    s.bind(('127.0.0.1', 0))
    return s.getsockname()[1]


PEER_TIMEOUT_S = 10  # $ELECTRA_JAX_PEER_TIMEOUT_S for the test; the default is 60


@pytest.mark.slow
def test_a_lost_host_stops_the_survivor_with_one_line_and_both_resume(repo_root, tmp_path):
  workdir = tmp_path / 'run'
  env = {**subprocess_env(2), 'ELECTRA_JAX_PEER_TIMEOUT_S': str(PEER_TIMEOUT_S)}
  overrides = [o for o in SMALL_OVERRIDES if 'num_steps' not in o] + [
      '--config.train.checkpoint_every=2']

  def start(num_steps: int) -> list[subprocess.Popen]:
    port = _free_port()
    return [subprocess.Popen(  # logs to files: an unread pipe would block a chatty process
        pretrain_command(repo_root, workdir, *overrides, f'--config.train.num_steps={num_steps}',
             f'--coordinator_address=127.0.0.1:{port}', '--num_processes=2',
             f'--process_id={i}'),
        env=env, cwd=repo_root, stdout=open(tmp_path / f'out_{num_steps}_{i}', 'w'),
        stderr=open(tmp_path / f'err_{num_steps}_{i}', 'w'), text=True) for i in range(2)]

  def stderr(num_steps: int, i: int) -> str:
    return (tmp_path / f'err_{num_steps}_{i}').read_text()

  workers = start(100_000)
  deadline = time.time() + 400
  while not (workdir / 'checkpoints' / '4').exists():
    assert all(w.poll() is None for w in workers), stderr(100_000, 0)[-3000:]
    assert time.time() < deadline, 'training did not start'
    time.sleep(0.5)
  workers[1].send_signal(signal.SIGKILL)
  killed = time.time()
  workers[0].wait(timeout=PEER_TIMEOUT_S * 3)
  assert time.time() - killed < PEER_TIMEOUT_S * 7 / 6 + 5  # the stated bound, plus slack
  survivor = subprocess.CompletedProcess(workers[0].args, workers[0].returncode, '',
                                         stderr(100_000, 0))
  assert_one_line_error(survivor, ['process 1 of 2 has shown no sign of life'])
  workers[1].wait()

  saved = sorted(int(p.name) for p in (workdir / 'checkpoints').iterdir() if p.name.isdigit())
  workers = start(saved[-1] + 2)
  for i, worker in enumerate(workers):
    worker.wait(timeout=600)
    err = stderr(saved[-1] + 2, i)
    assert worker.returncode == 0, '\n'.join(
        line for line in err.splitlines() if line[:1] in 'EFe' or 'Error' in line)[-3000:]
    assert f'Resumed from the checkpoint at step {saved[-1]}' in err
  assert (workdir / 'COMPLETED').exists()

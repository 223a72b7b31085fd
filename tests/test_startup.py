"""`startup.run`, the entry point of every CLI: how a process ends after its `error:` line, with
one line when two threads fail, and the peer watchdog speaking first after a failed collective."""

import subprocess
import sys
import textwrap

import jax
import pytest

from electra_jax import errors
from electra_jax import startup

# A CLI whose main fails with a UserError while an object in a reference cycle would block the
# interpreter's final garbage collection forever (as a tf.data iterator whose interleave workers
# wait for the GIL does), and which registered an atexit handler.
_SCRIPT = textwrap.dedent('''
    import atexit, sys, time
    from electra_jax import startup
    from electra_jax.errors import UserError

    class BlocksCollection:
      def __del__(self):
        time.sleep(3600)

    def main(argv):
      stuck = BlocksCollection()
      stuck.cycle = stuck  # freed only by the final collection
      atexit.register(lambda: print('atexit ran', file=sys.stderr, flush=True))
      raise UserError('the data is broken: fix it.')

    startup.run(main)
''')


def test_a_cli_ends_after_its_error_line_even_when_finalisation_would_hang(tmp_path):
  result = subprocess.run([sys.executable, '-c', _SCRIPT], capture_output=True, text=True,
                          timeout=120, cwd=tmp_path)
  assert result.returncode == errors.EXIT_STATUS, result.stderr[-2000:]
  lines = result.stderr.strip().splitlines()
  assert 'error: the data is broken: fix it.' in lines
  assert lines[-1] == 'atexit ran'  # the handlers still run (peer watchdog, jax.distributed)


# A main thread that prints its error line while a second thread (the peer watchdog) ends the
# process at the same moment: one line, the first.
_TWO_FAILURES = textwrap.dedent('''
    import threading
    from electra_jax import errors

    try:
      errors.exit_with('the loop failed first.')
    except SystemExit:
      pass
    watchdog = threading.Thread(target=errors.exit_now, args=('a peer is lost.',))
    watchdog.start()
    watchdog.join()
''')


def test_a_process_prints_one_error_line_when_two_threads_fail():
  result = subprocess.run([sys.executable, '-c', _TWO_FAILURES], capture_output=True, text=True,
                          timeout=120)
  assert result.returncode == errors.EXIT_STATUS, result.stderr[-2000:]
  assert [l for l in result.stderr.splitlines() if l.startswith('error:')] == [
      'error: the loop failed first.']


class JaxRuntimeError(RuntimeError):
  """Named as jax's: what a failed gloo collective raises."""


def test_a_failed_collective_waits_for_the_peer_watchdogs_verdict(monkeypatch):
  slept = []
  monkeypatch.setattr(startup.time, 'sleep', slept.append)
  monkeypatch.setattr(startup, '_verdict_within_s', 12.0)
  monkeypatch.setattr(jax, 'process_count', lambda: 2)
  collective = JaxRuntimeError('Gloo AllGather failed: Connection reset by peer')

  def failing(error):
    def main(argv):
      del argv
      raise error
    return startup._peers_first(main)  # noqa: SLF001

  for error in (collective, errors.LostContactError('lost contact'), ValueError('a bug')):
    with pytest.raises(type(error)):
      failing(error)([])
  assert slept == [12.0, 12.0]  # the two collective failures, not the bug
  assert not errors.failed_collective(errors.UserError('a config error'))
  monkeypatch.setattr(jax, 'process_count', lambda: 1)
  assert not errors.failed_collective(collective)  # one process has no peer to lose
  monkeypatch.setattr(startup, '_verdict_within_s', 0.0)  # no watchdog running: no wait
  with pytest.raises(errors.LostContactError):
    failing(errors.LostContactError('lost contact'))([])
  assert slept == [12.0, 12.0]

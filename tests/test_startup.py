"""`startup.run`, the entry point of every CLI: how a process ends after its `error:` line."""

import subprocess
import sys
import textwrap

from electra_jax import errors

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

"""Bad input met mid-stream: one `error:` line naming the file and position, or skipped and counted.

`data.on_bad_record` decides, the same way for every source:

* 'error' (the default): the first bad record stops the run with one line that names the file and
  the line, row group or byte offset, and how to go on (nothing written so far is touched: the
  last checkpoint stays the run's latest);
* 'skip': the bad record (an undecodable JSON line, a record without its text field, a truncated
  gzip's missing tail, a corrupt record of a prepared shard, ...) is left out; the run counts it
  (`bad_records` in the metrics) and logs the first few by name.

Most checks run inside tf.data (`py_function` here, also for a check appended to a file's lines),
where a failure reaches the consumer as a `tf.errors.OpError` whose message wraps ours: the text is
tagged so that `user_error_from` finds it again, whatever TensorFlow wraps around it.
"""

import re
import threading

from absl import logging

from electra_jax.errors import UserError

NAMED = 5  # bad records named in the log (and kept in `BadRecordLog.first`)
_TAG = '<<bad-record>>'
_TAGGED = re.compile(re.escape(_TAG) + '(.*?)' + re.escape(_TAG), re.DOTALL)
_SKIP_HINT = (' Fix or remove it, or set --config.data.on_bad_record=skip to leave such '
              'records out (checkpoints written so far are kept).')


class BadRecordError(UserError):
  """A bad record under on_bad_record='error' (inside tf.data, `py_function` tags its text)."""

  def __init__(self, message: str):
    super().__init__(f'{message}{_SKIP_HINT}')


class BadRecordLog:
  """Bad records skipped in this process: a count and the first few messages (thread-safe)."""

  def __init__(self):
    self._lock = threading.Lock()
    self.count = 0
    self.first: list[str] = []

  def add(self, message: str) -> None:
    with self._lock:
      self.count += 1
      if len(self.first) < NAMED:
        self.first.append(message)
        logging.warning('Skipped bad record %d (data.on_bad_record=skip): %s', self.count, message)
      elif self.count == NAMED + 1:
        logging.warning('More bad records are skipped; only their count is reported from now on.')

  def reset(self) -> None:
    with self._lock:
      self.count, self.first = 0, []


# One per process: the readers of every source report here, the trainer reads it into its metrics.
LOG = BadRecordLog()


def report(message: str, policy: str) -> None:
  """A bad record: raises under 'error', counts it under 'skip'."""
  if policy == 'skip':
    LOG.add(message)
  else:
    raise BadRecordError(message)


def user_error_from(error: BaseException) -> UserError | None:
  """The UserError a tf.data failure stands for (a tagged bad record), or None."""
  found = _TAGGED.search(str(error))
  return UserError(found.group(1)) if found else None


def py_function(fn, inputs, dtypes, empty):
  """`tf.py_function(fn, inputs, dtypes)` whose BadRecordError fails the pipeline cleanly.

  An exception inside a py_function reaches the user with its Python traceback inside
  TensorFlow's message; here `fn`'s BadRecordError becomes an extra string output instead (the
  other outputs are then `empty`), and a graph assertion fails on it: the consumer sees only our
  tagged message.
  """
  import tensorflow as tf  # noqa: PLC0415 - this module stays light for the Python-side readers

  def body(*args):
    try:
      return (*fn(*args), b'')
    except BadRecordError as error:
      return (*empty, f'{_TAG}{error}{_TAG}'.encode())

  *outputs, error = tf.py_function(body, inputs, [*dtypes, tf.string])
  check = tf.debugging.Assert(tf.equal(error, ''), [error])
  with tf.control_dependencies([check]):
    return [tf.identity(output) for output in outputs]

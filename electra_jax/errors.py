"""The one error type for problems a user can fix, and how every command line reports it.

Raise `UserError` (never a bare ValueError) for a bad config value, path, data file, checkpoint
or missing credentials, with a message that names the culprit and the fix. Every command line
runs its main through `guard`, which prints such an error as one `error: ...` line on stderr and
exits with status 2; any other exception is a bug and keeps its traceback.

Kept free of heavy imports: `squad_eval` and the flag parsing of every CLI use it before
TensorFlow or jax are loaded.
"""

from __future__ import annotations

import functools
import os
import sys
import threading
from typing import Callable, NoReturn, TypeVar

EXIT_STATUS = 2  # what argparse and most Unix tools return for a usage error

# Failures of the environment rather than of the code: access to a path or bucket. TensorFlow's
# and google-auth's types are matched by name so that this module never imports them.
_ACCESS_ERRORS = ('PermissionDeniedError', 'UnauthenticatedError', 'DefaultCredentialsError',
                  'RefreshError')

_F = TypeVar('_F', bound=Callable)


class UserError(ValueError):
  """A problem the user can fix; its message names the culprit and the fix.

  A ValueError, so that callers (and tests) that catch ValueError keep working.
  """


class LostContactError(UserError):
  """A collective of a multi-process run failed (a peer killed, its host gone, the network cut).

  The peer watchdog (`startup.watch_peers`) knows which process was lost: the CLIs give it time
  to say so first (`startup.run`)."""


class MissingFileError(UserError, FileNotFoundError):
  """A file the user named, or that a run needs, does not exist (also a FileNotFoundError)."""


def require(condition: bool, message: str) -> None:
  """Raises UserError(message) unless `condition`."""
  if not condition:
    raise UserError(message)


def check_choice(field: str, value, choices) -> None:
  """`field=value` must be one of `choices`."""
  require(value in choices, f'{field}={value!r}: use one of {tuple(choices)}.')


def chain(error: BaseException) -> list[BaseException]:
  """`error`, its causes and contexts, and the members of exception groups, depth first."""
  found, stack = [], [error]
  while stack:
    current = stack.pop()
    if current is None or any(current is f for f in found):
      continue
    found.append(current)
    stack.extend(getattr(current, 'exceptions', ()) or ())
    stack.extend((current.__context__, current.__cause__))
  return found


# What jax raises when a collective (gloo on CPU, ICI/DCN on TPU) fails, matched by name so that
# this module never imports jax.
_COLLECTIVE_ERRORS = ('JaxRuntimeError', 'XlaRuntimeError')


def failed_collective(error: BaseException) -> bool:
  """Whether `error` is a failed collective of a multi-process run: a peer lost (killed, its host
  gone, the network cut), not a problem of this process."""
  if isinstance(error, LostContactError):
    return True
  jax = sys.modules.get('jax')
  return (jax is not None and jax.process_count() > 1
          and any(type(e).__name__ in _COLLECTIVE_ERRORS for e in chain(error)))


def one_line(message: object) -> str:
  """`message` with its lines joined, so a report is always a single line."""
  return ' '.join(part.strip() for part in str(message).splitlines() if part.strip())


# Two threads may fail at once (the loop, and the peer watchdog that ends the process): the
# process still prints one error line.
_printing = threading.Lock()
_printed = threading.Event()  # the main thread printed its error line


def exit_with(message: object) -> NoReturn:
  """Prints `error: <message>` on stderr and exits with status 2."""
  with _printing:
    print(f'error: {one_line(message)}', file=sys.stderr, flush=True)
    _printed.set()
  sys.exit(EXIT_STATUS)


def exit_now(message: object) -> NoReturn:
  """From a thread that ends the process while others may be stuck (`startup.watch_peers`):
  prints `error: <message>` unless the main thread already printed its line, and exits with
  status 2 at once, without unwinding any thread."""
  _printing.acquire()  # never released: the process ends here
  if not _printed.is_set():
    print(f'error: {one_line(message)}', file=sys.stderr, flush=True)
  sys.stdout.flush()
  os._exit(EXIT_STATUS)  # noqa: SLF001


def access_error_message(error: BaseException) -> str | None:
  """The one-line report of a denied access (permissions, credentials); None for anything else."""
  if isinstance(error, PermissionError):
    return f'permission denied: {error.filename or error}. Check the path\'s permissions.'
  if type(error).__name__ in _ACCESS_ERRORS:
    first = str(getattr(error, 'message', '') or error).strip().splitlines()
    return (f'access denied ({type(error).__name__}): {first[0] if first else ""}. For gs:// '
            'paths check the credentials (`gcloud auth application-default login`, or the VM\'s '
            'service account) and the bucket\'s permissions.')
  return None


def guard(main: _F) -> _F:
  """`main`, with a UserError or a denied access reported by `exit_with`."""

  @functools.wraps(main)
  def guarded(*args, **kwargs):
    try:
      return main(*args, **kwargs)
    except UserError as error:
      exit_with(error)
    except Exception as error:  # noqa: BLE001 - re-raised unless it is a denied access
      message = access_error_message(error)
      if message is None:
        raise
      exit_with(message)

  return guarded

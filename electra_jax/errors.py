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
import sys
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


class MissingFileError(UserError, FileNotFoundError):
  """A file the user named, or that a run needs, does not exist (also a FileNotFoundError)."""


def require(condition: bool, message: str) -> None:
  """Raises UserError(message) unless `condition`."""
  if not condition:
    raise UserError(message)


def check_choice(field: str, value, choices) -> None:
  """`field=value` must be one of `choices`."""
  require(value in choices, f'{field}={value!r}: use one of {tuple(choices)}.')


def one_line(message: object) -> str:
  """`message` with its lines joined, so a report is always a single line."""
  return ' '.join(part.strip() for part in str(message).splitlines() if part.strip())


def exit_with(message: object) -> NoReturn:
  """Prints `error: <message>` on stderr and exits with status 2."""
  print(f'error: {one_line(message)}', file=sys.stderr, flush=True)
  sys.exit(EXIT_STATUS)


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

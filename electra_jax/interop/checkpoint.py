"""Checkpoints: orbax `CheckpointManager` holding state, data-iterator state, config and tokenizer.

Layout of `WORKDIR/checkpoints/<step>/`:
  state/      the TrainState (orbax StandardSave: sharded arrays, restorable on any mesh)
  data/       one tf.train.Checkpoint of the input iterator per host (`process_<i>`)
  config/     the run's config as JSON
  tokenizer/  the tokenizer files, so a checkpoint is usable on its own
  resume/     JSON: the restart_from_step/skip_batches it was written under, batches skipped

Orbax writes a step into a temporary directory and renames it (or writes a commit marker on
GCS) only when every item on every host is done, so a half-written step is never listed. A
listed step that still fails to restore is skipped with a warning, falling back to the one before.
"""

from __future__ import annotations

import dataclasses
import logging as std_logging
import os
import shutil
import sys
import threading
import time
from typing import Any, Sequence

import jax
from jax.experimental import multihost_utils
import orbax.checkpoint as ocp
import tensorflow as tf
from absl import logging
from etils import epath

from electra_jax import errors
from electra_jax.errors import MissingFileError
from electra_jax.errors import UserError


# ---- Failed writes ---------------------------------------------------------------------------

class CheckpointWriteError(UserError):
  """A checkpoint could not be written (disk full, permission, object store): one error line."""


# Error types (matched by name anywhere in the exception's chain) that object stores raise for a
# passing condition: worth another try.
_TRANSIENT_ERRORS = ('UnavailableError', 'DeadlineExceededError', 'AbortedError',
                     'ConnectionError', 'ConnectionResetError', 'TimeoutError',
                     'ServiceUnavailable', 'TooManyRequests', 'InternalServerError', 'GatewayTimeout')
MAX_SAVE_RETRIES = 4  # transient failures of one checkpoint, retried after 2, 4, 8, 16 s


def failure_cause(error: BaseException) -> str:
  """What went wrong, in a few words: the OS's words when there are some ('No space left on
  device'), else the innermost error's type and first line."""
  chain = errors.chain(error)
  for current in chain:
    if isinstance(current, OSError) and current.strerror:
      return current.strerror
  for current in chain:
    for words in ('No space left on device', 'Permission denied', 'Disk quota exceeded',
                  'Read-only file system'):
      if words in str(current):
        return words
  inner = chain[-1]
  first = str(inner).strip().splitlines()
  return f'{type(inner).__name__}: {first[0] if first else ""}'.rstrip(': ')


def is_transient(error: BaseException) -> bool:
  return any(type(e).__name__ in _TRANSIENT_ERRORS for e in errors.chain(error))


_NOISY_LOGGERS = ('absl', 'asyncio')  # orbax logs through absl's logger


class _OrbaxFailureCapture(std_logging.Filter):
  """Takes orbax's own reports of a failed background save (ERROR records with tracebacks, and
  asyncio's about orbax's write tasks) off the console, to debug level; orbax's exception is
  kept for `Checkpointer.check_failed_save`, which reports the failure in one line."""

  def __init__(self):
    super().__init__()
    self.errors: list[BaseException] = []

  def filter(self, record: std_logging.LogRecord) -> bool:
    if record.levelno < std_logging.ERROR:
      return True
    if '/orbax/' in record.pathname and record.exc_info:
      self.errors.append(record.exc_info[1])
    elif not ('/asyncio/' in record.pathname and 'orbax' in record.getMessage()):
      return True  # asyncio's "Task exception was never retrieved" of orbax's writes: dropped
    logging.debug('%s', record.getMessage(), exc_info=record.exc_info)
    return False


def _is_closed_loop_report(error: BaseException | None) -> bool:
  """asyncio's "Event loop is closed", raised where orbax's write threads hand a finished write
  back to the loop of a save that already failed (tensorstore's C++ callbacks report it through
  `sys.unraisablehook`, Python threads through `threading.excepthook`)."""
  return isinstance(error, RuntimeError) and str(error) == 'Event loop is closed'


def _quiet_closed_loop_reports():
  """Routes those reports to the log at debug level; every other exception is printed as before.
  Installed once per process, by the first writing Checkpointer."""
  if getattr(sys.unraisablehook, 'electra_jax_quiet', False):
    return
  print_unraisable, print_thread_exception = sys.unraisablehook, threading.excepthook

  def unraisablehook(args):
    if _is_closed_loop_report(args.exc_value):
      logging.debug('After a failed checkpoint write: %r', args.exc_value)
    else:
      print_unraisable(args)

  def thread_excepthook(args):
    if _is_closed_loop_report(args.exc_value):
      logging.debug('After a failed checkpoint write (thread %s): %r', args.thread, args.exc_value)
    else:
      print_thread_exception(args)

  unraisablehook.electra_jax_quiet = True
  sys.unraisablehook, threading.excepthook = unraisablehook, thread_excepthook


# ---- Per-host tf.data iterator state --------------------------------------------------------
# orbax has no handler for tf.data iterators, so this small one writes a tf.train.Checkpoint per host.

class TfIteratorHandler(ocp.CheckpointHandler):
  """Saves/restores this host's tf.data iterator in `<item dir>/process_<index>`."""

  def save(self, directory: epath.Path, args: 'TfIteratorSave'):
    prefix = directory / f'process_{jax.process_index()}' / 'iterator'
    tf.train.Checkpoint(iterator=args.iterator).write(str(prefix))

  def restore(self, directory: epath.Path, args: 'TfIteratorRestore'):
    prefix = directory / f'process_{jax.process_index()}' / 'iterator'
    if not tf.io.gfile.exists(str(prefix) + '.index'):
      raise MissingFileError(
          f'No data-iterator state for process {jax.process_index()} in {directory}: was this '
          'checkpoint written with a different number of hosts?')
    tf.train.Checkpoint(iterator=args.iterator).read(str(prefix)).assert_consumed()
    return args.iterator


@ocp.args.register_with_handler(TfIteratorHandler, for_save=True)
@dataclasses.dataclass
class TfIteratorSave(ocp.args.CheckpointArgs):
  iterator: Any


@ocp.args.register_with_handler(TfIteratorHandler, for_restore=True)
@dataclasses.dataclass
class TfIteratorRestore(ocp.args.CheckpointArgs):
  iterator: Any


# ---- Plain files (the tokenizer) ------------------------------------------------------------

_ORBAX_COMMIT_MARKER = 'commit_success.txt'  # orbax writes it into every item directory


class FilesHandler(ocp.CheckpointHandler):
  """Copies a few small files into the checkpoint; restore returns their paths there."""

  def save(self, directory: epath.Path, args: 'FilesSave'):
    if jax.process_index() != 0:
      return
    for source in args.paths:
      tf.io.gfile.copy(source, str(directory / epath.Path(source).name), overwrite=True)

  def restore(self, directory: epath.Path, args: 'FilesRestore' = None):
    del args
    return sorted(str(directory / name) for name in tf.io.gfile.listdir(str(directory))
                  if name != _ORBAX_COMMIT_MARKER)


@ocp.args.register_with_handler(FilesHandler, for_save=True)
@dataclasses.dataclass
class FilesSave(ocp.args.CheckpointArgs):
  paths: Sequence[str]


@ocp.args.register_with_handler(FilesHandler, for_restore=True)
@dataclasses.dataclass
class FilesRestore(ocp.args.CheckpointArgs):
  pass


# ---- The manager -----------------------------------------------------------------------------

def checkpoint_dir(workdir: str) -> str:
  """`WORKDIR/checkpoints`, absolute: orbax cannot save or read under a relative local path."""
  if '://' not in str(workdir):
    workdir = os.path.abspath(workdir)
  return str(epath.Path(workdir) / 'checkpoints')


class Checkpointer:
  """Asynchronous, preemption-safe checkpoints of one training run."""

  def __init__(self, workdir: str, *, save_every: int, keep: int, keep_period: int,
               read_only: bool = False):
    options = ocp.CheckpointManagerOptions(
        save_interval_steps=max(save_every, 1),
        max_to_keep=max(keep, 1),
        keep_period=keep_period or None,
        enable_async_checkpointing=True,
        create=not read_only,
        read_only=read_only,
    )
    self._saving: int | None = None  # the step of the save in flight (not yet checked)
    self._retries = 0  # transient failures of the checkpoint being retried
    self._failed = False  # a write failed and was reported: close() stays quiet
    self._capture = None
    if not read_only:
      self._capture = _OrbaxFailureCapture()
      _quiet_closed_loop_reports()
      for name in _NOISY_LOGGERS:
        std_logging.getLogger(name).addFilter(self._capture)
    self._manager = ocp.CheckpointManager(
        checkpoint_dir(workdir), options=options,
        item_handlers={'state': ocp.StandardCheckpointHandler(), 'data': TfIteratorHandler(),
                       'config': ocp.JsonCheckpointHandler(), 'tokenizer': FilesHandler(),
                       'resume': ocp.JsonCheckpointHandler()})

  def all_steps(self) -> list[int]:
    return sorted(self._manager.all_steps())

  def save(self, step: int, state: Any, *, data_iterator: Any, config: dict,
           tokenizer_files: Sequence[str], force: bool = False, resume: dict | None = None
           ) -> bool:
    """Starts an asynchronous save (if `step` is a save step or `force`); returns whether it did."""
    if step in self._manager.all_steps():
      return False  # already saved (e.g. a periodic save right before a forced one)
    items = {'state': ocp.args.StandardSave(state), 'config': ocp.args.JsonSave(config),
             'tokenizer': FilesSave(list(tokenizer_files))}
    if data_iterator is not None:
      items['data'] = TfIteratorSave(data_iterator)
    if resume:
      items['resume'] = ocp.args.JsonSave(resume)
    if self._saving is not None:  # orbax waits for it anyway: surface its failure first
      self.wait(step)
    while True:
      try:
        started = self._manager.save(step, args=ocp.args.Composite(**items), force=force)
        break
      except Exception as error:  # noqa: BLE001 - reported as one line, or retried
        self._retry_or_raise(step, step, error)
    if started:
      self._saving = step
    return started

  def restore(self, step: int, abstract_state: Any, *, data_iterator: Any = None) -> Any:
    """Restores the state of `step` onto the shardings in `abstract_state`; also the iterator."""
    items = {'state': ocp.args.StandardRestore(abstract_state)}
    if data_iterator is not None:
      if tf.io.gfile.exists(self.item_directory(step, 'data')):
        items['data'] = TfIteratorRestore(data_iterator)
      else:  # e.g. a workdir written by `electra_jax.convert`, or a synthetic-data run
        logging.warning('Checkpoint %d has no data-iterator state: the input starts afresh.', step)
    return self._manager.restore(step, args=ocp.args.Composite(**items))['state']

  def restore_latest(self, abstract_state: Any, *, data_iterator: Any = None
                     ) -> tuple[int, Any] | None:
    """Restores the newest step that restores cleanly; None when there is none.

    A step that fails (truncated or corrupt files) is skipped with a warning and the previous
    one is tried, so a damaged latest checkpoint never poisons a run and is never loaded.
    """
    for step in reversed(self.all_steps()):
      try:
        return step, self.restore(step, abstract_state, data_iterator=data_iterator)
      except Exception as error:  # noqa: BLE001 - any failure means "not a usable checkpoint"
        logging.warning('Checkpoint at step %d cannot be restored (%s: %s); trying an older one.',
                        step, type(error).__name__, error)
    return None

  def restore_config(self, step: int) -> dict:
    return self._manager.restore(step, args=ocp.args.Composite(config=ocp.args.JsonRestore()))[
        'config']

  def restore_resume(self, step: int) -> dict:
    """The restart/skip record of `step` (`train._resume_point`); {} for older checkpoints."""
    if not tf.io.gfile.exists(self.item_directory(step, 'resume')):
      return {}
    return self._manager.restore(step, args=ocp.args.Composite(resume=ocp.args.JsonRestore()))[
        'resume']

  def set_aside_after(self, step: int) -> tuple[list[int], str] | None:
    """Moves the checkpoints after `step` out of the way, to `WORKDIR/checkpoints_after_<step>`
    (a numbered suffix if that exists), so that a restart from `step` saves and resumes its own
    steps while nothing is deleted. Returns (the moved steps, where), or None when there are
    none."""
    later = [s for s in self.all_steps() if s > step]
    if not later:
      return None
    source = epath.Path(self._manager.directory)
    target = source.parent / f'checkpoints_after_{step}'
    suffix = 1
    while target.exists():
      suffix += 1
      target = source.parent / f'checkpoints_after_{step}.{suffix}'
    multihost_utils.sync_global_devices(f'set aside after {step}: every host has looked')
    if jax.process_index() == 0:
      target.mkdir(parents=True)
      for later_step in later:
        (source / str(later_step)).rename(target / str(later_step))
    multihost_utils.sync_global_devices(f'checkpoints set aside after {step}')
    self._manager.reload()
    return later, str(target)

  def restore_tokenizer_files(self, step: int) -> list[str]:
    return self._manager.restore(step, args=ocp.args.Composite(tokenizer=FilesRestore()))[
        'tokenizer']

  def item_directory(self, step: int, item: str) -> str:
    return str(epath.Path(self._manager.directory) / str(step) / item)

  def check_failed_save(self, step: int) -> bool:
    """At a step boundary (`step`): whether the save in flight failed transiently and is due
    again (after a back-off sleep); raises CheckpointWriteError when it failed for good
    (LostContactError when a collective of a multi-process save failed: a peer, not the disk).
    Cheap while a save is running or none is pending."""
    if self._saving is None:
      return False
    error = None
    try:
      self._manager.check_for_errors()
    except Exception as raised:  # noqa: BLE001 - classified below
      error = raised
    if error is None:
      if self._manager.is_saving_in_progress():
        return False
      self._manager.reload()  # lists only the steps whose save completed
      if self._saving in self._manager.all_steps():
        self._saving, self._retries = None, 0
        return False
      captured = self._capture.errors if self._capture else []
      error = captured[-1] if captured else RuntimeError('see the log (-v=1) for orbax\'s report')
    failed, self._saving = self._saving, None
    self._retry_or_raise(failed, step, error)
    return True

  def _retry_or_raise(self, failed_step: int, step: int, error: BaseException):
    """Sleeps before another try of a transient failure; else raises CheckpointWriteError."""
    logging.debug('Checkpoint write of step %d failed.', failed_step, exc_info=error)
    if is_transient(error) and self._retries < MAX_SAVE_RETRIES:
      self._retries += 1
      delay = 2 ** self._retries
      logging.warning('Checkpoint of step %d: %s (transient); trying again in %d s (%d of %d).',
                      failed_step, failure_cause(error), delay, self._retries, MAX_SAVE_RETRIES)
      time.sleep(delay)
      return
    self._failed = True
    path = f'{self._manager.directory}/{failed_step}'
    self._manager.reload()
    intact = [s for s in self._manager.all_steps() if s != failed_step]
    kept = (f'The checkpoint of step {intact[-1]} is intact; rerun the same command to resume '
            'from it' if intact else 'No checkpoint is intact yet; a rerun starts afresh')
    if errors.failed_collective(error):
      raise errors.LostContactError(  # a collective of orbax's save: not the disk
          f'the processes of the run lost contact while writing the checkpoint of step '
          f'{failed_step} ({failure_cause(error)}). Training stopped at step {step}. {kept}, '
          'with all processes started again.') from None
    raise CheckpointWriteError(
        f'the checkpoint of step {failed_step} could not be written to {path}: '
        f'{failure_cause(error)}. Training stopped at step {step}. {kept}, once there is room '
        '(or copy the workdir to a disk with room and resume there with --workdir=COPY).'
    ) from None

  def wait(self, step: int | None = None):
    """Waits for the save in flight; with `step` (the loop's), also surfaces its failure."""
    try:
      self._manager.wait_until_finished()
    except Exception as error:  # noqa: BLE001 - the failure of the save in flight
      if step is None or self._saving is None:
        raise
      failed, self._saving = self._saving, None
      self._retry_or_raise(failed, step, error)
      return True
    return False if step is None else self.check_failed_save(step)

  def close(self):
    try:
      self._manager.wait_until_finished()
      self._manager.close()
    except Exception:  # noqa: BLE001
      if not self._failed:
        raise
      logging.debug('Closing the checkpoints after a failed write.', exc_info=True)
    finally:
      if self._capture is not None and not self._failed:  # else asyncio's late reports follow
        for name in _NOISY_LOGGERS:
          std_logging.getLogger(name).removeFilter(self._capture)


def copy_file(source: str, destination: str, overwrite: bool = False):
  """tf.io.gfile copy (works for gs://) creating the parent directory; local fast path. An
  existing `destination` is replaced only with `overwrite` (FileExistsError otherwise)."""
  tf.io.gfile.makedirs(str(epath.Path(destination).parent))
  if '://' not in source and '://' not in destination:
    if not overwrite and os.path.exists(destination):
      raise FileExistsError(f'{destination} already exists (copy_file without overwrite).')
    shutil.copyfile(source, destination)
  else:
    tf.io.gfile.copy(source, destination, overwrite=overwrite)

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
import os
import shutil
from typing import Any, Sequence

import jax
from jax.experimental import multihost_utils
import orbax.checkpoint as ocp
import tensorflow as tf
from absl import logging
from etils import epath

from electra_jax.errors import MissingFileError


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

class FilesHandler(ocp.CheckpointHandler):
  """Copies a few small files into the checkpoint; restore returns their paths there."""

  def save(self, directory: epath.Path, args: 'FilesSave'):
    if jax.process_index() != 0:
      return
    for source in args.paths:
      tf.io.gfile.copy(source, str(directory / epath.Path(source).name), overwrite=True)

  def restore(self, directory: epath.Path, args: 'FilesRestore' = None):
    del args
    return sorted(str(directory / name) for name in tf.io.gfile.listdir(str(directory)))


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
    if resume:
      items['resume'] = ocp.args.JsonSave(resume)
    if data_iterator is not None:
      items['data'] = TfIteratorSave(data_iterator)
    return self._manager.save(step, args=ocp.args.Composite(**items), force=force)

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

  def wait(self):
    self._manager.wait_until_finished()

  def close(self):
    self._manager.wait_until_finished()
    self._manager.close()


def copy_file(source: str, destination: str, overwrite: bool = False):
  """tf.io.gfile copy (works for gs://) creating the parent directory; local fast path."""
  tf.io.gfile.makedirs(str(epath.Path(destination).parent))
  if '://' not in source and '://' not in destination:
    shutil.copyfile(source, destination)
  else:
    tf.io.gfile.copy(source, destination, overwrite=overwrite)

"""Tests for electra_jax.interop.checkpoint: the orbax `Checkpointer` of a run, and its helpers.

A small pytree stands in for the train state, so each save takes a fraction of a second: round
trips of state, config, tokenizer files, resume record and tf.data iterator; which steps are
listed and kept; setting later steps aside; read-only use; `copy_file`; and how a failed write
is described (`failure_cause`) and classified (`is_transient`).
"""

import errno
import os
import pathlib

import jax
import jax.numpy as jnp
import numpy as np
import pytest
import tensorflow as tf
from etils import epath

from electra_jax.errors import MissingFileError
from electra_jax.interop import checkpoint as checkpoint_lib

CONFIG = {'model': {'hidden_size': 64, 'num_layers': 2}, 'tokenizer': {'path': 'spiece.model'},
          'train': {'learning_rate': 0.001}, 'seed': 7}


def _state(scale=1.0):
  return {'params': {'w': jnp.arange(6.0).reshape(2, 3) * scale, 'b': jnp.ones(3) * scale},
          'step': jnp.asarray(int(scale), jnp.int32)}


def _abstract(state):
  return jax.tree.map(lambda x: jax.ShapeDtypeStruct(x.shape, x.dtype, sharding=x.sharding),
                      state)


@pytest.fixture
def tokenizer_file(tmp_path):
  path = tmp_path / 'spiece.model'
  path.write_bytes(b'\x00sentencepiece model bytes\xff')
  return str(path)


def _checkpointer(workdir, **options):
  kwargs = {'save_every': 1, 'keep': 10, 'keep_period': 0} | options
  return checkpoint_lib.Checkpointer(str(workdir), **kwargs)


def _save_steps(workdir, steps, tokenizer_file, **options):
  checkpointer = _checkpointer(workdir, **options)
  for step in steps:
    checkpointer.save(step, _state(step), data_iterator=None, config=CONFIG,
                      tokenizer_files=[tokenizer_file], resume={'restart_from_step': step})
  checkpointer.close()


# ---- Round trips -----------------------------------------------------------------------------

def test_a_saved_step_restores_its_state_config_tokenizer_and_resume_record(tmp_path,
                                                                            tokenizer_file):
  checkpointer = _checkpointer(tmp_path)
  resume = {'restart_from_step': 2, 'skip_batches': 5, 'skipped': [3, 4]}
  assert checkpointer.save(3, _state(3.0), data_iterator=None, config=CONFIG,
                           tokenizer_files=[tokenizer_file], resume=resume)
  checkpointer.wait()
  assert checkpointer.all_steps() == [3]
  restored = checkpointer.restore(3, _abstract(_state()))
  jax.tree.map(np.testing.assert_array_equal, restored, _state(3.0))
  assert checkpointer.restore_config(3) == CONFIG
  assert checkpointer.restore_resume(3) == resume
  files = {os.path.basename(f): f for f in checkpointer.restore_tokenizer_files(3)}
  assert list(files) == ['spiece.model']  # not orbax's commit_success.txt marker
  assert pathlib.Path(files['spiece.model']).read_bytes() == pathlib.Path(
      tokenizer_file).read_bytes()
  assert files['spiece.model'].startswith(checkpointer.item_directory(3, 'tokenizer'))
  checkpointer.close()
  assert os.path.isdir(os.path.join(checkpoint_lib.checkpoint_dir(str(tmp_path)), '3', 'state'))


def test_a_step_saved_without_a_resume_record_reads_as_empty(tmp_path, tokenizer_file):
  checkpointer = _checkpointer(tmp_path)
  checkpointer.save(1, _state(), data_iterator=None, config=CONFIG,
                    tokenizer_files=[tokenizer_file])
  checkpointer.wait()
  assert checkpointer.restore_resume(1) == {}
  checkpointer.close()


def test_the_data_iterator_resumes_where_it_was_saved(tmp_path, tokenizer_file):
  iterator = iter(tf.data.Dataset.range(100).shuffle(100, seed=3))
  seen = [int(next(iterator)) for _ in range(5)]
  checkpointer = _checkpointer(tmp_path)
  checkpointer.save(5, _state(), data_iterator=iterator, config=CONFIG,
                    tokenizer_files=[tokenizer_file])
  checkpointer.wait()
  expected = [int(next(iterator)) for _ in range(5)]
  fresh = iter(tf.data.Dataset.range(100).shuffle(100, seed=3))
  checkpointer.restore(5, _abstract(_state()), data_iterator=fresh)
  checkpointer.close()
  assert [int(next(fresh)) for _ in range(5)] == expected
  assert set(expected).isdisjoint(seen)


def test_restoring_an_iterator_from_a_step_without_one_leaves_it_at_the_start(tmp_path,
                                                                             tokenizer_file):
  _save_steps(tmp_path, [1], tokenizer_file)
  fresh = iter(tf.data.Dataset.range(10))
  checkpointer = _checkpointer(tmp_path)
  checkpointer.restore(1, _abstract(_state()), data_iterator=fresh)
  checkpointer.close()
  assert int(next(fresh)) == 0


def test_restore_latest_skips_a_damaged_step_for_the_one_before(tmp_path, tokenizer_file):
  _save_steps(tmp_path, [1, 2], tokenizer_file)
  state_dir = os.path.join(checkpoint_lib.checkpoint_dir(str(tmp_path)), '2', 'state')
  for root, _, names in os.walk(state_dir):  # truncate every file of the newest state
    for name in names:
      open(os.path.join(root, name), 'wb').close()
  checkpointer = _checkpointer(tmp_path)
  step, state = checkpointer.restore_latest(_abstract(_state()))
  checkpointer.close()
  assert step == 1
  jax.tree.map(np.testing.assert_array_equal, state, _state(1.0))


def test_restore_latest_of_an_empty_workdir_is_none(tmp_path):
  checkpointer = _checkpointer(tmp_path)
  assert checkpointer.restore_latest(_abstract(_state())) is None
  checkpointer.close()


# ---- Which steps are saved and kept ----------------------------------------------------------

def test_only_save_steps_are_saved_unless_forced_and_none_twice(tmp_path, tokenizer_file):
  checkpointer = _checkpointer(tmp_path, save_every=4)
  save = lambda step, **kw: checkpointer.save(step, _state(), data_iterator=None, config=CONFIG,
                                              tokenizer_files=[tokenizer_file], **kw)
  assert save(4)
  assert not save(5)
  checkpointer.wait()
  assert save(6, force=True)
  checkpointer.wait()
  assert not save(6, force=True)  # already there
  checkpointer.close()
  assert checkpointer.all_steps() == [4, 6]


def test_all_steps_keeps_the_newest_steps_and_every_keep_period_step(tmp_path, tokenizer_file):
  _save_steps(tmp_path, range(1, 8), tokenizer_file, keep=2, keep_period=3)
  checkpointer = _checkpointer(tmp_path, keep=2, keep_period=3)
  assert checkpointer.all_steps() == [3, 6, 7]
  checkpointer.close()
  _save_steps(tmp_path / 'plain', range(1, 6), tokenizer_file, keep=2)
  checkpointer = _checkpointer(tmp_path / 'plain', keep=2)
  assert checkpointer.all_steps() == [4, 5]
  checkpointer.close()


# ---- Setting later steps aside ---------------------------------------------------------------

def test_set_aside_after_moves_later_steps_out_of_the_way_without_deleting(tmp_path,
                                                                          tokenizer_file):
  _save_steps(tmp_path, [1, 2, 3], tokenizer_file)
  checkpointer = _checkpointer(tmp_path)
  moved, where = checkpointer.set_aside_after(1)
  assert moved == [2, 3]
  assert where == str(tmp_path / 'checkpoints_after_1')
  assert checkpointer.all_steps() == [1]
  assert sorted(os.listdir(where)) == ['2', '3']
  assert os.path.isdir(os.path.join(where, '3', 'state'))
  assert checkpointer.set_aside_after(1) is None  # nothing later any more
  # A restart from step 1 saves its own step 2 next to the set-aside one.
  checkpointer.save(2, _state(20.0), data_iterator=None, config=CONFIG,
                    tokenizer_files=[tokenizer_file])
  checkpointer.wait()
  assert checkpointer.all_steps() == [1, 2]
  jax.tree.map(np.testing.assert_array_equal, checkpointer.restore(2, _abstract(_state())),
               _state(20.0))
  # Setting aside again never overwrites the first set.
  moved, again = checkpointer.set_aside_after(1)
  checkpointer.close()
  assert moved == [2] and again == str(tmp_path / 'checkpoints_after_1.2')
  assert sorted(os.listdir(where)) == ['2', '3']


def test_set_aside_steps_still_restore_from_where_they_went(tmp_path, tokenizer_file):
  _save_steps(tmp_path, [1, 2], tokenizer_file)
  checkpointer = _checkpointer(tmp_path)
  _, where = checkpointer.set_aside_after(1)
  checkpointer.close()
  # Put back under a workdir of their own, the moved steps are a readable run.
  os.makedirs(tmp_path / 'other')
  os.rename(where, tmp_path / 'other' / 'checkpoints')
  other = _checkpointer(tmp_path / 'other', read_only=True)
  assert other.all_steps() == [2]
  jax.tree.map(np.testing.assert_array_equal, other.restore(2, _abstract(_state())), _state(2.0))
  other.close()


# ---- Read-only use ---------------------------------------------------------------------------

def test_read_only_reads_a_run_and_creates_nothing(tmp_path, tokenizer_file):
  missing = tmp_path / 'missing'
  checkpointer = _checkpointer(missing, read_only=True)
  assert checkpointer.all_steps() == []
  checkpointer.close()
  assert not missing.exists()
  _save_steps(tmp_path / 'run', [1, 2], tokenizer_file)
  before = sorted(os.listdir(checkpoint_lib.checkpoint_dir(str(tmp_path / 'run'))))
  reader = _checkpointer(tmp_path / 'run', read_only=True, keep=1)  # keep=1 must delete nothing
  assert reader.all_steps() == [1, 2]
  assert reader.restore_config(2) == CONFIG
  jax.tree.map(np.testing.assert_array_equal, reader.restore(1, _abstract(_state())),
               _state(1.0))
  reader.close()
  assert sorted(os.listdir(checkpoint_lib.checkpoint_dir(str(tmp_path / 'run')))) == before


def test_checkpoint_dir_is_absolute_for_a_relative_workdir(tmp_path, monkeypatch):
  monkeypatch.chdir(tmp_path)
  assert checkpoint_lib.checkpoint_dir('run') == str(tmp_path / 'run' / 'checkpoints')
  assert checkpoint_lib.checkpoint_dir('gs://bucket/run') == 'gs://bucket/run/checkpoints'


def test_restoring_an_iterator_saved_by_another_host_count_names_the_problem(tmp_path):
  handler = checkpoint_lib.TfIteratorHandler()
  with pytest.raises(MissingFileError, match='different number of hosts'):
    handler.restore(epath.Path(tmp_path),
                    checkpoint_lib.TfIteratorRestore(iter(tf.data.Dataset.range(3))))


# ---- copy_file -------------------------------------------------------------------------------

def test_copy_file_creates_the_parent_directory_and_replaces_when_asked(tmp_path,
                                                                       tokenizer_file):
  destination = tmp_path / 'a' / 'b' / 'copy.model'
  checkpoint_lib.copy_file(tokenizer_file, str(destination))
  assert destination.read_bytes() == pathlib.Path(tokenizer_file).read_bytes()
  destination.write_bytes(b'old')
  checkpoint_lib.copy_file(tokenizer_file, str(destination), overwrite=True)
  assert destination.read_bytes() == pathlib.Path(tokenizer_file).read_bytes()


def test_copy_file_refuses_to_overwrite_a_local_file_unless_asked(tmp_path, tokenizer_file):
  destination = tmp_path / 'copy.model'
  destination.write_bytes(b'kept')
  with pytest.raises(FileExistsError, match='already exists'):
    checkpoint_lib.copy_file(tokenizer_file, str(destination))
  assert destination.read_bytes() == b'kept'


# ---- Describing failed writes ----------------------------------------------------------------

def _raised(outer, inner):
  """`outer`, raised from `inner` (its __cause__), as orbax chains a failed write."""
  try:
    try:
      raise inner
    except BaseException as error:
      raise outer from error
  except BaseException as chained:  # noqa: BLE001 - whatever `outer` is
    return chained


def test_failure_cause_prefers_the_operating_systems_words():
  error = _raised(RuntimeError('orbax: save failed'),
                  OSError(errno.ENOSPC, 'No space left on device'))
  assert checkpoint_lib.failure_cause(error) == 'No space left on device'
  error = _raised(RuntimeError('orbax: save failed'), OSError(errno.EIO, 'Input/output error'))
  assert checkpoint_lib.failure_cause(error) == 'Input/output error'


def test_failure_cause_finds_known_words_in_any_message_of_the_chain():
  error = _raised(RuntimeError('commit failed'),
                  ValueError('tensorstore: PERMISSION_DENIED: Permission denied on bucket x'))
  assert checkpoint_lib.failure_cause(error) == 'Permission denied'
  group = ExceptionGroup('writes', [ValueError('ok'), RuntimeError('Disk quota exceeded (122)')])
  assert checkpoint_lib.failure_cause(group) == 'Disk quota exceeded'


def test_failure_cause_otherwise_names_the_innermost_error_and_its_first_line():
  error = _raised(RuntimeError('outer'), LookupError('no shard 3\nsecond line'))
  assert checkpoint_lib.failure_cause(error) == 'LookupError: no shard 3'
  assert checkpoint_lib.failure_cause(_raised(RuntimeError('x'), TimeoutError())) == (
      'TimeoutError')


class UnavailableError(Exception):
  """Named as an object store's transient error (matched by name, wherever it comes from)."""


def test_transient_errors_are_recognised_anywhere_in_the_chain():
  assert checkpoint_lib.is_transient(UnavailableError('503'))
  assert checkpoint_lib.is_transient(_raised(RuntimeError('save failed'),
                                             ConnectionResetError('reset by peer')))
  assert checkpoint_lib.is_transient(ExceptionGroup('writes', [ValueError('x'),
                                                               TimeoutError('slow')]))
  assert not checkpoint_lib.is_transient(
      _raised(RuntimeError('save failed'), OSError(errno.ENOSPC, 'No space left on device')))
  assert not checkpoint_lib.is_transient(PermissionError('denied'))

"""The training loop on 8 emulated CPU devices: sharding invariance, accumulation, resume, NaN."""

import pathlib

import jax
import ml_collections
import numpy as np
import pytest

from electra_jax.pretraining import train
from saved_params import restore_params  # tests/saved_params.py
from small_run import read_metrics, small_config  # tests/small_run.py


@pytest.fixture(scope='module')
def mesh_run(repo_root, tmp_path_factory):
  """The reference run: 3 steps on a (data 2, fsdp 2, tensor 2) mesh of the 8 devices."""
  workdir = tmp_path_factory.mktemp('mesh_run')
  train.train_and_evaluate(small_config(repo_root, data=2, fsdp=2, tensor=2), str(workdir))
  return workdir


def test_same_losses_on_one_device_and_on_a_2x2x2_mesh(repo_root, tmp_path, mesh_run):
  train.train_and_evaluate(small_config(repo_root), str(tmp_path), devices=jax.devices()[:1])
  one, mesh = read_metrics(tmp_path), read_metrics(mesh_run)
  assert [r['step'] for r in one] == [1, 2, 3]
  np.testing.assert_allclose([r['loss'] for r in one], [r['loss'] for r in mesh], rtol=2e-5)
  np.testing.assert_allclose([r['grad_norm'] for r in one], [r['grad_norm'] for r in mesh],
                             rtol=1e-4)
  assert one[-1]['loss'] < one[0]['loss']  # it is learning something, with finite numbers


def test_four_micro_batches_equal_one_full_batch(repo_root, tmp_path, mesh_run):
  accumulated = small_config(repo_root, data=2, fsdp=2, tensor=2)
  accumulated.train.grad_accum_steps = 4
  train.train_and_evaluate(accumulated, str(tmp_path))
  full, accum = read_metrics(mesh_run), read_metrics(tmp_path)
  for key in ('loss', 'masked_lm_loss', 'disc_loss', 'grad_norm'):
    np.testing.assert_allclose([r[key] for r in full], [r[key] for r in accum], rtol=1e-4,
                               err_msg=key)
  for a, b in zip(jax.tree.leaves(restore_params(mesh_run, 3)),
                  jax.tree.leaves(restore_params(tmp_path, 3))):
    np.testing.assert_allclose(a, b, rtol=1e-4, atol=1e-6)


def test_metrics_records_have_the_documented_fields(mesh_run):
  record = read_metrics(mesh_run)[-1]
  for key in ('step', 'loss', 'learning_rate', 'grad_norm', 'tokens_per_sec', 'step_time_s',
              'tflops_per_device', 'masked_lm_accuracy', 'disc_auc', 'data_wait_fraction'):
    assert key in record, key
  assert 0.0 <= record['data_wait_fraction'] <= 1.0
  assert (mesh_run / 'COMPLETED').exists()
  assert list((mesh_run / 'tensorboard').iterdir())


def test_restore_onto_a_different_mesh_continues_the_same_run(repo_root, tmp_path, mesh_run):
  """2 steps on one device, then step 3 on the 2x2x2 mesh: the losses of the mesh run."""
  train.train_and_evaluate(small_config(repo_root), str(tmp_path), devices=jax.devices()[:1],
                           stop_after=2)
  train.train_and_evaluate(small_config(repo_root, data=2, fsdp=2, tensor=2), str(tmp_path))
  moved, mesh = read_metrics(tmp_path), read_metrics(mesh_run)
  assert [r['step'] for r in moved] == [1, 2, 3]
  np.testing.assert_allclose([r['loss'] for r in moved], [r['loss'] for r in mesh], rtol=2e-5)


def test_resume_after_a_stop_equals_an_uninterrupted_run(repo_root, tmp_path):
  """Real input pipeline (built-in corpus): the iterator state travels with the checkpoint."""
  def config():
    c = small_config(repo_root)
    c.data.source = 'builtin'
    c.model.vocab_size = 4096
    c.tokenizer.cache_dir = str(tmp_path / 'cache')
    c.train.num_steps = 10
    c.train.checkpoint_every = 5
    c.data.shuffle_buffer = 100
    return c

  train.train_and_evaluate(config(), str(tmp_path / 'straight'))
  train.train_and_evaluate(config(), str(tmp_path / 'resumed'), stop_after=5)
  assert not (tmp_path / 'resumed' / 'COMPLETED').exists()
  train.train_and_evaluate(config(), str(tmp_path / 'resumed'))
  straight, resumed = read_metrics(tmp_path / 'straight'), read_metrics(tmp_path / 'resumed')
  assert [r['step'] for r in resumed] == list(range(1, 11))
  np.testing.assert_array_equal([r['loss'] for r in straight], [r['loss'] for r in resumed])
  for a, b in zip(jax.tree.leaves(restore_params(tmp_path / 'straight', 10)),
                  jax.tree.leaves(restore_params(tmp_path / 'resumed', 10))):
    np.testing.assert_array_equal(a, b)


@pytest.mark.parametrize('prng_impl', ['rbg', 'unsafe_rbg'])
def test_resume_is_bit_exact_with_another_prng_impl(repo_root, tmp_path, mesh_run, prng_impl):
  """train.prng_impl makes the run's keys (no key is checkpointed: they are remade from the seed
  at every start), and a stopped run resumes to the very same numbers."""
  config = small_config(repo_root)
  config.train.prng_impl = prng_impl
  config.train.checkpoint_every = 2
  one_device = jax.devices()[:1]
  train.train_and_evaluate(config, str(tmp_path / 'straight'), devices=one_device)
  train.train_and_evaluate(config, str(tmp_path / 'resumed'), devices=one_device, stop_after=2)
  train.train_and_evaluate(config, str(tmp_path / 'resumed'), devices=one_device)
  straight, resumed = read_metrics(tmp_path / 'straight'), read_metrics(tmp_path / 'resumed')
  assert [r['step'] for r in resumed] == [1, 2, 3]
  np.testing.assert_array_equal([r['loss'] for r in straight], [r['loss'] for r in resumed])
  for a, b in zip(jax.tree.leaves(restore_params(tmp_path / 'straight', 3)),
                  jax.tree.leaves(restore_params(tmp_path / 'resumed', 3))):
    np.testing.assert_array_equal(a, b)
  # Other random numbers than threefry's (the reference run): the switch took effect.
  assert abs(straight[0]['loss'] - read_metrics(mesh_run)[0]['loss']) > 1e-3


def test_corrupt_latest_checkpoint_is_skipped(repo_root, tmp_path, caplog):
  config = small_config(repo_root)
  config.train.checkpoint_every = 1
  config.train.keep_checkpoints = 5
  train.train_and_evaluate(config, str(tmp_path), stop_after=2)
  step_dir = tmp_path / 'checkpoints' / '2' / 'state'
  for path in step_dir.rglob('*'):
    if path.is_file():
      path.write_bytes(b'garbage')
  config.train.checkpoint_every = 1000  # only the final save
  train.train_and_evaluate(config, str(tmp_path))  # resumes from step 1, with a warning
  assert 'Checkpoint at step 2 cannot be restored' in caplog.text
  steps = [r['step'] for r in read_metrics(tmp_path)]
  assert steps == [1, 2, 2, 3]


def test_non_finite_loss_stops_and_names_the_step(repo_root, tmp_path):
  config = small_config(repo_root)
  config.train.learning_rate = 1e30  # diverges within a couple of steps
  config.train.grad_clip_norm = 0.0
  config.train.num_steps = 20
  with pytest.raises(train.NonFiniteLossError, match=r'^step \d+: the .* became non-finite'):
    train.train_and_evaluate(config, str(tmp_path))
  assert not (tmp_path / 'COMPLETED').exists()


POISONED_BATCH = 4  # the synthetic batch (0-based) whose NaN weights make step 5 non-finite


@pytest.fixture
def poisoned_data(monkeypatch):
  """Synthetic batch POISONED_BATCH has NaN loss weights (a NaN loss and gradients); returns the
  list of batch numbers drawn, in order."""
  from electra_jax.data import synthetic  # noqa: PLC0415
  drawn, original = [], synthetic.synthetic_batch

  def batch(seed, step, **kwargs):
    drawn.append(step)
    arrays = original(seed, step, **kwargs)
    if step == POISONED_BATCH:
      arrays['masked_lm_weights'] = np.full_like(arrays['masked_lm_weights'], np.nan)
    return arrays

  monkeypatch.setattr(synthetic, 'synthetic_batch', batch)
  return drawn


def _checkpoint_steps(workdir) -> list[int]:
  return sorted(int(p.name) for p in (pathlib.Path(workdir) / 'checkpoints').iterdir()
                if p.name.isdigit())


def test_a_nan_run_is_taken_past_its_spike_by_the_documented_commands(
    repo_root, tmp_path, poisoned_data):
  config = small_config(repo_root)
  config.train.num_steps, config.train.checkpoint_every, config.train.keep_checkpoints = 8, 2, 10
  # The default stops at the first non-finite step, naming the way on; nothing of it is saved.
  with pytest.raises(train.NonFiniteLossError) as stop:
    train.train_and_evaluate(config, str(tmp_path))
  message = str(stop.value)
  assert message.startswith('step 5: the loss and gradients became non-finite'), message
  assert 'last good checkpoint is step 4' in message
  command = '--config.train.restart_from_step=4 --config.data.skip_batches=1'
  assert command in message and 'learning_rate' in message
  assert _checkpoint_steps(tmp_path) == [2, 4]

  config.train.restart_from_step = 3  # not a kept step: refused before any work
  with pytest.raises(train.UserError, match=r'restart_from_step=3: .* kept steps are \[2, 4\]'):
    train.train_and_evaluate(config, str(tmp_path))

  # The two commands of the message: resume from 4 past batch 4, to the end.
  config.train.restart_from_step, config.data.skip_batches = 4, 1
  poisoned_data.clear()
  metrics = train.train_and_evaluate(config, str(tmp_path))
  assert poisoned_data == [5, 6, 7, 8] and np.isfinite(metrics['loss'])
  assert (tmp_path / 'COMPLETED').exists() and _checkpoint_steps(tmp_path) == [2, 4, 6, 8]

  # The same command again, further: a plain resume (no second restart, no second skip).
  config.train.num_steps = 10
  poisoned_data.clear()
  train.train_and_evaluate(config, str(tmp_path))
  assert poisoned_data == [9, 10] and _checkpoint_steps(tmp_path) == [2, 4, 6, 8, 10]
  assert [r['step'] for r in read_metrics(tmp_path)] == [1, 2, 3, 4, 5, 6, 7, 8, 9, 10]


def test_restart_sets_later_checkpoints_aside(repo_root, tmp_path):
  config = small_config(repo_root)
  config.train.num_steps, config.train.checkpoint_every, config.train.keep_checkpoints = 4, 2, 10
  train.train_and_evaluate(config, str(tmp_path))
  config.train.restart_from_step = 2
  train.train_and_evaluate(config, str(tmp_path))
  assert _checkpoint_steps(tmp_path) == [2, 4]
  assert sorted(p.name for p in (tmp_path / 'checkpoints_after_2').iterdir()) == ['4']


def test_non_finite_steps_are_skipped_and_counted(repo_root, tmp_path, poisoned_data):
  config = small_config(repo_root)
  config.train.num_steps, config.train.checkpoint_every, config.train.keep_checkpoints = 6, 1, 10
  config.train.max_consecutive_nonfinite = 1
  train.train_and_evaluate(config, str(tmp_path))
  records = read_metrics(tmp_path)
  assert [r['nonfinite_steps'] for r in records] == [0, 0, 0, 0, 1, 0]
  assert not np.isfinite(records[4]['loss']) and np.isfinite(records[5]['loss'])
  for before, after in zip(jax.tree.leaves(restore_params(tmp_path, 4)),
                           jax.tree.leaves(restore_params(tmp_path, 5))):
    np.testing.assert_array_equal(before, after)  # step 5's update was not applied
  assert not np.array_equal(jax.tree.leaves(restore_params(tmp_path, 5))[0],
                            jax.tree.leaves(restore_params(tmp_path, 6))[0])


def test_workdir_of_another_model_is_refused(repo_root, mesh_run):
  other = small_config(repo_root, data=2, fsdp=2, tensor=2)
  other.model.num_layers = 2
  with pytest.raises(ValueError, match='different run.*num_layers'):
    train.train_and_evaluate(other, str(mesh_run))


@pytest.mark.parametrize('field, value, message', [
    ('train.batch_size', 12, 'not divisible by the 8 data-parallel devices'),
    ('model.num_heads', 3, 'does not divide'),
    ('mesh.data', 3, 'data\\*fsdp\\*tensor'),
    ('data.max_seq_length', 512, 'exceeds config.model.max_position_embeddings'),
])
def test_bad_configs_fail_before_compiling(repo_root, tmp_path, field, value, message):
  config = small_config(repo_root)
  section, name = field.split('.')
  config[section][name] = value
  with pytest.raises(ValueError, match=message):
    train.train_and_evaluate(config, str(tmp_path))
  assert not (tmp_path / 'checkpoints').exists()


def test_profile_steps_writes_a_trace_of_the_steps_after_the_warm_up(repo_root, tmp_path,
                                                                     monkeypatch):
  """train.profile_steps: a jax.profiler trace (`*.xplane.pb`, read by TensorBoard's profile
  plugin and XProf) in WORKDIR/profile, begun after the warm-up steps, ended after its steps."""
  config = small_config(repo_root)
  config.train.num_steps = 5
  config.train.profile_warmup_steps = 2
  config.train.profile_steps = 2
  calls = []  # (what, steps logged to metrics.jsonl when it was called)

  def recording(what, function):
    def wrapper(*args, **kwargs):
      calls.append((what, len(read_metrics(tmp_path))))
      return function(*args, **kwargs)
    return wrapper

  monkeypatch.setattr(jax.profiler, 'start_trace', recording('start', jax.profiler.start_trace))
  monkeypatch.setattr(jax.profiler, 'stop_trace', recording('stop', jax.profiler.stop_trace))
  train.train_and_evaluate(config, str(tmp_path), devices=jax.devices()[:1])
  assert calls == [('start', 2), ('stop', 4)]
  traces = list((tmp_path / 'profile').rglob('*.xplane.pb'))
  assert len(traces) == 1
  assert b'train_step' in traces[0].read_bytes()  # the compiled step ran inside the trace
  assert [r['step'] for r in read_metrics(tmp_path)] == [1, 2, 3, 4, 5]


def test_profile_of_a_remote_workdir_is_copied_there(tmp_path):
  """The profiler writes local files only: a URL workdir (gs:// on TPUs) receives a copy."""
  profile = train.ProfileWindow(
      ml_collections.ConfigDict(dict(profile_steps=1, profile_warmup_steps=1)),
      f'file://{tmp_path}', start_step=0)
  state = jax.numpy.ones(4)
  for steps_done in range(3):
    with profile.step(steps_done, state):
      state = state * 2
  profile.stop(state)
  assert len(list((tmp_path / 'profile').rglob('*.xplane.pb'))) == 1

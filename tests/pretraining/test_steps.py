"""Tests for electra_jax.pretraining.steps: the jitted init, train step and eval step.

A tiny ELECTRA (1 layer, 64 wide, no dropout) on one device, fed synthetic batches of 8 x 32
tokens: the step counter and parameters move, a non-finite batch or parameter changes nothing
but the counter and says why (`nonfinite`), two micro-batches make the update of one full
batch, and an evaluation is a fixed function of the batch index.
"""

import functools
import re

import flax.linen as nn
import jax
import jax.numpy as jnp
import ml_collections
import numpy as np
import pytest

from electra_jax.configs import default as default_config
from electra_jax.core import model as model_lib
from electra_jax.core import optimizer as optimizer_lib
from electra_jax.data import synthetic
from electra_jax.parallel import mesh as mesh_lib
from electra_jax.parallel import sharding
from electra_jax.pretraining import steps
from electra_jax.spec import run as run_spec
from model_configs import tiny_model_config  # tests/model_configs.py

BATCH, LENGTH = 8, 32


def _config(dropout=0.0, grad_accum_steps=1):
  config = default_config.get_config()
  tiny = tiny_model_config(num_layers=1, max_position_embeddings=LENGTH,
                           hidden_dropout_prob=dropout, attention_dropout_prob=dropout)
  config.model.update({k: tiny[k] for k in config.model})
  config.electra.update(generator_hidden_fraction=0.5, embedding_sharing='shared')
  config.data.source = 'synthetic'
  config.data.max_seq_length = LENGTH
  config.train.update(batch_size=BATCH, grad_accum_steps=grad_accum_steps, num_steps=100,
                      warmup_steps=0, learning_rate=1e-3)
  return config


class Harness:
  """The spec, model, optimizer, fresh state and jitted steps of a config, on one device."""

  def __init__(self, config: ml_collections.ConfigDict):
    self.spec = run_spec.load(config, num_devices=1)
    self.mesh = mesh_lib.make_mesh(self.spec.mesh, jax.devices()[:1])
    self.rules = self.spec.mesh.rules
    self.model = self.spec.objective.build_model(self.spec)
    self.tx = optimizer_lib.make_optimizer(config.train)
    self.base_rng = jax.random.key(1)
    self.init_fn = steps.make_init_fn(self.model, self.tx, self.spec.seq_length,
                                      self.spec.max_predictions)
    with self.scope():
      self.state = jax.jit(lambda rng: nn.meta.unbox(self.init_fn(rng)))(jax.random.key(0))
    self._train = jax.jit(functools.partial(steps.train_step, model=self.model, tx=self.tx,
                                            spec=self.spec, base_rng=self.base_rng))
    self._eval = jax.jit(functools.partial(steps.eval_step, model=self.model, spec=self.spec,
                                           base_rng=self.base_rng))

  def scope(self):
    return sharding.mesh_scope(self.mesh, self.rules)

  def batch(self, index=0):
    return synthetic.synthetic_batch(
        0, index, batch_size=BATCH, max_seq_length=LENGTH,
        max_predictions=self.spec.max_predictions, vocab_size=self.spec.discriminator.vocab_size)

  def train(self, state, batch):
    with self.scope():
      new_state, stats = self._train(state, batch)
    return new_state, jax.tree.map(np.asarray, stats)

  def eval(self, params, batch, index):
    with self.scope():
      return jax.tree.map(np.asarray, self._eval(params, batch, jnp.int32(index)))


@pytest.fixture(scope='module')
def harness():
  """Dropout off, so that micro-batches (each with its own dropout keys) add up exactly."""
  return Harness(_config())


def _trees_equal(a, b):
  return jax.tree.structure(a) == jax.tree.structure(b) and all(
      np.array_equal(x, y, equal_nan=True) for x, y in zip(jax.tree.leaves(a), jax.tree.leaves(b)))


# ---- batch_shapes ----------------------------------------------------------------------------

def test_batch_shapes_lists_every_key_the_step_reads_with_its_shape_and_dtype():
  shapes = steps.batch_shapes(8, 32, 5)
  assert tuple(shapes) == steps.BATCH_KEYS
  for key in ('input_ids', 'attention_mask', 'token_type_ids', 'masked_input_ids'):
    assert shapes[key] == ((8, 32), jnp.int32), key
  for key in ('masked_lm_positions', 'masked_lm_ids'):
    assert shapes[key] == ((8, 5), jnp.int32), key
  assert shapes['masked_lm_weights'] == ((8, 5), jnp.float32)


def test_the_synthetic_batches_the_step_is_tested_on_have_those_shapes(harness):
  batch = harness.batch()
  shapes = steps.batch_shapes(BATCH, LENGTH, harness.spec.max_predictions)
  assert {k: (v.shape, v.dtype) for k, v in batch.items()} == {
      k: (shape, np.dtype(dtype)) for k, (shape, dtype) in shapes.items()}


# ---- make_init_fn ----------------------------------------------------------------------------

def test_init_fn_gives_step_zero_and_a_fresh_optimizer_state(harness):
  state = harness.state
  assert int(state.step) == 0 and state.step.dtype == jnp.int32
  assert sorted(state.params) == ['discriminator', 'generator', 'shared_embeddings']
  expected = jax.eval_shape(lambda: nn.meta.unbox(model_lib.init_pretrainer_params(
      harness.model, jax.random.key(0), LENGTH, harness.spec.max_predictions)))
  assert jax.tree.map(np.shape, state.params) == jax.tree.map(lambda x: x.shape, expected)
  assert jax.tree.structure(state.opt_state) == jax.tree.structure(
      harness.tx.init(state.params))
  slots = [x for x in jax.tree.leaves(state.opt_state) if np.ndim(x) > 0]
  assert slots and all(not np.any(x) for x in slots)  # Adam's moments start at zero


def test_init_fn_is_a_function_of_its_key(harness):
  with harness.scope():
    init = jax.jit(lambda rng: nn.meta.unbox(harness.init_fn(rng)))
    again, other = init(jax.random.key(0)), init(jax.random.key(1))
  assert _trees_equal(again.params, harness.state.params)
  assert not _trees_equal(other.params, harness.state.params)


# ---- train_step ------------------------------------------------------------------------------

def test_a_step_advances_the_counter_and_changes_the_parameters(harness):
  state, stats = harness.train(harness.state, harness.batch())
  assert int(state.step) == 1
  assert stats['nonfinite'] == 0
  for key in ('total_loss', 'grad_norm', 'param_norm'):
    assert np.isfinite(stats[key]) and stats[key] > 0, key
  changed = [not np.array_equal(a, b) for a, b in
             zip(jax.tree.leaves(state.params), jax.tree.leaves(harness.state.params))]
  assert all(changed)  # every tensor gets a gradient (the LayerNorms and biases included)
  assert not _trees_equal(state.opt_state, harness.state.opt_state)
  state, _ = harness.train(state, harness.batch(1))
  assert int(state.step) == 2


def test_a_step_is_a_function_of_the_state_and_the_batch(harness):
  first, stats = harness.train(harness.state, harness.batch())
  second, again = harness.train(harness.state, harness.batch())
  assert _trees_equal(first.params, second.params)
  assert _trees_equal(stats, again)


def _assert_skipped(harness, state, new_state, stats):
  assert int(new_state.step) == int(state.step) + 1  # the counter (and the data) move on
  assert _trees_equal(new_state.params, state.params)
  assert _trees_equal(new_state.opt_state, state.opt_state)
  logged = {k: v for k, v in stats.items()
            if k not in ('total_loss', 'grad_norm', 'param_norm', 'nonfinite')}
  assert logged and all(np.all(v == 0) for v in logged.values())  # kept out of the window


def test_a_nan_batch_leaves_the_state_unchanged_and_says_the_loss_was_nonfinite(harness):
  batch = harness.batch()
  batch['masked_lm_weights'] = np.full_like(batch['masked_lm_weights'], np.nan)
  new_state, stats = harness.train(harness.state, batch)
  assert not np.isfinite(stats['total_loss'])
  assert stats['nonfinite'] & steps.NONFINITE_LOSS
  _assert_skipped(harness, harness.state, new_state, stats)


def test_a_nan_parameter_leaves_the_state_unchanged_and_flags_loss_and_gradients(harness):
  params = jax.tree.map(lambda x: x, harness.state.params)
  params['discriminator']['discriminator_predictions']['dense']['kernel'] = jnp.full_like(
      params['discriminator']['discriminator_predictions']['dense']['kernel'], jnp.nan)
  state = harness.state.replace(params=params)
  new_state, stats = harness.train(state, harness.batch())
  assert stats['nonfinite'] == steps.NONFINITE_LOSS | steps.NONFINITE_GRADS
  assert not np.isfinite(stats['grad_norm'])
  _assert_skipped(harness, state, new_state, stats)


def test_a_good_step_after_a_skipped_one_trains_as_from_the_old_state(harness):
  bad = harness.batch()
  bad['masked_lm_weights'] = np.full_like(bad['masked_lm_weights'], np.inf)
  skipped, _ = harness.train(harness.state, bad)
  after, stats = harness.train(skipped, harness.batch(1))
  assert stats['nonfinite'] == 0
  assert all(np.all(np.isfinite(x)) for x in jax.tree.leaves(after.params))
  assert not _trees_equal(after.params, harness.state.params)


def test_the_donated_state_is_updated_in_place_not_copied_first(harness):
  # Selecting between the old and the new state made XLA copy every donated state buffer
  # (parameters, mu, nu) before the update; the skip is a cond, which needs none of them.
  with harness.scope():
    step = jax.jit(functools.partial(steps.train_step, model=harness.model, tx=harness.tx,
                                     spec=harness.spec, base_rng=harness.base_rng),
                   donate_argnums=(0,))
    hlo = step.lower(harness.state, harness.batch()).compile().as_text()
  entry = hlo[hlo.index('\nENTRY'):]
  params = re.findall(r'^  %(\S+) = \S+ parameter\(', entry, re.M)
  copied = [p for p in params if re.search(rf'= \S+ copy\(%{re.escape(p)}\)', entry)]
  state_leaves = len(jax.tree.leaves(harness.state))
  assert len(params) > state_leaves  # the state's leaves and the batch's
  assert len(copied) < state_leaves // 10, copied[:5]  # a few small leaves may be


def test_two_micro_batches_make_the_update_of_the_full_batch(harness):
  full, accumulated = harness, Harness(_config(grad_accum_steps=2))
  assert accumulated.spec.grad_accum_steps == 2
  batch = full.batch()
  want_state, want = full.train(full.state, batch)
  got_state, got = accumulated.train(accumulated.state, batch)
  for key in ('total_loss', 'grad_norm', 'param_norm'):
    np.testing.assert_allclose(got[key], want[key], rtol=1e-5, err_msg=key)
  assert got['nonfinite'] == 0
  for key in want:
    np.testing.assert_allclose(got[key], want[key], rtol=1e-4, atol=1e-5, err_msg=key)
  for a, b in zip(jax.tree.leaves(got_state.params), jax.tree.leaves(want_state.params)):
    np.testing.assert_allclose(a, b, rtol=1e-5, atol=1e-6)
  assert int(got_state.step) == 1


# ---- eval_step -------------------------------------------------------------------------------

def test_eval_is_deterministic_for_a_batch_index_and_differs_between_indices(harness):
  params, batch = harness.state.params, harness.batch()
  first = harness.eval(params, batch, 3)
  assert _trees_equal(first, harness.eval(params, batch, 3))
  other = harness.eval(params, batch, 4)
  assert not _trees_equal(first, other)  # the generator samples other replacements
  assert 'total_loss' not in first
  assert all(np.all(np.isfinite(v)) for v in first.values())


def test_eval_uses_no_dropout(harness):
  """The same params in a model with dropout 0.3 give the same eval statistics."""
  params, batch = harness.state.params, harness.batch()
  with_dropout = Harness(_config(dropout=0.3))
  want = harness.eval(params, batch, 0)
  got = with_dropout.eval(params, batch, 0)
  for key in want:
    np.testing.assert_allclose(got[key], want[key], rtol=1e-6, atol=1e-7, err_msg=key)

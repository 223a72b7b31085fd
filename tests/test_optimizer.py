"""The reference optimizer: schedule shape, decay mask, Adam without bias correction, clipping."""

import jax
import jax.numpy as jnp
import ml_collections
import numpy as np
import optax
import pytest

from electra_jax import optimizer


def _train_config(**overrides):
  c = ml_collections.ConfigDict(dict(
      num_steps=100, warmup_steps=10, learning_rate=1e-3, weight_decay=0.01, adam_b1=0.9,
      adam_b2=0.999, adam_eps=1e-6, bias_correction=True, grad_clip_norm=1.0))
  c.update(overrides)
  return c


def test_schedule_warms_up_linearly_then_decays_to_zero():
  schedule = optimizer.learning_rate_schedule(_train_config())
  np.testing.assert_allclose([schedule(s) for s in (0, 5, 10, 55, 100)],
                             [0.0, 5e-4, 1e-3, 5e-4, 0.0], atol=1e-9)


def test_decay_mask_skips_biases_and_layernorm_even_when_layers_are_stacked():
  params = {'dense': {'kernel': jnp.ones((3, 4)), 'bias': jnp.ones(4)},
            'LayerNorm': {'scale': jnp.ones(4), 'bias': jnp.ones(4)},
            'scanned': {'kernel': jnp.ones((2, 3, 4)), 'bias': jnp.ones((2, 4))},
            'word_embeddings': {'embedding': jnp.ones((10, 4))}, 'output_bias': jnp.ones(10)}
  mask = optimizer.decay_mask(params)
  assert mask == {'dense': {'kernel': True, 'bias': False},
                  'LayerNorm': {'scale': False, 'bias': False},
                  'scanned': {'kernel': True, 'bias': False},
                  'word_embeddings': {'embedding': True}, 'output_bias': False}


def test_adam_without_bias_correction_matches_the_formula():
  tx = optimizer.scale_by_adam_without_bias_correction(0.9, 0.999, 1e-6)
  grads = {'w': jnp.array([0.5, -2.0])}
  state = tx.init(grads)
  updates, state = tx.update(grads, state)
  m = 0.1 * grads['w']
  v = 0.001 * grads['w'] ** 2
  np.testing.assert_allclose(updates['w'], m / (jnp.sqrt(v) + 1e-6), rtol=1e-6)
  # With bias correction the first update would be ~sign(g); without it, it is far larger.
  assert not np.allclose(updates['w'], jnp.sign(grads['w']), atol=0.1)


@pytest.mark.parametrize('bias_correction', [True, False])
def test_weight_decay_is_decoupled_and_masked(bias_correction):
  tx = optimizer.make_optimizer(_train_config(bias_correction=bias_correction,
                                              warmup_steps=0, learning_rate=0.1))
  params = {'kernel': jnp.ones((2, 2)), 'bias': jnp.ones(2)}
  zero_grads = jax.tree.map(jnp.zeros_like, params)
  updates, _ = tx.update(zero_grads, tx.init(params), params)
  # Zero gradients: only decay moves parameters, and only the kernel decays (lr * wd * p).
  np.testing.assert_allclose(updates['kernel'], -0.1 * 0.01 * np.ones((2, 2)), rtol=1e-6)
  np.testing.assert_allclose(updates['bias'], 0.0)


def test_gradients_are_clipped_to_global_norm_one():
  tx = optax.chain(optax.clip_by_global_norm(1.0))
  big = {'w': jnp.full((4,), 10.0)}
  clipped, _ = tx.update(big, tx.init(big))
  assert abs(float(optax.tree.norm(clipped)) - 1.0) < 1e-5
  full = optimizer.make_optimizer(_train_config(warmup_steps=0))
  # The chain's first element is the clip: the update it produces depends on clipped grads only.
  u1, _ = full.update(big, full.init(big), big)
  u2, _ = full.update(jax.tree.map(lambda g: g * 7, big), full.init(big), big)
  np.testing.assert_allclose(u1['w'], u2['w'], rtol=1e-5)

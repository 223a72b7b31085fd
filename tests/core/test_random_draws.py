"""The step's cheaper random draws are still the right ones.

Dropout masks take four draws from each threefry block (`model.dropout_keep_mask`), the Gumbel noise
two (`draws.uniform`); the samplers and the masked-LM accuracy take the argmax from two plain
reductions (`objective.first_argmax`).
The Gumbel-max sampler's frequencies against the softmax are checked by a chi-square test in
test_objective.py; bit-exact resume by test_train.py's resume tests, which run these draws.
"""

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np
import pytest

from electra_jax.core import draws
from electra_jax.core import model
from electra_jax.core import objective

_KEEP = 0.9
_QUANTISED = 58982 / 65536  # round(0.9 * 2**16) / 2**16


def _mask(key, shape, keep=_KEEP):
  mask, keep_prob = model.dropout_keep_mask(key, keep, shape)
  return np.asarray(mask), keep_prob


def _corr(a, b):
  return np.corrcoef(a.ravel().astype(np.float64), b.ravel().astype(np.float64))[0, 1]


def test_the_mask_rate_is_the_keep_probability():
  mask, keep_prob = _mask(jax.random.key(0), (64, 128, 256))
  assert keep_prob == _QUANTISED and abs(keep_prob - _KEEP) < 1e-5
  sigma = np.sqrt(_KEEP * (1 - _KEEP) / mask.size)
  assert abs(mask.mean() - keep_prob) < 4 * sigma, mask.mean()
  # Rates far from 0.9 too, and last axes that leave part of a block unused.
  for keep, shape in ((0.5, (3, 1001)), (0.99, (512, 257)), (0.1, (2, 64, 62)), (0.9, (5, 3))):
    mask, keep_prob = _mask(jax.random.key(1), shape, keep)
    assert mask.shape == shape
    assert abs(mask.mean() - keep_prob) < 4 * np.sqrt(keep * (1 - keep) / mask.size)


@pytest.mark.parametrize('impl, lanes', [('threefry2x32', 4), ('rbg', 2)])
def test_neighbours_drawn_from_one_random_block_are_independent(impl, lanes):
  # Elements lanes*j + i of the last axis share a threefry block (four 16-bit quarters) or, for
  # other PRNG implementations, a 32-bit word (two halves).
  mask, keep_prob = _mask(jax.random.key(2, impl=impl), (256, 128, 256))
  assert abs(mask.mean() - keep_prob) < 4 * np.sqrt(_KEEP * (1 - _KEEP) / mask.size)
  lane = [mask[..., i::lanes] for i in range(lanes)]
  bound = 4 / np.sqrt(lane[0].size)
  for i in range(lanes):
    for j in range(i + 1, lanes):
      assert abs(_corr(lane[i], lane[j])) < bound, (i, j)
  # Both kept as often as independence says.
  both = (lane[0] & lane[-1]).mean()
  assert abs(both - _QUANTISED**2) < 4 * np.sqrt(_QUANTISED**2 * (1 - _QUANTISED**2) / lane[0].size)


def test_masks_of_different_layers_and_steps_are_uncorrelated():
  # Layers get their keys from flax's per-module rng folding, steps from fold_in(base, step).
  base = jax.random.key(3)
  step_keys = [jax.random.fold_in(base, step) for step in range(3)]
  layer_keys = list(jax.random.split(step_keys[0], 3))
  masks = [_mask(k, (64, 128, 256))[0] for k in step_keys + layer_keys]
  bound = 4 / np.sqrt(masks[0].size)
  for i in range(len(masks)):
    for j in range(i + 1, len(masks)):
      assert abs(_corr(masks[i], masks[j])) < bound, (i, j)


def test_dropout_keeps_the_expected_value_and_zeroes_the_rest():
  x = jnp.ones((64, 128, 64))
  layer = model.Dropout(rate=1 - _KEEP)
  out = np.asarray(layer.apply({}, x, False, rngs={'dropout': jax.random.key(4)}))
  kept = out != 0
  np.testing.assert_allclose(out[kept], 1 / _QUANTISED, rtol=1e-6)  # exactly 1 / its keep rate
  assert abs(out.mean() - 1.0) < 4 * np.sqrt((1 - _QUANTISED) / _QUANTISED / out.size)
  assert np.array_equal(np.asarray(layer.apply({}, x, True)), np.asarray(x))


def test_dropout_masks_are_sharded_like_the_activations():
  # The draw is partitionable: the same mask whether the activations are split over devices.
  devices = np.array(jax.devices()[:8])
  mesh = jax.sharding.Mesh(devices, ('batch',))
  split = jax.sharding.NamedSharding(mesh, jax.P('batch'))
  draw = lambda k: model.dropout_keep_mask(k, _KEEP, (16, 32, 64))[0]
  whole = jax.jit(draw)(jax.random.key(5))
  sharded = jax.jit(draw, out_shardings=split)(jax.random.key(5))
  assert np.array_equal(np.asarray(whole), np.asarray(sharded))


@pytest.mark.parametrize('shape', [(7, 30522), (4, 19, 1000), (3, 5)])
def test_first_argmax_is_argmax(shape):
  x = jax.random.normal(jax.random.key(6), shape)
  assert np.array_equal(objective.first_argmax(x), jnp.argmax(x, -1))
  # Ties go to the first index, as jnp.argmax's.
  tied = jnp.zeros(shape).at[..., 2].set(1.0).at[..., -1].set(1.0)
  assert np.array_equal(objective.first_argmax(tied), jnp.argmax(tied, -1))
  assert objective.first_argmax(x).dtype == jnp.int32


def test_the_dropout_module_is_what_the_model_uses():
  # nn.Dropout (jax.random.bernoulli: one threefry block per element) is not used anywhere.
  import inspect
  from electra_jax.finetune import model as finetune_model
  for module in (model, finetune_model):
    assert 'nn.Dropout(' not in inspect.getsource(module)
  assert issubclass(model.Dropout, nn.Module)


def test_unit_floats_are_made_as_jax_random_uniform_makes_them():
  key = jax.random.key(7)
  bits = jax.random.bits(key, (1000,), jnp.uint32)
  assert np.array_equal(draws.unit_floats(bits), jax.random.uniform(key, (1000,)))


@pytest.mark.parametrize('impl, lanes', [('threefry2x32', 2), ('rbg', 1)])
def test_uniform_draws_are_uniform_and_both_words_of_a_block_independent(impl, lanes):
  assert draws.words_per_block(jax.random.key(0, impl=impl)) == lanes
  u = np.asarray(draws.uniform(jax.random.key(8, impl=impl), (64, 30522)), np.float64)
  assert u.shape == (64, 30522) and u.min() >= 0.0 and u.max() < 1.0
  # Kolmogorov-Smirnov distance to U[0, 1), at about the 1e-4 level of significance.
  ranked = np.sort(u.ravel())
  steps = np.arange(1, ranked.size + 1) / ranked.size
  assert np.max(np.abs(ranked - steps)) < 2.0 / np.sqrt(ranked.size)
  # Neighbours along the last axis come from the two words of one threefry block.
  bound = 4 / np.sqrt(u[:, 0::2].size)
  assert abs(_corr(u[:, 0::2], u[:, 1::2])) < bound
  assert abs(_corr(u[:, :-1], u[:, 1:])) < bound
  # Rows (counters over the leading axes) and keys are independent too.
  assert abs(_corr(u[:-1], u[1:])) < bound
  other = np.asarray(draws.uniform(jax.random.key(9, impl=impl), (64, 30522)))
  assert abs(_corr(u, other)) < bound


def test_gumbel_noise_is_the_same_on_any_mesh():
  devices = np.array(jax.devices()[:8])
  mesh = jax.sharding.Mesh(devices, ('batch',))
  split = jax.sharding.NamedSharding(mesh, jax.P('batch'))
  logits = jnp.zeros((16, 3, 101))
  keys = jax.random.split(jax.random.key(10), 16)
  whole = jax.jit(objective.gumbel_perturbed)(logits, keys)
  sharded = jax.jit(objective.gumbel_perturbed, out_shardings=split)(logits, keys)
  assert np.array_equal(np.asarray(whole), np.asarray(sharded))
  # Each example's noise comes from its own key: no two examples share it.
  noise = np.asarray(whole).reshape(16, -1)
  assert len({row.tobytes() for row in noise}) == 16

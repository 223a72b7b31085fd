"""The reference optimizer: schedule shape, decay mask, Adam without bias correction, clipping."""

import jax
import jax.numpy as jnp
import ml_collections
import numpy as np
import optax
import pytest

from electra_jax.core import optimizer


def _train_config(**overrides):
  fields = dict(
      num_steps=100, warmup_steps=10, learning_rate=1e-3, weight_decay=0.01, adam_b1=0.9,
      adam_b2=0.999, adam_eps=1e-6, bias_correction=True, grad_clip_norm=1.0)
  return ml_collections.ConfigDict({**fields, **overrides})


def _original_learning_rate(step, peak, num_train_steps, warmup_steps):
  """`create_optimizer`'s rate: polynomial_decay(power 1, cycle False) times the warm-up ramp."""
  decayed = peak * (1.0 - min(step, num_train_steps) / num_train_steps) ** 1.0
  return decayed * min(1.0, step / warmup_steps)


@pytest.mark.parametrize('num_steps, warmup_steps', [(100, 10), (1000, 100), (20, 2.5), (10, 40)])
def test_schedule_is_the_originals_at_chosen_steps(num_steps, warmup_steps):
  schedule = optimizer.learning_rate_schedule(
      _train_config(num_steps=num_steps, warmup_steps=warmup_steps))
  for step in sorted({0, 1, int(warmup_steps) // 2, int(warmup_steps), int(warmup_steps) + 1,
                      num_steps // 2, num_steps - 1, num_steps, num_steps + 5}):
    assert float(schedule(step)) == pytest.approx(
        _original_learning_rate(step, 1e-3, num_steps, warmup_steps), rel=1e-5, abs=1e-8), step


def test_schedule_peaks_below_the_peak_rate():
  """The decay starts at step 0: at the end of warm-up the rate is (1 - W/T) * lr, not lr."""
  schedule = optimizer.learning_rate_schedule(_train_config(num_steps=100, warmup_steps=10))
  rates = np.array([schedule(s) for s in range(101)])
  assert int(np.argmax(rates)) == 10 and rates.max() == pytest.approx(0.9e-3)


def test_schedule_without_warmup_decays_from_the_peak():
  schedule = optimizer.learning_rate_schedule(_train_config(warmup_steps=0))
  np.testing.assert_allclose([schedule(s) for s in (0, 50, 100)], [1e-3, 5e-4, 0.0], atol=1e-9)


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


# ---- Against the original's code (model/optimization.py), recomputed in numpy -----------------

def _original_adam_weight_decay_steps(params, grads_per_step, learning_rates, weight_decay=0.01,
                                      b1=0.9, b2=0.999, eps=1e-6, clip_norm=1.0):
  """`create_optimizer` + `AdamWeightDecayOptimizer._apply_gradients`, step by step in numpy.

  `params` maps TF-style variable names to arrays; `learning_rates[t]` is step t's rate.
  """
  import re  # noqa: PLC0415
  params = {k: np.array(v, np.float64) for k, v in params.items()}
  m = {k: np.zeros_like(v) for k, v in params.items()}
  v = {k: np.zeros_like(p) for k, p in params.items()}
  for grads, lr in zip(grads_per_step, learning_rates):
    norm = np.sqrt(sum(np.sum(np.square(g)) for g in grads.values()))
    # tf.clip_by_global_norm
    grads = {k: g * clip_norm / max(norm, clip_norm) for k, g in grads.items()}
    for name, grad in grads.items():
      m[name] = b1 * m[name] + (1.0 - b1) * grad
      v[name] = b2 * v[name] + (1.0 - b2) * np.square(grad)
      update = m[name] / (np.sqrt(v[name]) + eps)
      if not any(re.search(r, name) for r in ('LayerNorm', 'layer_norm', 'bias')):
        update += weight_decay * params[name]
      params[name] = params[name] - lr * update
  return params


# Our leaf paths and the original's variable names for the same kinds of parameters.
_TF_NAMES = {('dense', 'kernel'): 'dense/kernel', ('dense', 'bias'): 'dense/bias',
             ('LayerNorm', 'scale'): 'LayerNorm/gamma', ('LayerNorm', 'bias'): 'LayerNorm/beta'}


def _random_problem(steps, seed=0):
  rng = np.random.default_rng(seed)
  params = {'dense': {'kernel': rng.normal(size=(3, 4)), 'bias': rng.normal(size=4)},
            'LayerNorm': {'scale': rng.normal(size=4), 'bias': rng.normal(size=4)}}
  # Gradients both above and below the clipping norm.
  grads = [jax.tree.map(lambda p, s=s: rng.normal(size=p.shape) * (0.05 if s % 2 else 3.0),
                        params) for s in range(steps)]
  return params, grads


def _run_ours(tx, params, grads):
  params = jax.tree.map(lambda x: jnp.asarray(x, jnp.float32), params)
  state = tx.init(params)
  for g in grads:
    updates, state = tx.update(jax.tree.map(jnp.asarray, g), state, params)
    params = optax.apply_updates(params, updates)
  return params


def _flat(tree):
  return {_TF_NAMES[tuple(str(getattr(k, 'key', k)) for k in path)]: leaf
          for path, leaf in jax.tree_util.tree_flatten_with_path(tree)[0]}


def test_the_whole_default_chain_replays_the_originals_steps(repo_root):
  """Clipping, uncorrected Adam, decoupled decay and the schedule together, from step 0."""
  from electra_jax import startup  # noqa: PLC0415
  train_config = startup.load_config_file(repo_root / 'configs' / 'default.py').train
  train_config.update(num_steps=12, warmup_steps=4, learning_rate=1e-2)
  params, grads = _random_problem(steps=12, seed=1)
  ours = _run_ours(optimizer.make_optimizer(train_config), params, grads)
  rates = [_original_learning_rate(step, 1e-2, 12, 4) for step in range(12)]
  expected = _original_adam_weight_decay_steps(_flat(params), map(_flat, grads), rates)
  for name, value in _flat(ours).items():
    np.testing.assert_allclose(value, expected[name], rtol=2e-5, atol=1e-6, err_msg=name)


def test_default_adam_is_the_originals_without_bias_correction(repo_root):
  """The default configs (pre-training and fine-tuning) give the original's update exactly."""
  from electra_jax import startup  # noqa: PLC0415
  for path in ('default.py', 'finetune/finetune_default.py'):
    train_config = startup.load_config_file(repo_root / 'configs' / path).train
    assert train_config.bias_correction is False, path
    params, grads = _random_problem(steps=6)
    rates = [1e-2] * 6
    ours = _run_ours(optimizer.make_optimizer(train_config, schedule=lambda count: 1e-2),
                     params, grads)
    expected = _original_adam_weight_decay_steps(_flat(params), map(_flat, grads), rates)
    for name, value in _flat(ours).items():
      np.testing.assert_allclose(value, expected[name], rtol=2e-5, atol=1e-6, err_msg=name)
    # The switch gives a different (bias-corrected) trajectory.
    train_config.bias_correction = True
    corrected = _run_ours(optimizer.make_optimizer(train_config, schedule=lambda count: 1e-2),
                          params, grads)
    assert not np.allclose(_flat(corrected)['dense/kernel'], expected['dense/kernel'],
                           atol=1e-4)

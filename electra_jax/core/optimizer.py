"""The original's optimizer (`model/optimization.py`): AdamW without bias correction, clipping,
and its warm-up x linear-decay schedule."""

from __future__ import annotations

from typing import Any, NamedTuple

import jax
import jax.numpy as jnp
import ml_collections
import optax

from electra_jax.core import param_trees


def learning_rate_schedule(train_config: ml_collections.ConfigDict) -> optax.Schedule:
  """The original's schedule: `lr * (1 - t/T) * min(1, t/W)` (`model/optimization.py`).

  The linear decay runs from step 0, not from the end of warm-up, so the rate peaks at
  `(1 - W/T) * lr` at step W. `warmup_steps` may be fractional (fine-tuning's 10% of the steps,
  as the original computes it) and 0 (no warm-up). optax has no product of schedules, and the
  product is quadratic during warm-up, so no piecewise-linear combinator spells it.
  """
  decay = optax.linear_schedule(train_config.learning_rate, 0.0, train_config.num_steps)
  warmup = train_config.warmup_steps
  if warmup <= 0:
    return decay
  return lambda count: decay(count) * jnp.minimum(1.0, jnp.asarray(count, jnp.float32) / warmup)


def decay_mask(params: Any) -> Any:
  """True for parameters that get weight decay: everything but biases and LayerNorm parameters.

  Decided by the leaf's name (Flax names LayerNorm parameters `scale`/`bias`), not by rank, so
  the rule also holds when `scan_layers` stacks every layer's bias into a 2-D array.
  """

  def wants_decay(path, _):
    name = param_trees.path_key(path[-1])
    return not (name.endswith('bias') or name == 'scale')

  return jax.tree_util.tree_map_with_path(wants_decay, params)


class _AdamNoBiasCorrectionState(NamedTuple):
  mu: Any
  nu: Any


def scale_by_adam_without_bias_correction(b1: float, b2: float, eps: float
                                          ) -> optax.GradientTransformation:
  """The original ELECTRA/BERT Adam: m / (sqrt(v) + eps) with no 1 - beta^t correction.

  optax.scale_by_adam always bias-corrects, so this one variant is written here.
  """

  def init_fn(params):
    zeros = lambda p: jnp.zeros_like(p, dtype=jnp.float32)
    return _AdamNoBiasCorrectionState(jax.tree.map(zeros, params), jax.tree.map(zeros, params))

  def update_fn(updates, state, params=None):
    del params
    mu = jax.tree.map(lambda m, g: b1 * m + (1 - b1) * g, state.mu, updates)
    nu = jax.tree.map(lambda v, g: b2 * v + (1 - b2) * jnp.square(g), state.nu, updates)
    updates = jax.tree.map(lambda m, v: m / (jnp.sqrt(v) + eps), mu, nu)
    return updates, _AdamNoBiasCorrectionState(mu, nu)

  return optax.GradientTransformation(init_fn, update_fn)


def make_optimizer(train_config: ml_collections.ConfigDict,
                   schedule: optax.Schedule | None = None) -> optax.GradientTransformation:
  """AdamW (beta 0.9/0.999, eps 1e-6, decoupled weight decay 0.01) after global-norm clipping.

  Without bias correction by default, as the original's `AdamWeightDecayOptimizer`;
  `bias_correction=True` switches to optax's (standard) Adam.
  """
  schedule = schedule or learning_rate_schedule(train_config)
  t = train_config
  if t.bias_correction:
    adam = optax.scale_by_adam(b1=t.adam_b1, b2=t.adam_b2, eps=t.adam_eps)
  else:
    adam = scale_by_adam_without_bias_correction(t.adam_b1, t.adam_b2, t.adam_eps)
  return optax.chain(
      optax.clip_by_global_norm(t.grad_clip_norm) if t.grad_clip_norm > 0 else optax.identity(),
      adam,
      optax.add_decayed_weights(t.weight_decay, mask=decay_mask),
      optax.scale_by_learning_rate(schedule),
  )

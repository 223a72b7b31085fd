"""The jitted pieces of pre-training: the state's init, the train step and the eval step.

Everything here is a pure function of arrays; `train.py` wraps them in `jax.jit` with explicit
shardings (`sharding.py` creates the state sharded) and runs the loop.
"""

from __future__ import annotations

from typing import Any, Callable

import jax
import jax.numpy as jnp
import optax

from electra_jax.core import model as model_lib
from electra_jax.core import objective
from electra_jax.interop import train_state
from electra_jax.interop.train_state import TrainState

NONFINITE_LOSS, NONFINITE_GRADS = 1, 2  # the bits of the step's `nonfinite` statistic

BATCH_KEYS = ('input_ids', 'attention_mask', 'token_type_ids', 'masked_input_ids',
              'masked_lm_positions', 'masked_lm_ids', 'masked_lm_weights')


def batch_shapes(batch_size: int, max_seq_length: int,
                 max_predictions: int) -> dict[str, tuple[tuple[int, ...], Any]]:
  """Key -> (shape, dtype) of the global batch the input pipeline feeds (`data.masking`)."""
  per_position, per_slot = (batch_size, max_seq_length), (batch_size, max_predictions)
  return {'input_ids': (per_position, jnp.int32), 'attention_mask': (per_position, jnp.int32),
          'token_type_ids': (per_position, jnp.int32),
          'masked_input_ids': (per_position, jnp.int32),
          'masked_lm_positions': (per_slot, jnp.int32), 'masked_lm_ids': (per_slot, jnp.int32),
          'masked_lm_weights': (per_slot, jnp.float32)}


# ---- State ------------------------------------------------------------------------------------

def make_init_fn(model: model_lib.ElectraPretrainer, tx: optax.GradientTransformation,
                 max_seq_length: int, max_predictions: int) -> Callable[[jax.Array], TrainState]:
  def init_fn(rng):
    params = model_lib.init_pretrainer_params(model, rng, max_seq_length, max_predictions)
    return train_state.fresh(params, tx)
  return init_fn


# ---- Train step --------------------------------------------------------------------------------

def _split_micro_batches(tree: Any, num_micro: int) -> Any:
  """[batch, ...] -> [num_micro, batch // num_micro, ...], micro-batch i = examples i::num_micro.

  Strided rather than contiguous, so that each micro-batch still spreads over every device of
  the batch-sharded axis instead of living on a few of them.
  """
  def split(x):
    x = x.reshape((x.shape[0] // num_micro, num_micro) + x.shape[1:])
    return jnp.swapaxes(x, 0, 1)
  return jax.tree.map(split, tree)


def train_step(state: TrainState, batch: dict[str, jax.Array], *, model, tx, spec,
               base_rng: jax.Array) -> tuple[TrainState, dict[str, jax.Array]]:
  """One optimizer step on a global batch.

  masked batch -> generator -> sample (no gradient) -> discriminator -> combined loss ->
  gradients (summed over micro-batches when accumulating) -> clip -> AdamW.

  Args:
    state: the sharded TrainState (donated by the caller).
    batch: global arrays, [batch, length] and [batch, max_predictions].
    model, tx, spec: static; the ElectraPretrainer, the optax optimizer and the run spec
      (`spec.run.RunSpec`: its objective, options and micro-batches).
    base_rng: the run's key; this step uses `fold_in(base_rng, step)`.

  Returns:
    (new state, stats) where stats are the objective's summed statistics plus the scalars
    `total_loss`, `grad_norm` and `param_norm` for logging, and `nonfinite` (0 when the update
    was applied; else which of loss and gradients were non-finite, and nothing was applied).
  """
  rng = jax.random.fold_in(base_rng, state.step)
  sample_rng, dropout_rng = jax.random.split(rng)
  batch_size = batch['input_ids'].shape[0]
  sample_rngs = jax.random.split(sample_rng, batch_size)  # one key per example
  # Loss normalisers over the whole global batch, so micro-batch losses add up to the batch loss.
  normalizers = objective.loss_normalizers(batch)

  pretraining_loss = spec.objective.loss

  def loss_fn(params, micro_batch, micro_sample_rngs, micro_dropout_rng):
    return pretraining_loss(
        model, params, micro_batch, sample_rng=micro_sample_rngs, dropout_rng=micro_dropout_rng,
        deterministic=False, electra_config=spec.electra, normalizers=normalizers)

  grad_fn = jax.value_and_grad(loss_fn, has_aux=True)
  num_micro = spec.grad_accum_steps
  if num_micro == 1:
    (loss, stats), grads = grad_fn(state.params, batch, sample_rngs, dropout_rng)
  else:
    micro_batches = _split_micro_batches(batch, num_micro)
    micro_rngs = _split_micro_batches(sample_rngs, num_micro)

    def accumulate(carry, inputs):
      index, micro_batch, micro_sample_rngs = inputs
      (loss, stats), grads = grad_fn(state.params, micro_batch, micro_sample_rngs,
                                     jax.random.fold_in(dropout_rng, index))
      return jax.tree.map(jnp.add, carry, (loss, stats, grads)), None

    first = jax.tree.map(lambda x: x[0], (micro_batches, micro_rngs))
    shapes = jax.eval_shape(lambda: grad_fn(state.params, *first, dropout_rng))
    zeros = jax.tree.map(lambda s: jnp.zeros(s.shape, s.dtype), shapes)
    carry = (zeros[0][0], zeros[0][1], zeros[1])  # (loss, stats, grads)
    (loss, stats, grads), _ = jax.lax.scan(
        accumulate, carry, (jnp.arange(num_micro), micro_batches, micro_rngs))

  grad_norm = optax.tree.norm(grads)  # non-finite iff some gradient is

  def apply_update():
    with jax.named_scope('optimizer'):  # named for the profile in benchmarks/bench_train_step.py
      updates, opt_state = tx.update(grads, state.opt_state, state.params)
      return optax.apply_updates(state.params, updates), opt_state

  # A non-finite loss or gradient: the update is not applied (parameters and optimizer state stay
  # as they were); the step counter still advances, and so does the data (the loop draws the next
  # batch). The loop counts these steps and stops after train.max_consecutive_nonfinite in a row.
  # A cond, not a select of old and new: XLA copies every donated state buffer before a select
  # that still reads the old state (~800 copies for Small, about a quarter of the update's time
  # on CPU).
  loss_finite, grads_finite = jnp.isfinite(loss), jnp.isfinite(grad_norm)
  ok = loss_finite & grads_finite
  params, opt_state = jax.lax.cond(ok, apply_update, lambda: (state.params, state.opt_state))
  # A skipped step's statistics stay out of the logged window (they may be NaN).
  stats = jax.tree.map(lambda x: jnp.where(ok, x, jnp.zeros_like(x)), dict(stats))
  stats['total_loss'] = loss
  stats['grad_norm'] = grad_norm
  stats['param_norm'] = optax.tree.norm(params)
  # 0 = applied; else bit 1 = the loss and bit 2 = the gradients were non-finite (`NONFINITE_*`).
  stats['nonfinite'] = (jnp.where(loss_finite, 0, NONFINITE_LOSS)
                        + jnp.where(grads_finite, 0, NONFINITE_GRADS)).astype(jnp.int32)
  new_state = state.replace(step=state.step + 1, params=params, opt_state=opt_state)
  return new_state, stats


# ---- Eval step ---------------------------------------------------------------------------------

def eval_step(params: Any, batch: dict[str, jax.Array], batch_index: jax.Array, *, model, spec,
              base_rng: jax.Array) -> dict[str, jax.Array]:
  """Summed statistics of one held-out batch (no dropout; fixed sampling keys per batch index).

  Summing the returned stats over the whole eval set, then `objective.summarize`, gives metrics
  over the set, AUC included (its histogram is summed, not its per-batch values averaged).
  """
  rng = jax.random.fold_in(jax.random.fold_in(base_rng, 0x5EED), batch_index)
  sample_rngs = jax.random.split(rng, batch['input_ids'].shape[0])
  _, stats = spec.objective.loss(
      model, params, batch, sample_rng=sample_rngs, dropout_rng=rng, deterministic=True,
      electra_config=spec.electra)
  return stats

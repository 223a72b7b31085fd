"""ELECTRA's replaced-token detection ('electra', the default) and its 15% ablation ('electra_15').

'electra': `objective.pretraining_loss`, the original's loss on every real token.
'electra_15' (the paper's Table 5): the same networks and step, but the discriminator's loss and
metrics only at the masked positions, divided by the used mask slots.
"""

import jax
import jax.numpy as jnp
import optax

from electra_jax.core import objective
from electra_jax.core.objectives import base


class Electra(base.Objective):
  name = 'electra'

  def loss(self, model, params, batch, **kwargs):
    return objective.pretraining_loss(model, params, batch, **kwargs)


def masked_position_mask(batch: dict[str, jax.Array]) -> jax.Array:
  """[batch, length] float32: 1 at the positions of USED mask slots, else 0."""
  used = (batch['masked_lm_weights'] > 0).astype(jnp.float32)
  return jax.vmap(lambda row, pos, val: row.at[pos].max(val))(
      jnp.zeros(batch['input_ids'].shape, jnp.float32), batch['masked_lm_positions'], used)


class Electra15(base.Objective):
  name = 'electra_15'

  def main_loss(self, model, variables, batch, generated, *, rngs, deterministic,
                electra_config, num_slots, num_tokens, compute_auc):
    e = electra_config
    corrupted_ids = generated.corrupted_ids
    token_weights = batch['attention_mask'].astype(jnp.float32)
    disc_logits = model.apply(variables, corrupted_ids, batch['token_type_ids'],
                              batch['attention_mask'], deterministic,
                              method=model.discriminator_logits, rngs=rngs).astype(jnp.float32)
    weights = masked_position_mask(batch) * token_weights  # the masked positions only
    replaced = (corrupted_ids != batch['input_ids']).astype(jnp.float32) * token_weights * weights
    disc_loss_sum = jnp.sum(optax.sigmoid_binary_cross_entropy(disc_logits, replaced) * weights)
    stats = dict(generated.stats)
    stats.update(objective.disc_stats(disc_logits, replaced, weights, corrupted_ids,
                                      generated.logits.shape[-1], compute_auc))
    stats['disc_loss_sum'] = disc_loss_sum
    stats['weighted_disc_loss_sum'] = e.disc_weight * disc_loss_sum
    total = generated.weighted_loss(num_slots) + e.disc_weight * disc_loss_sum / num_slots
    return total, stats


ELECTRA = Electra()
ELECTRA_15 = Electra15()

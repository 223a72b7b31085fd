"""BERT ('mlm'): one encoder of the discriminator's size with a masked-LM head tied to its own
word embeddings, no generator, and BERT's 80/10/10 masking whatever `config.data` says."""

import jax.numpy as jnp
import optax

from electra_jax.core import flops
from electra_jax.core import model as model_lib
from electra_jax.core import objective
from electra_jax.core.objectives import base

# Of the masked positions 80% [MASK], 10% a random token, 10% kept.
BERT_MASKING = (0.8, 0.1)


class Mlm(base.Objective):
  name = 'mlm'
  has_generator = False
  main_network = model_lib.Generator
  main_export = 'masked_lm'
  detector = None

  def masking_probs(self, data_config):
    return BERT_MASKING

  def main_loss(self, model, variables, batch, generated, *, rngs, deterministic,
                electra_config, num_slots, num_tokens, compute_auc):
    targets = batch['masked_lm_ids']
    logits = model.apply(variables, batch['masked_input_ids'], batch['token_type_ids'],
                         batch['attention_mask'], batch['masked_lm_positions'], deterministic,
                         method=model.main_outputs, rngs=rngs).astype(jnp.float32)
    nll = optax.softmax_cross_entropy_with_integer_labels(logits, targets)
    stats = objective.lm_stats('masked_lm', logits, targets,
                               batch['masked_lm_weights'].astype(jnp.float32), nll)
    stats['weighted_masked_lm_loss_sum'] = stats['masked_lm_loss_sum']  # weight 1, as BERT's
    if compute_auc:
      stats.update(base.no_token_counts(logits.shape[-1]))
    return stats['masked_lm_loss_sum'] / num_slots, stats

  def summarize(self, stats, token_reference=None):
    metrics = base.lm_metrics(stats, 'masked_lm')
    metrics['loss'] = base.ratio(stats['weighted_masked_lm_loss_sum'], stats['masked_lm_count'])
    return metrics

  def main_head_flops_per_token(self, spec):
    return flops.masked_lm_at_slots_flops_per_token(spec.discriminator, spec.masked_fraction)

MLM = Mlm()

"""The paper's two masked-LM ablations on a generator-corrupted input (Table 5).

'replace_mlm': masked positions get generator samples instead of [MASK]; the main network is a
masked LM on that corrupted input, trained on the masked positions.
'all_tokens_mlm': as 'replace_mlm', but the main network predicts the identity of EVERY token,
with the paper's copy mechanism: a sigmoid gate D(x~, t) puts probability D on the input token
and (1 - D) on the masked-LM softmax,
    p(x_t | x~) = D(x~, t) [x_t = x~_t] + (1 - D(x~, t)) softmax(x_t).
The gate is a replaced-token detector too (a replaced token should not be copied): its metrics
score -gate, and the inspector shows 1 - D.

Losses: the generator keeps `gen_weight`; the main masked LM's cross-entropy has weight 1.
"""

import flax.linen as nn
import jax
import jax.numpy as jnp
import ml_collections
import optax

from electra_jax.core import flops
from electra_jax.core import model as model_lib
from electra_jax.core import objective
from electra_jax.core.objectives import base


class AllTokensNetwork(nn.Module):
  """Main network of 'all_tokens_mlm': a masked-LM softmax at EVERY position plus a copy gate.

  Returns (lm_logits [batch, length, vocab] float32, gate_logits [batch, length] float32), where
  sigmoid(gate_logits) = D(x~, t), the probability put on copying the input token. The gate is a
  `DiscriminatorHead` (dense + GELU + dense(1)) named `discriminator_predictions`, the softmax
  the generator's head layout (`generator_predictions`, `generator_lm_head`).
  """
  config: ml_collections.ConfigDict
  reads_positions = False

  @nn.compact
  def __call__(self, input_ids, token_type_ids, attention_mask, deterministic: bool = True,
               embedding_tables=None):
    c = self.config
    embedding_tables = model_lib.tables_or_own(c, embedding_tables)
    hidden = model_lib.encode(self, c, embedding_tables, input_ids, token_type_ids,
                              attention_mask, deterministic)
    gate_logits = model_lib.DiscriminatorHead(c, name='discriminator_predictions')(hidden)
    projected = model_lib.GeneratorHead(c, name='generator_predictions')(hidden)
    lm_logits = model_lib.tied_output_logits(
        c, projected, embedding_tables,
        model_lib.OutputBias(c.vocab_size, name='generator_lm_head')())
    return lm_logits, gate_logits


def copy_mechanism_nll(lm_logits, gate_logits, input_ids, target_ids):
  """-log p(target | input) with p = D [target = input] + (1 - D) softmax(target), D = sigma(gate).

  All [batch, length] (logits [batch, length, vocab]); computed in log space.
  """
  log_softmax = jax.nn.log_softmax(lm_logits.astype(jnp.float32), axis=-1)
  log_p_softmax = jnp.take_along_axis(log_softmax, target_ids[..., None], axis=-1)[..., 0]
  log_copy, log_no_copy = jax.nn.log_sigmoid(gate_logits), jax.nn.log_sigmoid(-gate_logits)
  log_p = jnp.where(target_ids == input_ids,
                    jnp.logaddexp(log_copy, log_no_copy + log_p_softmax),
                    log_no_copy + log_p_softmax)
  return -log_p


class ReplaceMlm(base.Objective):
  name = 'replace_mlm'
  main_network = model_lib.Generator
  main_export = 'masked_lm'
  detector = None

  def main_loss(self, model, variables, batch, generated, *, rngs, deterministic,
                electra_config, num_slots, num_tokens, compute_auc):
    stats = dict(generated.stats)
    main = self._main_outputs(model, variables, batch, generated, rngs, deterministic)
    total, main_stats = self._main_lm_loss(main, batch, generated, num_slots, num_tokens,
                                           compute_auc)
    stats.update(main_stats)
    token_weights = batch['attention_mask'].astype(jnp.float32)
    replaced = (generated.corrupted_ids != batch['input_ids']).astype(jnp.float32) * token_weights
    stats['replaced_count'] = jnp.sum(replaced)
    return generated.weighted_loss(num_slots) + total, stats

  @staticmethod
  def _main_outputs(model, variables, batch, generated, rngs, deterministic):
    return model.apply(variables, generated.corrupted_ids, batch['token_type_ids'],
                       batch['attention_mask'], batch['masked_lm_positions'], deterministic,
                       method=model.main_outputs, rngs=rngs)

  def _main_lm_loss(self, main, batch, generated, num_slots, num_tokens, compute_auc):
    targets = batch['masked_lm_ids']
    logits = main.astype(jnp.float32)
    nll = optax.softmax_cross_entropy_with_integer_labels(logits, targets)
    stats = objective.lm_stats('main_mlm', logits, targets,
                               batch['masked_lm_weights'].astype(jnp.float32), nll)
    if compute_auc:  # no detector; the replaced counts still describe the generator
      stats.update(base.no_token_counts(logits.shape[-1]))
    return stats['main_mlm_loss_sum'] / num_slots, stats

  def summarize(self, stats, token_reference=None):
    metrics = base.lm_metrics(stats, 'masked_lm')
    metrics['loss'] = base.ratio(stats['weighted_masked_lm_loss_sum'], stats['masked_lm_count'])
    metrics['sampled_masked_lm_accuracy'] = base.ratio(stats['sampled_masked_lm_correct'],
                                                       stats['masked_lm_count'])
    metrics.update(base.lm_metrics(stats, 'main_mlm'))
    metrics['loss'] = metrics['loss'] + metrics['main_mlm_loss']
    return metrics

  def main_head_flops_per_token(self, spec):
    return flops.masked_lm_at_slots_flops_per_token(spec.discriminator, spec.masked_fraction)


class AllTokensMlm(ReplaceMlm):
  name = 'all_tokens_mlm'
  main_network = AllTokensNetwork
  detector = 'copy_gate'

  def replaced_logits(self, main_outputs):
    return -main_outputs[1]  # P(replaced) = 1 - D, the probability of not copying

  def _main_lm_loss(self, main, batch, generated, num_slots, num_tokens, compute_auc):
    lm_logits, gate_logits = main
    token_weights = batch['attention_mask'].astype(jnp.float32)
    nll = copy_mechanism_nll(lm_logits, gate_logits, generated.corrupted_ids, batch['input_ids'])
    stats = objective.lm_stats('main_mlm', lm_logits, batch['input_ids'], token_weights, nll)
    # The gate as a replaced-token detector: a replaced token should not be copied.
    replaced = (generated.corrupted_ids != batch['input_ids']).astype(jnp.float32) * token_weights
    stats.update(objective.disc_stats(self.replaced_logits(main).astype(jnp.float32), replaced,
                                      token_weights, generated.corrupted_ids,
                                      lm_logits.shape[-1], compute_auc))
    return stats['main_mlm_loss_sum'] / num_tokens, stats

  def summarize(self, stats, token_reference=None):
    metrics = super().summarize(stats, token_reference)
    metrics['replaced_fraction'] = base.ratio(stats['replaced_count'], stats['disc_count'])
    metrics['disc_accuracy'] = base.ratio(stats['disc_tp'] + stats['disc_tn'], stats['disc_count'])
    metrics.update(objective.auc_metrics(stats, token_reference))  # the gate's, as a detector
    return metrics

  def main_head_flops_per_token(self, spec):
    # The masked-LM head at every position, plus the copy gate (a discriminator head).
    return (flops.masked_lm_head_flops(spec.discriminator)
            + flops.discriminator_head_flops_per_token(spec.discriminator))


REPLACE_MLM = ReplaceMlm()
ALL_TOKENS_MLM = AllTokensMlm()

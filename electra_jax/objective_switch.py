"""The paper's comparison objectives (`config.electra.objective`), next to ELECTRA's own.

ELECTRA (Clark et al. 2020, section 3.2 and Table 5) separates where its gain over BERT comes
from with three ablations. Each is a switch here, sharing the pipeline, sharding, checkpoints and
metrics plumbing of `objective.py`:

  'electra'         replaced-token detection on every token: `objective.pretraining_loss`,
                    unchanged (the default).
  'mlm'             BERT: one encoder of the discriminator's size with a masked-LM head tied to
                    its word embeddings, no generator; BERT's 80/10/10 masking
                    (`validate.masking_probs`).
  'electra_15'      ELECTRA, but the discriminator's loss (and its metrics) only on the masked
                    positions.
  'replace_mlm'     masked positions get generator samples instead of [MASK]; the main network
                    is a masked LM on that corrupted input, trained on the masked positions.
  'all_tokens_mlm'  as 'replace_mlm', but the main network predicts the identity of EVERY token,
                    with the paper's copy mechanism: a sigmoid gate D(x, t) puts probability D on
                    the input token and (1 - D) on the masked-LM softmax,
                    p(x_t | x~) = D(x~, t) [x_t = x~_t] + (1 - D(x~, t)) softmax(x_t).

The joint parameter tree keeps the names of `model.ElectraPretrainer`: `discriminator` is always
the MAIN network (the one kept and fine-tuned; for the MLM objectives a masked LM laid out as
`model.Generator`, for 'all_tokens_mlm' plus the gate as `discriminator_predictions`),
`generator` the small generator when there is one, and `shared_embeddings` /
`embeddings_delta` as `electra.embedding_sharing` says. For 'mlm' the main network holds its
own `embeddings`. So `split_params` yields standalone trees that `hf.py` writes as
`ElectraForMaskedLM` (masked LMs) or `ElectraForPreTraining` (discriminators).

Losses: the generator's masked LM keeps `gen_weight`; a discriminator's loss `disc_weight`; a
main masked LM's cross-entropy has weight 1 (BERT's). Stats are sums and counts as in
`objective.py`, so accumulation and eval sets add up exactly; `summarize` reads them.
"""

from __future__ import annotations

from typing import Any

import flax.linen as nn
import jax
import jax.numpy as jnp
import ml_collections
import optax

from electra_jax import model as model_lib
from electra_jax import objective
from electra_jax import param_trees
from electra_jax import validate
from electra_jax.errors import UserError
from electra_jax.validate import OBJECTIVES

HAS_GENERATOR = ('electra', 'electra_15', 'replace_mlm', 'all_tokens_mlm')
HAS_DISCRIMINATOR = ('electra', 'electra_15', 'all_tokens_mlm')  # the gate is one (scores: -D)
# What the main network is written as in a Hugging Face export.
MAIN_ARCHITECTURE = {'electra': 'discriminator', 'electra_15': 'discriminator',
                     'mlm': 'generator', 'replace_mlm': 'generator',
                     'all_tokens_mlm': 'generator'}


def objective_of(config: ml_collections.ConfigDict) -> str:
  """`config.electra.objective`; 'electra' for configs saved before the switch existed."""
  name = config.electra.get('objective', 'electra')
  if name not in OBJECTIVES:
    raise UserError(f'config.electra.objective={name!r}: use one of {OBJECTIVES}.')
  return name


# ---- Models ------------------------------------------------------------------------------------

class AllTokensNetwork(nn.Module):
  """Main network of 'all_tokens_mlm': a masked-LM softmax at EVERY position plus a copy gate.

  Returns (lm_logits [batch, length, vocab] float32, gate_logits [batch, length] float32), where
  sigmoid(gate_logits) = D(x~, t), the probability put on copying the input token. The gate is a
  `DiscriminatorHead` (dense + GELU + dense(1)) named `discriminator_predictions`, the softmax
  the generator's head layout (`generator_predictions`, `generator_lm_head`).
  """
  config: ml_collections.ConfigDict

  @nn.compact
  def __call__(self, input_ids, token_type_ids, attention_mask, deterministic: bool = True,
               embedding_tables=None):
    c = self.config
    embedding_tables = model_lib.tables_or_own(c, embedding_tables)
    hidden = model_lib.encode(self, c, embedding_tables, input_ids, token_type_ids,
                              attention_mask, deterministic)
    gate_logits = model_lib.DiscriminatorHead(c, name='discriminator_predictions')(hidden)
    projected = model_lib.GeneratorHead(c, name='generator_predictions')(hidden)
    dtype = model_lib.compute_dtype(c.dtype)
    lm_logits = jnp.einsum('ble,ve->blv', projected.astype(dtype),
                           embedding_tables['word_embeddings'].astype(dtype),
                           preferred_element_type=jnp.float32)
    lm_logits = lm_logits + model_lib.OutputBias(c.vocab_size, name='generator_lm_head')()
    return lm_logits, gate_logits


class ComparisonPretrainer(nn.Module):
  """The networks of 'mlm', 'replace_mlm' and 'all_tokens_mlm' (see the module docstring).

  `gen_config` is None for 'mlm'. Embedding sharing between generator and main network follows
  `model.ElectraPretrainer` ('shared', 'gdes', 'none').
  """
  disc_config: ml_collections.ConfigDict
  gen_config: ml_collections.ConfigDict | None
  embedding_sharing: str
  objective: str

  def setup(self):
    if self.gen_config is not None and self.embedding_sharing != 'none':
      self.shared_embeddings = model_lib.EmbeddingTables(self.disc_config)
      if self.embedding_sharing == 'gdes':
        self.embeddings_delta = model_lib.EmbeddingTables(self.disc_config, zeros=True)
    if self.gen_config is not None:
      self.generator = model_lib.Generator(self.gen_config)
    if self.objective == 'all_tokens_mlm':
      self.discriminator = AllTokensNetwork(self.disc_config)
    else:
      self.discriminator = model_lib.Generator(self.disc_config)

  def _main_tables(self):
    if self.gen_config is None:  # 'mlm': the main network holds its own tables
      return None
    return model_lib.discriminator_tables(self, self.embedding_sharing)

  def generator_logits(self, input_ids, token_type_ids, attention_mask, masked_lm_positions,
                       deterministic: bool = True):
    """[batch, num_positions, vocab] float32 logits of the generator at the positions."""
    tables = None if self.embedding_sharing == 'none' else self.shared_embeddings()
    return self.generator(input_ids, token_type_ids, attention_mask, masked_lm_positions,
                          deterministic, embedding_tables=tables)

  def main_outputs(self, input_ids, token_type_ids, attention_mask, masked_lm_positions,
                   deterministic: bool = True):
    """Masked LM: [batch, num_positions, vocab] logits; all-tokens: (lm_logits, gate_logits)."""
    if self.objective == 'all_tokens_mlm':
      return self.discriminator(input_ids, token_type_ids, attention_mask, deterministic,
                                embedding_tables=self._main_tables())
    return self.discriminator(input_ids, token_type_ids, attention_mask, masked_lm_positions,
                              deterministic, embedding_tables=self._main_tables())

  def __call__(self, input_ids, token_type_ids, attention_mask, masked_lm_positions,
               deterministic: bool = True):
    """Every network on the same input (used to initialise every parameter)."""
    main = self.main_outputs(input_ids, token_type_ids, attention_mask, masked_lm_positions,
                             deterministic)
    if self.gen_config is None:
      return main
    return self.generator_logits(input_ids, token_type_ids, attention_mask, masked_lm_positions,
                                 deterministic), main


def build_model(config: ml_collections.ConfigDict) -> nn.Module:
  """The pretrainer `config.electra.objective` trains ('electra', 'electra_15': ELECTRA's)."""
  name = objective_of(config)
  e = config.electra
  if name in ('electra', 'electra_15'):
    return model_lib.build_pretrainer(config)
  validate.validate_model_config(config.model)
  gen_config = (None if name == 'mlm' else validate.generator_config(
      config.model, e.generator_hidden_fraction, e.embedding_sharing))
  return ComparisonPretrainer(config.model, gen_config, e.embedding_sharing, name)


def split_params(joint_params, config: ml_collections.ConfigDict) -> dict[str, Any]:
  """Joint params -> {'discriminator': main network tree, 'generator': tree or None}.

  Standalone trees with their own `embeddings`, as `model.split_params`; the main network of
  an MLM objective is a `model.Generator` tree (for 'all_tokens_mlm' plus its gate).
  """
  name = objective_of(config)
  if name == 'mlm':
    return {'discriminator': dict(nn.meta.unbox(joint_params)['discriminator']),
            'generator': None}
  return param_trees.split_params(joint_params, config.electra.embedding_sharing)


def hf_networks(networks: dict[str, Any], config: ml_collections.ConfigDict
                ) -> list[tuple[str, str, Any]]:
  """[(directory, hf.py architecture, params)] a Hugging Face export writes for this objective.

  Discriminators -> 'discriminator' (`ElectraForPreTraining`); masked LMs -> 'masked_lm'
  (`ElectraForMaskedLM`; for 'all_tokens_mlm' without the copy gate, which no HF class holds);
  the generator, when there is one -> 'generator' (`ElectraForMaskedLM`). Any of them loads as
  `ElectraModel` (the encoder alone).
  """
  name = objective_of(config)
  main = networks['discriminator']
  if MAIN_ARCHITECTURE[name] == 'discriminator':
    out = [('discriminator', 'discriminator', main)]
  else:
    out = [('masked_lm', 'generator',
            {k: v for k, v in main.items() if k != 'discriminator_predictions'})]
  if networks.get('generator') is not None:
    out.append(('generator', 'generator', networks['generator']))
  return out


# ---- Losses ------------------------------------------------------------------------------------

def _dropout_rngs(dropout_rng, deterministic):
  if deterministic:
    return {}, {}
  gen_key, main_key = jax.random.split(dropout_rng)
  return {'dropout': gen_key}, {'dropout': main_key}


def masked_position_mask(batch: dict[str, jax.Array]) -> jax.Array:
  """[batch, length] float32: 1 at the positions of USED mask slots, else 0."""
  used = (batch['masked_lm_weights'] > 0).astype(jnp.float32)
  return jax.vmap(lambda row, pos, val: row.at[pos].max(val))(
      jnp.zeros(batch['input_ids'].shape, jnp.float32), batch['masked_lm_positions'], used)


def _lm_stats(prefix: str, logits, targets, weights, nll) -> dict[str, jax.Array]:
  return {f'{prefix}_loss_sum': jnp.sum(nll * weights),
          f'{prefix}_count': jnp.sum(weights),
          f'{prefix}_correct': jnp.sum((jnp.argmax(logits, -1) == targets) * weights)}


def _sample_and_corrupt(gen_logits, batch, sample_rng, e):
  with jax.named_scope('sampling'):
    sampled_ids = objective.sample_tokens(
        gen_logits, sample_rng, batch['masked_lm_ids'], temperature=e.temperature,
        disallow_correct=e.disallow_correct, sampler=e.sampler)
    corrupted_ids = objective.corrupt_input(
        batch['input_ids'], batch['masked_lm_positions'], sampled_ids,
        batch['masked_lm_weights'].astype(jnp.float32))
  return sampled_ids, corrupted_ids


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


def pretraining_loss(model, params, batch: dict[str, jax.Array], *, sample_rng: jax.Array,
                     dropout_rng: jax.Array | None, deterministic: bool,
                     electra_config: ml_collections.ConfigDict,
                     normalizers: tuple[Any, Any] | None = None,
                     compute_auc: bool = True) -> tuple[jax.Array, dict[str, jax.Array]]:
  """The loss of `electra_config.objective`, with `objective.pretraining_loss`'s interface.

  'electra' is `objective.pretraining_loss` itself. Normalisers are (used mask slots, real
  tokens) of the full batch, as there; 'electra_15' divides its discriminator loss by the slots.
  """
  name = electra_config.get('objective', 'electra')
  kwargs = dict(sample_rng=sample_rng, dropout_rng=dropout_rng, deterministic=deterministic,
                electra_config=electra_config, normalizers=normalizers, compute_auc=compute_auc)
  if name == 'electra':
    return objective.pretraining_loss(model, params, batch, **kwargs)
  if sample_rng.shape[:1] != batch['input_ids'].shape[:1]:
    raise ValueError(f'sample_rng must hold one key per example: got shape {sample_rng.shape}.')
  if normalizers is None:
    normalizers = objective.loss_normalizers(batch)
  num_slots = jnp.maximum(jnp.asarray(normalizers[0], jnp.float32), 1.0)
  num_tokens = jnp.maximum(jnp.asarray(normalizers[1], jnp.float32), 1.0)
  gen_rngs, main_rngs = _dropout_rngs(dropout_rng, deterministic)
  variables = {'params': params}
  e = electra_config
  slot_weights = batch['masked_lm_weights'].astype(jnp.float32)
  token_weights = batch['attention_mask'].astype(jnp.float32)
  targets = batch['masked_lm_ids']
  stats: dict[str, jax.Array] = {}
  total = jnp.zeros((), jnp.float32)

  if name == 'mlm':
    logits = model.apply(variables, batch['masked_input_ids'], batch['token_type_ids'],
                         batch['attention_mask'], batch['masked_lm_positions'], deterministic,
                         method=model.main_outputs, rngs=main_rngs).astype(jnp.float32)
    nll = optax.softmax_cross_entropy_with_integer_labels(logits, targets)
    stats.update(_lm_stats('masked_lm', logits, targets, slot_weights, nll))
    stats['weighted_masked_lm_loss_sum'] = stats['masked_lm_loss_sum']
    total = stats['masked_lm_loss_sum'] / num_slots
    if compute_auc:  # no discriminator: empty token counts keep the loop's reference uniform
      vocab = logits.shape[-1]
      stats.update({k: jnp.zeros((vocab,), jnp.float32) for k in objective.TOKEN_COUNT_KEYS})
    return total, jax.lax.stop_gradient(stats)

  # Generator: masked LM on [MASK]ed input, then samples into the masked positions.
  gen_logits = model.apply(
      variables, batch['masked_input_ids'], batch['token_type_ids'], batch['attention_mask'],
      batch['masked_lm_positions'], deterministic, method=model.generator_logits,
      rngs=gen_rngs).astype(jnp.float32)
  gen_nll = optax.softmax_cross_entropy_with_integer_labels(gen_logits, targets)
  stats.update(_lm_stats('masked_lm', gen_logits, targets, slot_weights, gen_nll))
  sampled_ids, corrupted_ids = _sample_and_corrupt(gen_logits, batch, sample_rng, e)
  stats['sampled_masked_lm_correct'] = jnp.sum((sampled_ids == targets) * slot_weights)
  stats['weighted_masked_lm_loss_sum'] = e.gen_weight * stats['masked_lm_loss_sum']
  total = e.gen_weight * stats['masked_lm_loss_sum'] / num_slots
  replaced = (corrupted_ids != batch['input_ids']).astype(jnp.float32) * token_weights
  vocab = gen_logits.shape[-1]
  main_args = (corrupted_ids, batch['token_type_ids'], batch['attention_mask'])

  if name == 'electra_15':
    disc_logits = model.apply(variables, *main_args, deterministic,
                              method=model.discriminator_logits,
                              rngs=main_rngs).astype(jnp.float32)
    weights = masked_position_mask(batch) * token_weights  # the masked positions only
    replaced = replaced * weights
    disc_loss_sum = jnp.sum(optax.sigmoid_binary_cross_entropy(disc_logits, replaced) * weights)
    stats.update(objective.disc_stats(disc_logits, replaced, weights, corrupted_ids, vocab,
                                      compute_auc))
    stats['disc_loss_sum'] = disc_loss_sum
    stats['weighted_disc_loss_sum'] = e.disc_weight * disc_loss_sum
    total = total + e.disc_weight * disc_loss_sum / num_slots
    return total, jax.lax.stop_gradient(stats)

  main = model.apply(variables, *main_args, batch['masked_lm_positions'], deterministic,
                     method=model.main_outputs, rngs=main_rngs)
  if name == 'replace_mlm':
    logits = main.astype(jnp.float32)
    nll = optax.softmax_cross_entropy_with_integer_labels(logits, targets)
    stats.update(_lm_stats('main_mlm', logits, targets, slot_weights, nll))
    total = total + stats['main_mlm_loss_sum'] / num_slots
    if compute_auc:  # no discriminator; the replaced counts still describe the generator
      stats.update({k: jnp.zeros((vocab,), jnp.float32) for k in objective.TOKEN_COUNT_KEYS})
  else:  # all_tokens_mlm
    lm_logits, gate_logits = main
    nll = copy_mechanism_nll(lm_logits, gate_logits, corrupted_ids, batch['input_ids'])
    stats.update(_lm_stats('main_mlm', lm_logits, batch['input_ids'], token_weights, nll))
    # The gate as a replaced-token detector: a replaced token should not be copied.
    stats.update(objective.disc_stats(-gate_logits.astype(jnp.float32), replaced, token_weights,
                                      corrupted_ids, vocab, compute_auc))
    total = total + stats['main_mlm_loss_sum'] / num_tokens
  stats['replaced_count'] = jnp.sum(replaced)
  return total, jax.lax.stop_gradient(stats)


def summarize(name: str, stats: dict[str, Any],
              token_reference: dict[str, Any] | None = None) -> dict[str, jax.Array]:
  """Summed stats -> metrics; 'electra' and 'electra_15' through `objective.summarize`.

  'mlm': masked_lm_accuracy/loss (of the one network). 'replace_mlm'/'all_tokens_mlm': the
  generator's masked_lm_* and sampled_masked_lm_accuracy, the main network's main_mlm_accuracy
  and main_mlm_loss (masked positions, resp. every real token with the copy mechanism), the
  replaced_fraction; 'all_tokens_mlm' also disc_auc* of its copy gate (scored as -gate).
  """
  if name in ('electra', 'electra_15'):
    return objective.summarize(stats, token_reference)
  ratio = lambda num, den: jnp.where(den > 0, num / jnp.maximum(den, 1e-12), 0.0)
  s = stats
  metrics = {'masked_lm_accuracy': ratio(s['masked_lm_correct'], s['masked_lm_count']),
             'masked_lm_loss': ratio(s['masked_lm_loss_sum'], s['masked_lm_count'])}
  metrics['loss'] = ratio(s['weighted_masked_lm_loss_sum'], s['masked_lm_count'])
  if name == 'mlm':
    return metrics
  metrics['sampled_masked_lm_accuracy'] = ratio(s['sampled_masked_lm_correct'],
                                                s['masked_lm_count'])
  metrics['main_mlm_accuracy'] = ratio(s['main_mlm_correct'], s['main_mlm_count'])
  metrics['main_mlm_loss'] = ratio(s['main_mlm_loss_sum'], s['main_mlm_count'])
  metrics['loss'] = metrics['loss'] + metrics['main_mlm_loss']
  if name == 'all_tokens_mlm':
    metrics['replaced_fraction'] = ratio(s['replaced_count'], s['disc_count'])
    metrics['disc_accuracy'] = ratio(s['disc_tp'] + s['disc_tn'], s['disc_count'])
    if 'disc_auc_positive_hist' in s:
      metrics['disc_auc'] = objective.auc_from_histograms(s['disc_auc_positive_hist'],
                                                          s['disc_auc_negative_hist'])
      metrics['disc_auc_with_padding'] = objective.auc_with_padding(
          s['disc_auc_positive_hist'], s['disc_auc_negative_hist'], s['padding_count'])
      if token_reference is not None:
        metrics['disc_auc_token_only'] = objective.token_only_auc(
            token_reference['token_replaced_count'], token_reference['token_seen_count'],
            s['token_replaced_count'], s['token_seen_count'])
        metrics['disc_auc_context_gain'] = metrics['disc_auc'] - metrics['disc_auc_token_only']
  return metrics

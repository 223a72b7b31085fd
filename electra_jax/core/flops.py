"""Analytic parameter counts and training FLOPs of the ELECTRA generator + discriminator.

FLOPs follow the usual convention (as in MaxText): every matmul [m, k] x [k, n] costs 2*m*n*k, and
a training step costs 3x the forward pass (forward, plus gradients w.r.t. activations and
weights). Attention scores and the attention-weighted sum are counted; LayerNorm, softmax, GELU,
embedding lookups and sampling are not (they are a few percent). The generator's vocabulary
projection runs only at the `max_predictions_per_seq` masked positions of each sequence, as in
`electra_jax.core.model.Generator`. Used for MFU: achieved FLOP/s = flops_per_token * tokens/s. Which networks and heads a step runs
is the objective's to say (`objectives.base.Objective.forward_flops_per_token`), from the pieces
here.
"""

import ml_collections

from electra_jax.spec import validate


def _embedding_table_params(m) -> int:
  return (m.vocab_size + m.max_position_embeddings + m.type_vocab_size) * m.embedding_size + (
      2 * m.embedding_size)  # + the embedding LayerNorm


def _encoder_params(m) -> int:
  """embeddings_project (if E != H) + the transformer layers."""
  h, f = m.hidden_size, m.intermediate_size
  project = (m.embedding_size * h + h) if m.embedding_size != h else 0
  layer = 4 * (h * h + h) + (h * f + f) + (f * h + h) + 2 * (2 * h)  # + two LayerNorms
  return project + m.num_layers * layer


def param_counts(config: ml_collections.ConfigDict) -> dict[str, int]:
  """Parameter counts from a full config.

  Returns:
    discriminator / generator: each network standalone, with its embedding tables (what a
      released checkpoint holds); shared: the tables both use (0 for 'none'); total: the jointly
      trained parameters (for 'gdes' the zero-initialised delta tables count too).
  """
  disc = config.model
  gen = validate.generator_config(disc, config.electra.generator_hidden_fraction,
                                   config.electra.embedding_sharing)
  tables = _embedding_table_params(disc)
  disc_head = (disc.hidden_size + 1) * disc.hidden_size + disc.hidden_size + 1
  gen_head = (gen.hidden_size * gen.embedding_size + gen.embedding_size
              + 2 * gen.embedding_size + gen.vocab_size)  # dense + LayerNorm + output bias
  discriminator = tables + _encoder_params(disc) + disc_head
  generator = _embedding_table_params(gen) + _encoder_params(gen) + gen_head
  sharing = config.electra.embedding_sharing
  shared = 0 if sharing == 'none' else tables
  total = discriminator + generator - (tables if sharing == 'shared' else 0)
  return {'discriminator': discriminator, 'generator': generator, 'shared': shared,
          'total': total}


def _encoder_forward_flops_per_token(m, seq_length: int) -> float:
  h, f = m.hidden_size, m.intermediate_size
  project = 2 * m.embedding_size * h if m.embedding_size != h else 0
  per_layer = (2 * 4 * h * h  # query, key, value and output projections
               + 2 * 2 * h * f  # FFN in and out
               + 2 * 2 * seq_length * h)  # scores q.k over all keys, and probs.v (all heads)
  return project + m.num_layers * per_layer


def encoder_forward_flops_per_token(config: ml_collections.ConfigDict) -> float:
  """The main network's encoder (`config.model`), forward, per token."""
  return float(_encoder_forward_flops_per_token(config.model, config.data.max_seq_length))


def discriminator_head_flops_per_token(m) -> float:
  """dense(H->H) + dense(H->1) at every position."""
  return float(2 * m.hidden_size * m.hidden_size + 2 * m.hidden_size)


def masked_lm_head_flops(m) -> float:
  """dense(H->E) + the vocabulary projection tied to the word table, at ONE position."""
  return float(2 * m.hidden_size * m.embedding_size + 2 * m.embedding_size * m.vocab_size)


def masked_fraction(config: ml_collections.ConfigDict) -> float:
  """Mask slots per token: where a masked-LM head runs."""
  return validate.max_predictions(config) / config.data.max_seq_length


def masked_lm_at_slots_flops_per_token(m, config: ml_collections.ConfigDict) -> float:
  """A masked-LM head of network `m` run at the mask slots only, per input token."""
  return masked_fraction(config) * masked_lm_head_flops(m)


def generator_forward_flops_per_token(config: ml_collections.ConfigDict) -> float:
  """The generator (`validate.generator_config`): encoder, and its head at the mask slots."""
  gen = validate.generator_config(config.model, config.electra.generator_hidden_fraction,
                                   config.electra.embedding_sharing)
  return float(_encoder_forward_flops_per_token(gen, config.data.max_seq_length)
               + masked_lm_at_slots_flops_per_token(gen, config))

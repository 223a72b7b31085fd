"""Analytic parameter counts and training FLOPs of the ELECTRA generator + discriminator.

FLOPs follow the usual convention (as in MaxText): every matmul [m, k] x [k, n] costs 2*m*n*k, and
a training step costs 3x the forward pass (forward, plus gradients w.r.t. activations and
weights). Attention scores and the attention-weighted sum are counted; LayerNorm, softmax, GELU,
embedding lookups and sampling are not (they are a few percent). The generator's vocabulary
projection runs only at the `max_predictions_per_seq` masked positions of each sequence, as in
`electra_jax.core.model.Generator`. Used for MFU: achieved FLOP/s = flops_per_token * tokens/s.
Which networks and heads a step runs is the objective's to say
(`objectives.base.Objective.forward_flops_per_token`), from the pieces here.
"""

from __future__ import annotations

import ml_collections


def _embedding_table_params(m) -> int:
  return (m.vocab_size + m.max_position_embeddings + m.type_vocab_size) * m.embedding_size + (
      2 * m.embedding_size)  # + the embedding LayerNorm


def _encoder_params(m) -> int:
  """embeddings_project (if E != H) + the transformer layers."""
  h, f = m.hidden_size, m.intermediate_size
  project = (m.embedding_size * h + h) if m.embedding_size != h else 0
  layer = 4 * (h * h + h) + (h * f + f) + (f * h + h) + 2 * (2 * h)  # + two LayerNorms
  return project + m.num_layers * layer


def param_counts(disc: ml_collections.ConfigDict, gen: ml_collections.ConfigDict | None,
                 embedding_sharing: str) -> dict[str, int]:
  """Parameter counts of a run's networks (`RunSpec.discriminator`, `.generator`).

  Returns:
    discriminator / generator: each network standalone, with its embedding tables (what a
      released checkpoint holds; no generator entry without one); shared: the tables both use
      (0 for 'none' or without a generator); total: the jointly trained parameters (for 'gdes'
      the zero-initialised delta tables count too).
  """
  tables = _embedding_table_params(disc)
  disc_head = (disc.hidden_size + 1) * disc.hidden_size + disc.hidden_size + 1
  discriminator = tables + _encoder_params(disc) + disc_head
  if gen is None:
    return {'discriminator': discriminator, 'shared': 0, 'total': discriminator}
  gen_head = (gen.hidden_size * gen.embedding_size + gen.embedding_size
              + 2 * gen.embedding_size + gen.vocab_size)  # dense + LayerNorm + output bias
  generator = _embedding_table_params(gen) + _encoder_params(gen) + gen_head
  shared = 0 if embedding_sharing == 'none' else tables
  total = discriminator + generator - (tables if embedding_sharing == 'shared' else 0)
  return {'discriminator': discriminator, 'generator': generator, 'shared': shared,
          'total': total}


def encoder_forward_flops_per_token(m, seq_length: int) -> float:
  """An encoder of model config `m` over `seq_length` tokens, forward, per token."""
  h, f = m.hidden_size, m.intermediate_size
  project = 2 * m.embedding_size * h if m.embedding_size != h else 0
  per_layer = (2 * 4 * h * h  # query, key, value and output projections
               + 2 * 2 * h * f  # FFN in and out
               + 2 * 2 * seq_length * h)  # scores q.k over all keys, and probs.v (all heads)
  return float(project + m.num_layers * per_layer)


def discriminator_head_flops_per_token(m) -> float:
  """dense(H->H) + dense(H->1) at every position."""
  return float(2 * m.hidden_size * m.hidden_size + 2 * m.hidden_size)


def masked_lm_head_flops(m) -> float:
  """dense(H->E) + the vocabulary projection tied to the word table, at ONE position."""
  return float(2 * m.hidden_size * m.embedding_size + 2 * m.embedding_size * m.vocab_size)


def masked_lm_at_slots_flops_per_token(m, masked_fraction: float) -> float:
  """A masked-LM head of network `m` run at the mask slots only (`masked_fraction` = slots per
  token, `RunSpec.masked_fraction`), per input token."""
  return masked_fraction * masked_lm_head_flops(m)


def generator_forward_flops_per_token(gen, seq_length: int, masked_fraction: float) -> float:
  """The generator: its encoder, and its head at the mask slots."""
  return (encoder_forward_flops_per_token(gen, seq_length)
          + masked_lm_at_slots_flops_per_token(gen, masked_fraction))

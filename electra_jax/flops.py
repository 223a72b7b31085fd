"""Analytic parameter counts and training FLOPs of the ELECTRA generator + discriminator.

FLOPs follow the usual convention (as in MaxText): every matmul [m, k] x [k, n] costs 2*m*n*k, and
a training step costs 3x the forward pass (forward, plus gradients w.r.t. activations and
weights). Attention scores and the attention-weighted sum are counted; LayerNorm, softmax, GELU,
embedding lookups and sampling are not (they are a few percent). The generator's vocabulary
projection runs only at the `max_predictions_per_seq` masked positions of each sequence, as in
`electra_jax.model.Generator`. Used for MFU: achieved FLOP/s = flops_per_token * tokens/s.
"""

import ml_collections

from electra_jax import validate


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


def forward_flops_per_token(config: ml_collections.ConfigDict) -> dict[str, float]:
  """Forward-pass FLOPs per token, split into 'discriminator' and 'generator'.

  Per `config.electra.objective`: 'electra' and 'electra_15' run the same networks (the 15%
  variant only restricts the loss); the masked-LM objectives are in `_comparison_flops`.
  """
  if config.electra.get('objective', 'electra') not in ('electra', 'electra_15'):
    return _comparison_flops(config)
  disc = config.model
  gen = validate.generator_config(disc, config.electra.generator_hidden_fraction,
                                   config.electra.embedding_sharing)
  length = config.data.max_seq_length
  disc_flops = (_encoder_forward_flops_per_token(disc, length)
                + 2 * disc.hidden_size * disc.hidden_size + 2 * disc.hidden_size)
  masked_fraction = validate.max_predictions(config) / length
  gen_head = 2 * gen.hidden_size * gen.embedding_size + 2 * gen.embedding_size * gen.vocab_size
  gen_flops = _encoder_forward_flops_per_token(gen, length) + masked_fraction * gen_head
  return {'discriminator': float(disc_flops), 'generator': float(gen_flops)}


def train_flops_per_token(config: ml_collections.ConfigDict) -> float:
  """Training FLOPs per input token (generator + discriminator, forward + backward)."""
  return 3.0 * sum(forward_flops_per_token(config).values())


def _comparison_flops(config: ml_collections.ConfigDict) -> dict[str, float]:
  """'mlm', 'replace_mlm', 'all_tokens_mlm': the main network ('discriminator') is a masked LM.

  Its head dense(H->E) + the tied vocabulary projection runs at the masked slots ('mlm',
  'replace_mlm') or at every position ('all_tokens_mlm', which adds the copy gate, a
  discriminator head); the generator, when there is one, costs what it does for ELECTRA.
  """
  objective = config.electra.objective
  main = config.model
  length = config.data.max_seq_length
  lm_head = 2 * main.hidden_size * main.embedding_size + 2 * main.embedding_size * main.vocab_size
  if objective == 'all_tokens_mlm':
    head = lm_head + 2 * main.hidden_size * main.hidden_size + 2 * main.hidden_size
  else:
    head = validate.max_predictions(config) / length * lm_head
  out = {'discriminator': float(_encoder_forward_flops_per_token(main, length) + head)}
  if objective != 'mlm':
    electra = ml_collections.ConfigDict(config.to_dict())
    electra.electra.objective = 'electra'
    out['generator'] = forward_flops_per_token(electra)['generator']
  return out

"""ELECTRA's replaced-token-detection objective, as pure functions usable inside `jit`.

One step: the generator predicts the masked tokens (at `masked_lm_positions` only), its predictions
are sampled (from the softmax, float32, no gradient), written into the original sequence, and the
discriminator labels every non-padding position as original (0) or replaced (1).

Losses and metrics are built from SUMS and COUNTS (`stats`) so that they add up exactly over
micro-batches (gradient accumulation) and over evaluation batches; `summarize` turns summed stats
into the reference metric names. `disc_auc` comes from summed score histograms, so it is the AUC of
the whole evaluation set rather than a mean of per-batch AUCs.
"""

from typing import Any

import jax
import jax.numpy as jnp
import ml_collections
import optax

# Discriminator logits are binned on [-AUC_LOGIT_RANGE, AUC_LOGIT_RANGE] (values outside fall into
# the end bins). Binning logits, not probabilities, keeps the resolution uniform where scores
# actually spread out; 4000 bins of width 0.01 put the AUC within ~1e-4 of the exact one.
AUC_BINS = 4000
AUC_LOGIT_RANGE = 20.0
_DISALLOW_PENALTY = 1000.0  # as in the reference: subtracted from the original token's logit


_SAMPLING_BLOCK = 128  # vocabulary entries per block of the two-level inverse-CDF search


def sample_tokens(logits: jax.Array, sample_rng: jax.Array, original_ids: jax.Array, *,
                  temperature: float = 1.0, disallow_correct: bool = False) -> jax.Array:
  """Samples from softmax(logits / temperature), in float32, without gradient.

  The original draws Gumbel-max samples: one uniform number per vocabulary entry at every masked
  slot (30522 x 19 per sequence), which is most of the sampling cost on a CPU. This draws from the
  same distribution by inverse-CDF with ONE uniform number per slot: find the block of
  `_SAMPLING_BLOCK` entries whose cumulative mass passes u, then the entry inside it (two short
  cumulative sums instead of one over the whole vocabulary). Zero-probability entries (e.g. the
  original under `disallow_correct`) are never drawn.

  Args:
    logits: [batch, num_positions, vocab] generator logits.
    sample_rng: [batch] PRNG keys, one per example (so micro-batches sample what the full batch
      would).
    original_ids: [batch, num_positions] the true tokens, for `disallow_correct`.
    temperature: softmax temperature (> 0).
    disallow_correct: never sample the original token.
  Returns:
    [batch, num_positions] int32 sampled token ids.
  """
  if temperature <= 0:
    raise ValueError(f'electra.temperature={temperature} must be > 0.')
  logits = jax.lax.stop_gradient(logits).astype(jnp.float32) / temperature
  if disallow_correct:
    logits -= _DISALLOW_PENALTY * jax.nn.one_hot(original_ids, logits.shape[-1],
                                                dtype=jnp.float32)
  batch, positions, vocab = logits.shape
  weights = jnp.exp(logits - jnp.max(logits, axis=-1, keepdims=True))  # unnormalised softmax
  weights = jnp.pad(weights, ((0, 0), (0, 0), (0, -vocab % _SAMPLING_BLOCK)))
  weights = weights.reshape(batch, positions, -1, _SAMPLING_BLOCK)  # [b, p, blocks, block]
  block_mass = jnp.sum(weights, axis=-1)  # [b, p, blocks]
  block_cdf = jnp.cumsum(block_mass, axis=-1)
  total = block_cdf[..., -1:]
  uniform = jax.vmap(lambda key: jax.random.uniform(key, (positions, 1), jnp.float32))(sample_rng)
  u = jnp.minimum(uniform * total, jnp.nextafter(total, 0.0))  # [b, p, 1], strictly below total
  # The first block whose cumulative mass exceeds u (never an empty one: its cdf equals the last).
  block = jnp.sum((block_cdf <= u).astype(jnp.int32), axis=-1)  # [b, p]
  take = lambda x, i: jnp.take_along_axis(x, i[..., None], axis=-1)[..., 0]
  before = take(block_cdf, block) - take(block_mass, block)  # mass of the earlier blocks
  inner = jnp.take_along_axis(weights, block[..., None, None], axis=2)[:, :, 0]  # [b, p, block]
  inner_cdf = jnp.cumsum(inner, axis=-1) + before[..., None]
  index = jnp.sum((inner_cdf <= u).astype(jnp.int32), axis=-1)
  # Rounding can leave u above the block's recomputed total: fall back to its last non-zero entry.
  last_nonzero = jnp.max(jnp.where(inner > 0, jnp.arange(_SAMPLING_BLOCK), -1), axis=-1)
  return (block * _SAMPLING_BLOCK + jnp.minimum(index, last_nonzero)).astype(jnp.int32)


def corrupt_input(input_ids: jax.Array, masked_lm_positions: jax.Array, sampled_ids: jax.Array,
                  masked_lm_weights: jax.Array) -> jax.Array:
  """The original [batch, length] ids with the samples written into the USED mask slots.

  Unused slots (weight 0, position usually 0 = [CLS]) write nothing; the reference scatters them
  too and can overwrite [CLS].
  """
  used_samples = jnp.where(masked_lm_weights > 0, sampled_ids, -1)
  scattered = jax.vmap(lambda row, pos, val: row.at[pos].max(val))(
      jnp.full_like(input_ids, -1), masked_lm_positions, used_samples)
  return jnp.where(scattered >= 0, scattered, input_ids)


def loss_normalizers(batch: dict[str, jax.Array]) -> tuple[jax.Array, jax.Array]:
  """(number of used mask slots, number of real tokens) of a batch, as float32 scalars.

  Compute these on the FULL batch and pass them to every micro-batch's `pretraining_loss`.
  """
  return (jnp.sum(batch['masked_lm_weights'].astype(jnp.float32)),
          jnp.sum(batch['attention_mask'].astype(jnp.float32)))


def _auc_histogram(logits, weights):
  bins = jnp.floor((logits + AUC_LOGIT_RANGE) * (AUC_BINS / (2 * AUC_LOGIT_RANGE)))
  bins = jnp.clip(bins, 0, AUC_BINS - 1).astype(jnp.int32)
  return jnp.zeros((AUC_BINS,), jnp.float32).at[bins.reshape(-1)].add(weights.reshape(-1))


def pretraining_loss(model, params, batch: dict[str, jax.Array], *, sample_rng: jax.Array,
                     dropout_rng: jax.Array | None, deterministic: bool,
                     electra_config: ml_collections.ConfigDict,
                     normalizers: tuple[Any, Any] | None = None,
                     compute_auc: bool = True) -> tuple[jax.Array, dict[str, jax.Array]]:
  """ELECTRA's loss: gen_weight * masked-LM cross-entropy + disc_weight * RTD sigmoid CE.

  Args:
    model: an `electra_jax.model.ElectraPretrainer`.
    params: its (joint) params.
    batch: input_ids, attention_mask, token_type_ids, masked_input_ids [batch, length] int32;
      masked_lm_positions, masked_lm_ids [batch, max_predictions] int32; masked_lm_weights
      [batch, max_predictions] float32 (0 for unused slots).
    sample_rng: [batch] PRNG keys, one per example (e.g. `jax.random.split(key, batch)`).
    dropout_rng: a PRNG key for dropout; unused (may be None) when `deterministic`.
    deterministic: disable dropout.
    electra_config: `config.electra` (gen_weight, disc_weight, temperature, disallow_correct).
    normalizers: optional (used mask slots, real tokens) of the FULL batch, from
      `loss_normalizers`; then the losses are sum / normalizer, so that micro-batch losses add up
      to the full-batch loss. Default: this batch's own counts.
    compute_auc: also return the discriminator score histograms for `disc_auc`.
  Returns:
    (total loss scalar, stats): stats is a flat dict of sums and counts (the AUC histograms are
    [AUC_BINS] arrays), to be summed over micro-batches / eval batches and read by `summarize`.
  """
  if sample_rng.shape[:1] != batch['input_ids'].shape[:1]:
    raise ValueError(f'sample_rng must hold one key per example: got shape {sample_rng.shape} '
                     f"for a batch of {batch['input_ids'].shape[0]}; use jax.random.split(key, "
                     'batch_size).')
  if normalizers is None:
    normalizers = loss_normalizers(batch)
  num_slots = jnp.maximum(jnp.asarray(normalizers[0], jnp.float32), 1.0)
  num_tokens = jnp.maximum(jnp.asarray(normalizers[1], jnp.float32), 1.0)
  if deterministic:
    gen_rngs = disc_rngs = {}
  else:
    gen_key, disc_key = jax.random.split(dropout_rng)
    gen_rngs, disc_rngs = {'dropout': gen_key}, {'dropout': disc_key}
  variables = {'params': params}

  # Generator: masked LM at the masked positions only.
  gen_logits = model.apply(
      variables, batch['masked_input_ids'], batch['token_type_ids'], batch['attention_mask'],
      batch['masked_lm_positions'], deterministic, method=model.generator_logits, rngs=gen_rngs)
  gen_logits = gen_logits.astype(jnp.float32)
  slot_weights = batch['masked_lm_weights'].astype(jnp.float32)
  targets = batch['masked_lm_ids']
  slot_nll = optax.softmax_cross_entropy_with_integer_labels(gen_logits, targets)
  gen_loss_sum = jnp.sum(slot_nll * slot_weights)

  # Sampling and the corrupted input (no gradient flows back through the samples).
  with jax.named_scope('sampling'):  # named for the profile in benchmarks/bench_train_step.py
    sampled_ids = sample_tokens(
        gen_logits, sample_rng, targets, temperature=electra_config.temperature,
        disallow_correct=electra_config.disallow_correct)
    corrupted_ids = corrupt_input(batch['input_ids'], batch['masked_lm_positions'], sampled_ids,
                                  slot_weights)
  token_weights = batch['attention_mask'].astype(jnp.float32)
  # A correctly sampled token is an original one.
  replaced = (corrupted_ids != batch['input_ids']).astype(jnp.float32) * token_weights

  # Discriminator: replaced-token detection on every non-padding position.
  disc_logits = model.apply(
      variables, corrupted_ids, batch['token_type_ids'], batch['attention_mask'], deterministic,
      method=model.discriminator_logits, rngs=disc_rngs).astype(jnp.float32)
  disc_loss_sum = jnp.sum(optax.sigmoid_binary_cross_entropy(disc_logits, replaced)
                          * token_weights)

  gen_weight, disc_weight = electra_config.gen_weight, electra_config.disc_weight
  total = gen_weight * gen_loss_sum / num_slots + disc_weight * disc_loss_sum / num_tokens

  predicted = (disc_logits > 0).astype(jnp.float32)
  stats = {
      'masked_lm_loss_sum': gen_loss_sum,
      'masked_lm_count': jnp.sum(slot_weights),
      'masked_lm_correct': jnp.sum((jnp.argmax(gen_logits, -1) == targets) * slot_weights),
      'sampled_masked_lm_correct': jnp.sum((sampled_ids == targets) * slot_weights),
      'disc_loss_sum': disc_loss_sum,
      'disc_count': jnp.sum(token_weights),
      'disc_tp': jnp.sum(predicted * replaced),
      'disc_fp': jnp.sum(predicted * (1 - replaced) * token_weights),
      'disc_fn': jnp.sum((1 - predicted) * replaced),
      'disc_tn': jnp.sum((1 - predicted) * (1 - replaced) * token_weights),
      'replaced_count': jnp.sum(replaced),
      # Pre-weighted sums, so that `summarize` can rebuild `loss` from summed stats alone.
      'weighted_masked_lm_loss_sum': gen_weight * gen_loss_sum,
      'weighted_disc_loss_sum': disc_weight * disc_loss_sum,
  }
  if compute_auc:
    stats['disc_auc_positive_hist'] = _auc_histogram(disc_logits, replaced)
    stats['disc_auc_negative_hist'] = _auc_histogram(disc_logits, (1 - replaced) * token_weights)
  return total, jax.lax.stop_gradient(stats)


def auc_from_histograms(positive_hist: jax.Array, negative_hist: jax.Array) -> jax.Array:
  """ROC AUC from score histograms (ties inside a bin count one half); 0.5 if a class is empty."""
  positive_hist = positive_hist.astype(jnp.float32)
  negative_hist = negative_hist.astype(jnp.float32)
  negatives_below = jnp.cumsum(negative_hist) - negative_hist
  pairs = jnp.sum(positive_hist) * jnp.sum(negative_hist)
  ranked = jnp.sum(positive_hist * (negatives_below + 0.5 * negative_hist))
  return jnp.where(pairs > 0, ranked / jnp.maximum(pairs, 1.0), 0.5)


def summarize(stats: dict[str, jax.Array]) -> dict[str, jax.Array]:
  """Summed stats -> the reference metrics (ratios with an empty denominator read 0)."""
  ratio = lambda num, den: jnp.where(den > 0, num / jnp.maximum(den, 1e-12), 0.0)
  s = stats
  metrics = {
      'masked_lm_accuracy': ratio(s['masked_lm_correct'], s['masked_lm_count']),
      'masked_lm_loss': ratio(s['masked_lm_loss_sum'], s['masked_lm_count']),
      'sampled_masked_lm_accuracy': ratio(s['sampled_masked_lm_correct'], s['masked_lm_count']),
      'disc_loss': ratio(s['disc_loss_sum'], s['disc_count']),
      'disc_accuracy': ratio(s['disc_tp'] + s['disc_tn'], s['disc_count']),
      'disc_precision': ratio(s['disc_tp'], s['disc_tp'] + s['disc_fp']),
      'disc_recall': ratio(s['disc_tp'], s['disc_tp'] + s['disc_fn']),
      'replaced_fraction': ratio(s['replaced_count'], s['disc_count']),
      'loss': (ratio(s['weighted_masked_lm_loss_sum'], s['masked_lm_count'])
               + ratio(s['weighted_disc_loss_sum'], s['disc_count'])),
  }
  if 'disc_auc_positive_hist' in s:
    metrics['disc_auc'] = auc_from_histograms(s['disc_auc_positive_hist'],
                                              s['disc_auc_negative_hist'])
  return metrics

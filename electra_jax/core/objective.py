"""ELECTRA's replaced-token-detection objective, as pure functions usable inside `jit`.

One step: the generator predicts the masked tokens (at `masked_lm_positions` only), its predictions
are sampled (from the softmax, float32, no gradient), written into the original sequence, and the
discriminator labels every non-padding position as original (0) or replaced (1).

Losses and metrics are built from SUMS and COUNTS (`stats`) so that they add up exactly over
micro-batches (gradient accumulation) and over evaluation batches; `summarize` turns summed stats
into the reference metric names. `disc_auc` comes from summed score histograms, so it is the AUC of
the whole evaluation set rather than a mean of per-batch AUCs.

Two companions put `disc_auc` in perspective:

* `disc_auc_token_only` is the AUC of a scorer that sees only the token id the discriminator sees
  (see `token_only_auc`); `disc_auc_context_gain = disc_auc - disc_auc_token_only` is what the
  discriminator learned beyond token identity.
* `disc_auc_with_padding` is the original's definition, `tf.metrics.auc(labels * input_mask,
  probs * input_mask)`: padding positions count as negatives scored 0, below every real token.
  It reads higher than `disc_auc` (which scores real tokens only) by an amount that depends on
  how much padding the batches carry, so only it compares with the original's logs.
"""

import dataclasses
from typing import Any

import jax
import jax.numpy as jnp
import ml_collections
import optax

from electra_jax.core import draws
from electra_jax.core.schema import SAMPLERS
from electra_jax.errors import UserError

# Discriminator logits are binned on [-AUC_LOGIT_RANGE, AUC_LOGIT_RANGE] (values outside fall into
# the end bins). Binning logits, not probabilities, keeps the resolution uniform where scores
# actually spread out; 4000 bins of width 0.01 put the AUC within ~1e-4 of the exact one.
AUC_BINS = 4000
AUC_LOGIT_RANGE = 20.0
# Pseudo-observations at the global replaced rate added to each token id's own counts in
# `token_only_auc`, so an id seen once (or never) on training batches is not ranked as certain.
TOKEN_RATE_PRIOR = 1.0
# The per-token-id count vectors of `pretraining_loss`'s stats ([vocab] each).
TOKEN_COUNT_KEYS = ('token_replaced_count', 'token_seen_count')
_DISALLOW_PENALTY = 1000.0  # as in the reference: subtracted from the original token's logit


_SAMPLING_BLOCK = 128  # vocabulary entries per block of the two-level inverse-CDF search


def sample_tokens(logits: jax.Array, sample_rng: jax.Array, original_ids: jax.Array, *,
                  temperature: float = 1.0, disallow_correct: bool = False,
                  sampler: str = 'gumbel') -> jax.Array:
  """Samples from softmax(logits / temperature), in float32, without gradient.

  Args:
    logits: [batch, num_positions, vocab] generator logits.
    sample_rng: [batch] PRNG keys, one per example (so micro-batches sample what the full batch
      would).
    original_ids: [batch, num_positions] the true tokens, for `disallow_correct`.
    temperature: softmax temperature (> 0).
    disallow_correct: never sample the original token.
    sampler: 'gumbel' (the original: Gumbel-max, one uniform per vocabulary entry per slot) or
      'inverse_cdf' (the same distribution from one uniform per slot; different draws).
  Returns:
    [batch, num_positions] int32 sampled token ids.
  """
  if temperature <= 0:
    raise UserError(f'electra.temperature={temperature} must be > 0.')
  if sampler not in SAMPLERS:
    raise UserError(f'electra.sampler={sampler!r}: use one of {SAMPLERS}.')
  logits = jax.lax.stop_gradient(logits).astype(jnp.float32) / temperature
  if disallow_correct:
    logits -= _DISALLOW_PENALTY * jax.nn.one_hot(original_ids, logits.shape[-1],
                                                dtype=jnp.float32)
  if sampler == 'gumbel':
    return _gumbel_max(logits, sample_rng)
  return _inverse_cdf(logits, sample_rng)


def first_argmax(x: jax.Array) -> jax.Array:
  """`jnp.argmax(x, -1)` (the first index of the maximum) as int32, from two plain reductions.

  XLA:CPU runs argmax as one reduction over (value, index) pairs, which vectorises poorly: over
  the Small generator's [32, 19, 30522] logits it added ~60% to the cost of drawing the Gumbel
  noise (`benchmarks/bench_random.py`). The maximum, then the least index that reaches it, give
  the same index at about a plain sum's cost. A row with a NaN has no index reaching its
  maximum; it gets the last index (the step is non-finite then, and skipped).
  """
  top = jnp.max(x, axis=-1, keepdims=True)
  index = jax.lax.broadcasted_iota(jnp.int32, x.shape, x.ndim - 1)
  first = jnp.min(jnp.where(x == top, index, x.shape[-1] - 1), axis=-1)
  return first.astype(jnp.int32)


def gumbel_perturbed(logits: jax.Array, sample_rng: jax.Array) -> jax.Array:
  """logits + Gumbel noise, one uniform per entry from each example's key, noise as the original
  computes it (what `_gumbel_max` takes the argmax of; `benchmarks/bench_random.py` times it).

  The uniforms take both words of each threefry block (`draws.uniform`), where
  `jax.random.uniform` would hash a block per entry: this hashing was most of the sampler's cost.
  """
  uniform = jax.vmap(lambda key: draws.uniform(key, logits.shape[1:]))(sample_rng)
  return logits - jnp.log(-jnp.log(uniform + 1e-9) + 1e-9)


def _gumbel_max(logits: jax.Array, sample_rng: jax.Array) -> jax.Array:
  """The original's sampler: argmax(logits + Gumbel noise)."""
  return first_argmax(gumbel_perturbed(logits, sample_rng))


def _inverse_cdf(logits: jax.Array, sample_rng: jax.Array) -> jax.Array:
  """Inverse-CDF sampling with ONE uniform number per slot instead of one per vocabulary entry.

  Gumbel-max noise (30522 x 19 uniforms per Small sequence) was most of the sampling cost on a
  CPU. This finds the block of `_SAMPLING_BLOCK` entries whose cumulative mass passes u, then the
  entry inside it (two short cumulative sums instead of one over the whole vocabulary).
  Zero-probability entries (e.g. the original under `disallow_correct`) are never drawn.
  """
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

  Unused slots (weight 0, position usually 0 = [CLS]) write nothing. The original scatters
  them too, but its `scatter_update` zeroes every update aimed at position 0
  (`pretrain_helpers.py`), so [CLS] is never overwritten there either: the same result.
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


def disc_stats(disc_logits: jax.Array, replaced: jax.Array, weights: jax.Array,
               corrupted_ids: jax.Array, vocab_size: int, compute_auc: bool) -> dict:
  """The discriminator's confusion counts (and AUC histograms, per-token-id counts) over the
  positions `weights` marks; `replaced` is 0 wherever `weights` is."""
  predicted = (disc_logits > 0).astype(jnp.float32)
  stats = {
      'disc_count': jnp.sum(weights),
      'disc_tp': jnp.sum(predicted * replaced),
      'disc_fp': jnp.sum(predicted * (1 - replaced) * weights),
      'disc_fn': jnp.sum((1 - predicted) * replaced),
      'disc_tn': jnp.sum((1 - predicted) * (1 - replaced) * weights),
      'replaced_count': jnp.sum(replaced),
  }
  if compute_auc:
    stats['disc_auc_positive_hist'] = _auc_histogram(disc_logits, replaced)
    stats['disc_auc_negative_hist'] = _auc_histogram(disc_logits, (1 - replaced) * weights)
    stats['padding_count'] = jnp.sum(1.0 - weights)
    stats['token_replaced_count'] = jax.ops.segment_sum(
        replaced.reshape(-1), corrupted_ids.reshape(-1), vocab_size)  # [vocab]
    stats['token_seen_count'] = jax.ops.segment_sum(
        weights.reshape(-1), corrupted_ids.reshape(-1), vocab_size)  # [vocab]
  return stats


def dropout_rngs(dropout_rng: jax.Array | None, deterministic: bool) -> tuple[dict, dict]:
  """({'dropout': key} of the generator, of the main network); both {} when deterministic."""
  if deterministic:
    return {}, {}
  gen_key, main_key = jax.random.split(dropout_rng)
  return {'dropout': gen_key}, {'dropout': main_key}


def sample_and_corrupt(gen_logits: jax.Array, batch: dict[str, jax.Array], sample_rng: jax.Array,
                       electra_config: ml_collections.ConfigDict) -> tuple[jax.Array, jax.Array]:
  """(sampled ids [batch, slots], corrupted input [batch, length]): the generator's samples (no
  gradient flows back through them) written into the used mask slots. Training and the
  inspector both draw replacements here."""
  with jax.named_scope('sampling'):  # named for the profile in benchmarks/bench_train_step.py
    sampled_ids = sample_tokens(
        gen_logits, sample_rng, batch['masked_lm_ids'], temperature=electra_config.temperature,
        disallow_correct=electra_config.disallow_correct,
        sampler=electra_config.sampler)  # older saved runs gain it: `spec.run.upgrade`
    corrupted_ids = corrupt_input(batch['input_ids'], batch['masked_lm_positions'], sampled_ids,
                                  batch['masked_lm_weights'].astype(jnp.float32))
  return sampled_ids, corrupted_ids


@dataclasses.dataclass(frozen=True)
class GeneratorStep:
  """What the generator half of a step produced: its logits at the mask slots, the corrupted
  input, and its stats (masked_lm_*, sampled_masked_lm_correct, weighted_masked_lm_loss_sum)."""
  logits: jax.Array
  sampled_ids: jax.Array
  corrupted_ids: jax.Array
  stats: dict[str, jax.Array]
  gen_weight: float

  def weighted_loss(self, num_slots: jax.Array) -> jax.Array:
    """gen_weight * its masked-LM cross-entropy, per used mask slot of the full batch."""
    return self.gen_weight * self.stats['masked_lm_loss_sum'] / num_slots


def lm_stats(prefix: str, logits: jax.Array, targets: jax.Array, weights: jax.Array,
             nll: jax.Array) -> dict[str, jax.Array]:
  """`{prefix}_loss_sum`, `{prefix}_count`, `{prefix}_correct` of a masked LM's predictions."""
  return {f'{prefix}_loss_sum': jnp.sum(nll * weights),
          f'{prefix}_count': jnp.sum(weights),
          f'{prefix}_correct': jnp.sum((first_argmax(logits) == targets) * weights)}


def generator_step(model, variables, batch: dict[str, jax.Array], sample_rng: jax.Array,
                   electra_config: ml_collections.ConfigDict, rngs: dict,
                   deterministic: bool) -> GeneratorStep:
  """The generator's masked LM on the [MASK]ed input (at the mask slots only), then its samples
  written into the input: the first half of ELECTRA's step, and of every objective that
  corrupts with a generator (`electra_jax.core.objectives`)."""
  gen_logits = model.apply(
      variables, batch['masked_input_ids'], batch['token_type_ids'], batch['attention_mask'],
      batch['masked_lm_positions'], deterministic, method=model.generator_logits,
      rngs=rngs).astype(jnp.float32)
  targets = batch['masked_lm_ids']
  slot_weights = batch['masked_lm_weights'].astype(jnp.float32)
  nll = optax.softmax_cross_entropy_with_integer_labels(gen_logits, targets)
  stats = lm_stats('masked_lm', gen_logits, targets, slot_weights, nll)
  sampled_ids, corrupted_ids = sample_and_corrupt(gen_logits, batch, sample_rng, electra_config)
  stats['sampled_masked_lm_correct'] = jnp.sum((sampled_ids == targets) * slot_weights)
  # Pre-weighted, so that `summarize` can rebuild `loss` from summed stats alone.
  stats['weighted_masked_lm_loss_sum'] = electra_config.gen_weight * stats['masked_lm_loss_sum']
  return GeneratorStep(gen_logits, sampled_ids, corrupted_ids, stats, electra_config.gen_weight)


def check_sample_keys(sample_rng: jax.Array, batch: dict[str, jax.Array]) -> None:
  if sample_rng.shape[:1] != batch['input_ids'].shape[:1]:
    raise ValueError(f'sample_rng must hold one key per example: got shape {sample_rng.shape} '
                     f"for a batch of {batch['input_ids'].shape[0]}; use jax.random.split(key, "
                     'batch_size).')


def pretraining_loss(model, params, batch: dict[str, jax.Array], *, sample_rng: jax.Array,
                     dropout_rng: jax.Array | None, deterministic: bool,
                     electra_config: ml_collections.ConfigDict,
                     normalizers: tuple[Any, Any] | None = None,
                     compute_auc: bool = True) -> tuple[jax.Array, dict[str, jax.Array]]:
  """ELECTRA's loss: gen_weight * masked-LM cross-entropy + disc_weight * RTD sigmoid CE.

  Args:
    model: an `electra_jax.core.model.ElectraPretrainer`.
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
    compute_auc: also return what the AUC metrics need: the discriminator score histograms, the
      padding count, and per token id (of the corrupted input) how often it was seen and
      replaced ([vocab] each, `TOKEN_COUNT_KEYS`).
  Returns:
    (total loss scalar, stats): stats is a flat dict of sums and counts (the AUC histograms are
    [AUC_BINS] arrays), to be summed over micro-batches / eval batches and read by `summarize`.
  """
  check_sample_keys(sample_rng, batch)
  if normalizers is None:
    normalizers = loss_normalizers(batch)
  num_slots = jnp.maximum(jnp.asarray(normalizers[0], jnp.float32), 1.0)
  num_tokens = jnp.maximum(jnp.asarray(normalizers[1], jnp.float32), 1.0)
  gen_rngs, disc_rngs = dropout_rngs(dropout_rng, deterministic)
  variables = {'params': params}
  generated = generator_step(model, variables, batch, sample_rng, electra_config, gen_rngs,
                             deterministic)
  gen_logits, corrupted_ids = generated.logits, generated.corrupted_ids
  token_weights = batch['attention_mask'].astype(jnp.float32)
  # A correctly sampled token is an original one.
  replaced = (corrupted_ids != batch['input_ids']).astype(jnp.float32) * token_weights

  # Discriminator: replaced-token detection on every non-padding position.
  disc_logits = model.apply(
      variables, corrupted_ids, batch['token_type_ids'], batch['attention_mask'], deterministic,
      method=model.discriminator_logits, rngs=disc_rngs).astype(jnp.float32)
  disc_loss_sum = jnp.sum(optax.sigmoid_binary_cross_entropy(disc_logits, replaced)
                          * token_weights)

  disc_weight = electra_config.disc_weight
  total = generated.weighted_loss(num_slots) + disc_weight * disc_loss_sum / num_tokens
  stats = {
      **generated.stats,
      'disc_loss_sum': disc_loss_sum,
      'weighted_disc_loss_sum': disc_weight * disc_loss_sum,
      **disc_stats(disc_logits, replaced, token_weights, corrupted_ids, gen_logits.shape[-1],
                   compute_auc),
  }
  return total, jax.lax.stop_gradient(stats)


def auc_from_histograms(positive_hist: jax.Array, negative_hist: jax.Array) -> jax.Array:
  """ROC AUC from score histograms (ties inside a bin count one half); 0.5 if a class is empty."""
  positive_hist = positive_hist.astype(jnp.float32)
  negative_hist = negative_hist.astype(jnp.float32)
  negatives_below = jnp.cumsum(negative_hist) - negative_hist
  pairs = jnp.sum(positive_hist) * jnp.sum(negative_hist)
  ranked = jnp.sum(positive_hist * (negatives_below + 0.5 * negative_hist))
  return jnp.where(pairs > 0, ranked / jnp.maximum(pairs, 1.0), 0.5)


def auc_with_padding(positive_hist: jax.Array, negative_hist: jax.Array,
                     padding_count: jax.Array) -> jax.Array:
  """The original's AUC: padding positions are extra negatives scored below every real token.

  The original computes `tf.metrics.auc(labels * input_mask, probs * input_mask)` over all
  positions: a padding position has label 0 and probability 0, and sigmoid scores of real tokens
  are > 0, so every replaced token outranks every padding position. (`tf.metrics.auc` itself
  approximates the curve with 200 thresholds; this is the exact rank AUC of that labelling.)
  """
  positive_hist = positive_hist.astype(jnp.float32)
  negative_hist = negative_hist.astype(jnp.float32)
  padding = jnp.asarray(padding_count, jnp.float32)
  negatives_below = jnp.cumsum(negative_hist) - negative_hist
  positives = jnp.sum(positive_hist)
  pairs = positives * (jnp.sum(negative_hist) + padding)
  ranked = jnp.sum(positive_hist * (negatives_below + 0.5 * negative_hist)) + positives * padding
  return jnp.where(pairs > 0, ranked / jnp.maximum(pairs, 1.0), 0.5)


def token_only_auc(reference_replaced: jax.Array, reference_seen: jax.Array,
                   replaced: jax.Array, seen: jax.Array,
                   prior: float = TOKEN_RATE_PRIOR) -> jax.Array:
  """AUC of the best context-free detector: one that scores a position by its token id alone.

  The detector ranks each token id by its replaced rate on OTHER data (the reference counts,
  from recent training batches), shrunk towards the global rate by `prior` pseudo-observations:
  score(v) = (replaced_v + prior * rate) / (seen_v + prior). Its AUC on the evaluated counts is
  exact: every replaced position of id v outranks the original positions of lower-scored ids,
  and ties (equal scores, the same id included) count one half.

  Why out of sample: the replaced rate measured on the evaluation set itself would "predict" its
  own labels (an id seen once, and replaced, would score 1), an optimistic baseline that shrinks
  the context gain. Why training batches rather than the generator's probabilities: the rates
  of recent batches already include everything a context-free detector could know (the data's
  unigram frequencies and the generator's sampling habits) and cost one [vocab] segment sum.

  Args:
    reference_replaced, reference_seen: [vocab] counts per corrupted-input token id of replaced
      and real positions on the reference (training) batches.
    replaced, seen: [vocab] the same counts on the evaluated batches.
    prior: pseudo-observations at the global reference rate added to every id.
  Returns:
    Scalar AUC; 0.5 when a class is empty.
  """
  reference_replaced = jnp.asarray(reference_replaced, jnp.float32)
  reference_seen = jnp.asarray(reference_seen, jnp.float32)
  positives = jnp.asarray(replaced, jnp.float32)  # [vocab]
  negatives = jnp.asarray(seen, jnp.float32) - positives  # [vocab]
  rate = jnp.sum(reference_replaced) / jnp.maximum(jnp.sum(reference_seen), 1.0)
  score = (reference_replaced + prior * rate) / (reference_seen + prior)  # [vocab]
  order = jnp.argsort(score)
  sorted_score = score[order]
  negatives_through = jnp.concatenate([jnp.zeros((1,), jnp.float32),
                                       jnp.cumsum(negatives[order])])  # [vocab + 1]
  below = negatives_through[jnp.searchsorted(sorted_score, score, side='left')]
  through = negatives_through[jnp.searchsorted(sorted_score, score, side='right')]
  pairs = jnp.sum(positives) * jnp.sum(negatives)
  ranked = jnp.sum(positives * (below + 0.5 * (through - below)))
  return jnp.where(pairs > 0, ranked / jnp.maximum(pairs, 1.0), 0.5)


def summarize(stats: dict[str, jax.Array],
              token_reference: dict[str, jax.Array] | None = None) -> dict[str, jax.Array]:
  """Summed stats -> the reference metrics (ratios with an empty denominator read 0).

  Args:
    stats: summed `pretraining_loss` stats.
    token_reference: summed stats (at least `TOKEN_COUNT_KEYS`) of other batches, e.g. recent
      training steps; with them, also `disc_auc_token_only` and `disc_auc_context_gain`.
  """
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
  metrics.update(auc_metrics(s, token_reference))
  return metrics


def auc_metrics(stats: dict[str, jax.Array],
                token_reference: dict[str, jax.Array] | None = None) -> dict[str, jax.Array]:
  """disc_auc, disc_auc_with_padding and (with `token_reference`) disc_auc_token_only and
  disc_auc_context_gain of a detector's summed stats; {} when they hold no histograms."""
  s, metrics = stats, {}
  if 'disc_auc_positive_hist' in s:
    metrics['disc_auc'] = auc_from_histograms(s['disc_auc_positive_hist'],
                                              s['disc_auc_negative_hist'])
    metrics['disc_auc_with_padding'] = auc_with_padding(
        s['disc_auc_positive_hist'], s['disc_auc_negative_hist'], s['padding_count'])
    if token_reference is not None:
      metrics['disc_auc_token_only'] = token_only_auc(
          token_reference['token_replaced_count'], token_reference['token_seen_count'],
          s['token_replaced_count'], s['token_seen_count'])
      metrics['disc_auc_context_gain'] = metrics['disc_auc'] - metrics['disc_auc_token_only']
  return metrics

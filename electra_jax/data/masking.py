"""Dynamic masking of a packed batch, in tf.data (per batch, never stored).

As in ELECTRA (`pretrain_helpers.mask`), but positions are drawn *without* replacement:

* candidates are real tokens other than [CLS], [SEP], [MASK] (and never padding);
* per sequence, `max(1, min(max_predictions, round(num_real_tokens * mask_prob)))` positions are
  masked (fewer if there are fewer candidates), `num_real_tokens` counting [CLS]/[SEP] too;
* each masked position becomes [MASK] with probability `mask_token_prob`, a random non-special
  token with probability `random_token_prob`, and otherwise keeps its token.

All draws are stateless and keyed on a per-batch seed, so a batch's masks are a pure function of
(seed, batch index): a resumed iterator masks exactly as an uninterrupted one.
"""

import dataclasses

import tensorflow as tf

_SALT_POSITIONS, _SALT_REPLACEMENT, _SALT_RANDOM_TOKENS = 201, 202, 203


@dataclasses.dataclass(frozen=True)
class MaskingOptions:
  """Attributes:
    mask_prob: fraction of real tokens to mask.
    max_predictions: mask slots per sequence, K.
    mask_token_prob: share of masked positions replaced by [MASK].
    random_token_prob: share replaced by a random token (the rest keep theirs).
    vocab_size: random tokens are drawn from [first_random_id, vocab_size).
    pad_id, cls_id, sep_id, mask_id: the special ids.
  """
  mask_prob: float
  max_predictions: int
  mask_token_prob: float
  random_token_prob: float
  vocab_size: int
  pad_id: int
  cls_id: int
  sep_id: int
  mask_id: int
  unk_id: int

  @property
  def first_random_id(self) -> int:
    # Specials sit at the start of every vocabulary we use (SentencePiece 0..4, BERT 0..103).
    return max(self.pad_id, self.cls_id, self.sep_id, self.mask_id, self.unk_id) + 1


def _fold_in(seed: tf.Tensor, data: int) -> tf.Tensor:
  return tf.random.experimental.stateless_fold_in(seed, tf.constant(data, tf.int64))


def mask_batch(batch: dict[str, tf.Tensor], seed: tf.Tensor,
               options: MaskingOptions) -> dict[str, tf.Tensor]:
  """Masks one batch.

  Args:
    batch: `input_ids` and `token_type_ids`, each `[batch, length]` int32.
    seed: `[2]` int64 stateless seed of this batch.
    options: masking options.

  Returns:
    `input_ids`, `attention_mask`, `token_type_ids`, `masked_input_ids` `[batch, length]` int32;
    `masked_lm_positions`, `masked_lm_ids` `[batch, K]` int32 and `masked_lm_weights` `[batch, K]`
    float32, K = max_predictions. Used slots come first with ascending positions; unused slots
    have position 0, id 0 and weight 0.
  """
  input_ids = tf.cast(batch['input_ids'], tf.int32)
  batch_size, length = tf.shape(input_ids)[0], tf.shape(input_ids)[1]
  num_slots = options.max_predictions

  is_real = tf.not_equal(input_ids, options.pad_id)
  is_candidate = is_real
  for special_id in (options.cls_id, options.sep_id, options.mask_id):
    is_candidate &= tf.not_equal(input_ids, special_id)
  num_real = tf.reduce_sum(tf.cast(is_real, tf.float32), axis=1)
  num_to_mask = tf.clip_by_value(tf.cast(tf.round(num_real * options.mask_prob), tf.int32), 1,
                                 num_slots)
  num_candidates = tf.reduce_sum(tf.cast(is_candidate, tf.int32), axis=1)
  num_masked = tf.minimum(num_to_mask, num_candidates)  # [batch]

  # Without replacement: the candidates with the K largest random scores, first num_masked used.
  scores = tf.random.stateless_uniform([batch_size, length],
                                       seed=_fold_in(seed, _SALT_POSITIONS))
  scores = tf.where(is_candidate, scores, -1.0)
  _, top_positions = tf.math.top_k(scores, k=num_slots, sorted=True)  # [batch, K]
  slot_used = tf.range(num_slots)[tf.newaxis, :] < num_masked[:, tf.newaxis]
  # Ascending positions for used slots; unused slots (sort key = length) go last.
  positions = tf.sort(tf.where(slot_used, top_positions, length), axis=1)
  slot_used = positions < length
  positions = tf.where(slot_used, positions, 0)
  masked_lm_ids = tf.where(slot_used, tf.gather(input_ids, positions, batch_dims=1), 0)

  replacement_draw = tf.random.stateless_uniform([batch_size, num_slots],
                                                 seed=_fold_in(seed, _SALT_REPLACEMENT))
  random_tokens = tf.random.stateless_uniform(
      [batch_size, num_slots], seed=_fold_in(seed, _SALT_RANDOM_TOKENS),
      minval=options.first_random_id, maxval=options.vocab_size, dtype=tf.int32)
  use_mask_token = replacement_draw < options.mask_token_prob
  use_random_token = (~use_mask_token) & (
      replacement_draw < options.mask_token_prob + options.random_token_prob)
  new_tokens = tf.where(use_mask_token, options.mask_id,
                        tf.where(use_random_token, random_tokens, masked_lm_ids))

  # Scatter by comparison, not tensor_scatter: unused slots all point at 0 and must not write.
  hits = (tf.equal(positions[:, :, tf.newaxis], tf.range(length)[tf.newaxis, tf.newaxis, :])
          & slot_used[:, :, tf.newaxis])  # [batch, K, length]
  is_masked = tf.reduce_any(hits, axis=1)
  new_token_at = tf.reduce_sum(tf.where(hits, new_tokens[:, :, tf.newaxis], 0), axis=1)
  masked_input_ids = tf.where(is_masked, new_token_at, input_ids)

  return {
      'input_ids': input_ids,
      'attention_mask': tf.cast(is_real, tf.int32),
      'token_type_ids': tf.cast(batch['token_type_ids'], tf.int32),
      'masked_input_ids': masked_input_ids,
      'masked_lm_positions': positions,
      'masked_lm_ids': masked_lm_ids,
      'masked_lm_weights': tf.cast(slot_used, tf.float32),
  }

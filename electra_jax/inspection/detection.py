"""The inspection itself: mask as pre-training masks, sample from the generator, and read the
main network's P(replaced) for every token (`objective.sample_and_corrupt`, the step's own
corruption)."""

from __future__ import annotations

import dataclasses
from typing import Sequence

import jax
import numpy as np
import tensorflow as tf

from electra_jax.core import model as model_lib
from electra_jax.core import objective
from electra_jax.data import masking
from electra_jax.data import pretraining
from electra_jax.errors import UserError
from electra_jax.inspection.loading import Checkpoint

_SALT_MASK = 0x1A5  # the inspector's mask seed is [--seed, _SALT_MASK]


@dataclasses.dataclass
class Inspection:
  """One example, real tokens only: every array is `[length]`.

  Attributes:
    title: what the example is.
    input_ids: the original tokens.
    masked: positions the masking chose (the generator predicts these).
    generator_input_ids: what the generator saw there: [MASK], a random token or the original.
    corrupted_ids: what the discriminator saw: the generator's samples written into the original.
    p_replaced: the discriminator's sigmoid.
    pieces, generator_input_pieces, corrupted_pieces: the vocabulary entries of those ids.
  """
  title: str
  input_ids: np.ndarray
  masked: np.ndarray
  generator_input_ids: np.ndarray
  corrupted_ids: np.ndarray
  p_replaced: np.ndarray
  pieces: list[str]
  generator_input_pieces: list[str]
  corrupted_pieces: list[str]

  @property
  def replaced(self) -> np.ndarray:
    """The discriminator's label: a sample that differs from the original (a correct one is not)."""
    return self.corrupted_ids != self.input_ids


def mask_examples(checkpoint: Checkpoint, input_ids, token_type_ids, seed: int) -> dict:
  """The training masking (`mask_batch`, the run's options) of `[n, length]` examples, as numpy."""
  options = pretraining.masking_options_for(checkpoint.spec, checkpoint.tokenizer)
  batch = masking.mask_batch(
      {'input_ids': tf.constant(input_ids, tf.int32),
       'token_type_ids': tf.constant(token_type_ids, tf.int32)},
      tf.constant([seed, _SALT_MASK], tf.int64), options)
  return {k: np.asarray(v) for k, v in batch.items()}


def sample_keys(seed: int, count: int):
  """One sampling key per example, as the trainer draws them (`jax.random.split`)."""
  return jax.random.split(jax.random.key(seed), count)


def _replaced_token_detection(checkpoint: Checkpoint, batch: dict, seed: int):
  """(corrupted ids, P(replaced)) `[n, length]`: generator, sampling, corruption, discriminator."""
  pretrained, electra = checkpoint.pretrained, checkpoint.spec.electra
  generator = model_lib.Generator(pretrained.gen_config)
  detect = _detector(checkpoint)

  @jax.jit
  def forward(gen_params, disc_params, batch, keys):
    gen_logits = generator.apply({'params': gen_params}, batch['masked_input_ids'],
                                 batch['token_type_ids'], batch['attention_mask'],
                                 batch['masked_lm_positions'])  # [n, K, vocab]
    _, corrupted = objective.sample_and_corrupt(gen_logits, batch, keys, electra)
    return corrupted, detect(disc_params, corrupted, batch['token_type_ids'],
                             batch['attention_mask'])

  corrupted, p_replaced = forward(pretrained.gen_params, pretrained.disc_params, batch,
                                  sample_keys(seed, batch['input_ids'].shape[0]))
  return np.asarray(corrupted), np.asarray(p_replaced, np.float64)


def _detector(checkpoint: Checkpoint):
  """(main params, ids, token types, attention mask) -> P(replaced) `[n, length]`, read from the
  main network as its objective says (`Objective.replaced_logits`)."""
  trained_by = checkpoint.pretrained.trained_by
  main = trained_by.main_network(checkpoint.pretrained.disc_config)

  def detect(params, input_ids, token_type_ids, attention_mask):
    outputs = main.apply({'params': params}, input_ids, token_type_ids, attention_mask)
    return jax.nn.sigmoid(trained_by.replaced_logits(outputs))
  return detect


def _score(checkpoint: Checkpoint, input_ids, token_type_ids, attention_mask):
  """P(replaced) `[n, length]` of the main network's detector on the ids as they are."""
  p_replaced = jax.jit(_detector(checkpoint))(checkpoint.pretrained.disc_params, input_ids,
                                              token_type_ids, attention_mask)
  return np.asarray(p_replaced, np.float64)


def inspect_examples(checkpoint: Checkpoint, input_ids, token_type_ids, *, seed: int = 0,
                     titles: Sequence[str] | None = None,
                     as_typed: bool = False) -> list[Inspection]:
  """Masks, samples and scores `[n, length]` examples (padding allowed) as pre-training does.

  With `as_typed`, nothing is masked or sampled: the discriminator scores the ids as given.
  """
  tokenizer = checkpoint.tokenizer
  input_ids = np.asarray(input_ids, np.int32)
  token_type_ids = np.asarray(token_type_ids, np.int32)
  count = input_ids.shape[0]
  titles = list(titles or [f'example {i + 1}' for i in range(count)])
  if as_typed:
    attention_mask = (input_ids != tokenizer.pad_id).astype(np.int32)
    masked = np.zeros(input_ids.shape, bool)
    generator_input, corrupted = input_ids, input_ids
    p_replaced = _score(checkpoint, input_ids, token_type_ids, attention_mask)
  else:
    if checkpoint.pretrained.gen_params is None:
      raise UserError(
          f'{checkpoint.name} has a discriminator but no generator, which masking and sampling '
          'need: point --workdir at the pre-training run or at an export holding generator/ '
          '(or give --generator=DIR), or add --score_as_typed to score the text as typed.')
    batch = mask_examples(checkpoint, input_ids, token_type_ids, seed)
    attention_mask = batch['attention_mask']
    masked = np.zeros(input_ids.shape, bool)  # every used slot, also one that kept its token
    for row in range(count):
      used = batch['masked_lm_weights'][row] > 0
      masked[row, batch['masked_lm_positions'][row][used]] = True
    generator_input = batch['masked_input_ids']
    corrupted, p_replaced = _replaced_token_detection(checkpoint, batch, seed)

  piece = tokenizer.id_to_piece
  inspections = []
  for row in range(count):
    real = attention_mask[row].astype(bool)
    ids, gen_ids, cor_ids = input_ids[row][real], generator_input[row][real], corrupted[row][real]
    inspections.append(Inspection(
        title=titles[row], input_ids=ids, masked=masked[row][real], generator_input_ids=gen_ids,
        corrupted_ids=cor_ids, p_replaced=p_replaced[row][real],
        pieces=[piece(i) for i in ids], generator_input_pieces=[piece(i) for i in gen_ids],
        corrupted_pieces=[piece(i) for i in cor_ids]))
  return inspections


def summary(inspection: Inspection) -> str:
  replaced, p = inspection.replaced, inspection.p_replaced
  flagged = p > 0.5
  parts = [f'{len(p)} tokens', f'{int(inspection.masked.sum())} masked',
           f'{int(replaced.sum())} replaced',
           f'{int(flagged.sum())} flagged (P > 0.5), {int((flagged & replaced).sum())} of them '
           'replaced']
  for name, where in (('replaced', replaced), ('original', ~replaced)):
    if where.any():
      parts.append(f'mean P {name} {float(np.mean(p[where])):.3f}')
  return ', '.join(parts)

"""The inspection itself: mask as pre-training masks, sample from the generator, and read the
main network (`objective.sample_and_corrupt`, the step's own corruption).

What is read depends on the objective that trained the main network (`Objective.detector`): a
replaced-token detector gives P(replaced) for every token; a masked LM with no detector ('mlm',
'replace_mlm') gives its top-1 prediction and P(original) at every masked position, from the
input it trained on (the masked text for 'mlm', the generator-corrupted text for 'replace_mlm').
"""

from __future__ import annotations

import dataclasses
from typing import Sequence

import jax
import jax.numpy as jnp
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
    corrupted_ids: what the main network saw: the generator's samples written into the original
      (for 'mlm', which has no generator, the masked text itself).
    p_replaced: the detector's P(replaced); None for a masked LM.
    pieces, generator_input_pieces, corrupted_pieces: the vocabulary entries of those ids.
    predicted_pieces: a masked LM's top-1 prediction at the masked positions ('' elsewhere);
      None for a detector.
    p_original: a masked LM's probability of the original token at the masked positions (NaN
      elsewhere); None for a detector.
  """
  title: str
  input_ids: np.ndarray
  masked: np.ndarray
  generator_input_ids: np.ndarray
  corrupted_ids: np.ndarray
  p_replaced: np.ndarray | None
  pieces: list[str]
  generator_input_pieces: list[str]
  corrupted_pieces: list[str]
  predicted_pieces: list[str] | None = None
  p_original: np.ndarray | None = None
  has_generator: bool = True  # False for 'mlm': the main network saw the masked text itself

  @property
  def is_masked_lm(self) -> bool:
    return self.p_replaced is None

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


def _main_input(checkpoint: Checkpoint):
  """(generator params, batch, sampling keys) -> what the main network sees `[n, length]`: the
  generator's samples written into the text (`objective.sample_and_corrupt`), or, for an
  objective without a generator ('mlm'), the masked text itself."""
  pretrained = checkpoint.pretrained
  if not pretrained.trained_by.has_generator:
    return lambda gen_params, batch, keys: batch['masked_input_ids']
  generator, electra = model_lib.Generator(pretrained.gen_config), checkpoint.spec.electra

  def corrupt(gen_params, batch, keys):
    gen_logits = generator.apply({'params': gen_params}, batch['masked_input_ids'],
                                 batch['token_type_ids'], batch['attention_mask'],
                                 batch['masked_lm_positions'])  # [n, K, vocab]
    return objective.sample_and_corrupt(gen_logits, batch, keys, electra)[1]
  return corrupt


def _replaced_token_detection(checkpoint: Checkpoint, batch: dict, seed: int):
  """(corrupted ids, P(replaced)) `[n, length]`: generator, sampling, corruption, discriminator."""
  pretrained = checkpoint.pretrained
  main_input, detect = _main_input(checkpoint), _detector(checkpoint)

  @jax.jit
  def forward(gen_params, disc_params, batch, keys):
    corrupted = main_input(gen_params, batch, keys)
    return corrupted, detect(disc_params, corrupted, batch['token_type_ids'],
                             batch['attention_mask'])

  corrupted, p_replaced = forward(pretrained.gen_params, pretrained.disc_params, batch,
                                  sample_keys(seed, batch['input_ids'].shape[0]))
  return np.asarray(corrupted), np.asarray(p_replaced, np.float64)


def _masked_lm_predictions(checkpoint: Checkpoint, batch: dict, seed: int):
  """A masked LM's reading of the masked slots: (what it saw `[n, length]`, top-1 ids and
  P(original) `[n, K]`), on the input its objective trains it on."""
  pretrained = checkpoint.pretrained
  main = pretrained.trained_by.main_network(pretrained.disc_config)  # reads the masked positions
  main_input = _main_input(checkpoint)

  @jax.jit
  def forward(gen_params, main_params, batch, keys):
    seen = main_input(gen_params, batch, keys)
    logits = main.apply({'params': main_params}, seen, batch['token_type_ids'],
                        batch['attention_mask'], batch['masked_lm_positions'])  # [n, K, vocab]
    probs = jax.nn.softmax(logits.astype(jnp.float32), axis=-1)
    p_original = jnp.take_along_axis(probs, batch['masked_lm_ids'][..., None], axis=-1)[..., 0]
    return seen, jnp.argmax(logits, axis=-1), p_original

  seen, predicted, p_original = forward(pretrained.gen_params, pretrained.disc_params, batch,
                                        sample_keys(seed, batch['input_ids'].shape[0]))
  return np.asarray(seen), np.asarray(predicted), np.asarray(p_original, np.float64)


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

  With `as_typed`, nothing is masked or sampled: the detector scores the ids as given.
  """
  tokenizer, trained_by = checkpoint.tokenizer, checkpoint.pretrained.trained_by
  masked_lm = trained_by.detector is None
  input_ids = np.asarray(input_ids, np.int32)
  token_type_ids = np.asarray(token_type_ids, np.int32)
  count = input_ids.shape[0]
  titles = list(titles or [f'example {i + 1}' for i in range(count)])
  predicted = p_original = None
  if as_typed and masked_lm:
    raise UserError(
        f'{checkpoint.name} holds a masked LM (electra.objective={trained_by.name!r}) with no '
        'replaced-token detector to score the text as typed: drop --score_as_typed to see its '
        'predictions at the masked positions.')
  if as_typed:
    attention_mask = (input_ids != tokenizer.pad_id).astype(np.int32)
    masked = np.zeros(input_ids.shape, bool)
    generator_input, corrupted = input_ids, input_ids
    p_replaced = _score(checkpoint, input_ids, token_type_ids, attention_mask)
  else:
    if trained_by.has_generator and checkpoint.pretrained.gen_params is None:
      raise UserError(
          f'{checkpoint.name} has a {trained_by.main_export} but no generator, which masking '
          'and sampling need: point --workdir at the pre-training run or at an export holding '
          'generator/ (or give --generator=DIR)'
          + ('.' if masked_lm else ', or add --score_as_typed to score the text as typed.'))
    batch = mask_examples(checkpoint, input_ids, token_type_ids, seed)
    attention_mask = batch['attention_mask']
    masked = np.zeros(input_ids.shape, bool)  # every used slot, also one that kept its token
    for row in range(count):
      used = batch['masked_lm_weights'][row] > 0
      masked[row, batch['masked_lm_positions'][row][used]] = True
    generator_input = batch['masked_input_ids']
    if masked_lm:
      p_replaced = None
      corrupted, slot_predictions, slot_p_original = _masked_lm_predictions(checkpoint, batch,
                                                                            seed)
      predicted = np.full(input_ids.shape, -1, np.int64)
      p_original = np.full(input_ids.shape, np.nan)
      for row in range(count):
        used = batch['masked_lm_weights'][row] > 0
        positions = batch['masked_lm_positions'][row][used]
        predicted[row, positions] = slot_predictions[row][used]
        p_original[row, positions] = slot_p_original[row][used]
    else:
      corrupted, p_replaced = _replaced_token_detection(checkpoint, batch, seed)

  piece = tokenizer.id_to_piece
  inspections = []
  for row in range(count):
    real = attention_mask[row].astype(bool)
    ids, gen_ids, cor_ids = input_ids[row][real], generator_input[row][real], corrupted[row][real]
    inspections.append(Inspection(
        title=titles[row], input_ids=ids, masked=masked[row][real], generator_input_ids=gen_ids,
        corrupted_ids=cor_ids, p_replaced=None if masked_lm else p_replaced[row][real],
        pieces=[piece(i) for i in ids], generator_input_pieces=[piece(i) for i in gen_ids],
        corrupted_pieces=[piece(i) for i in cor_ids],
        predicted_pieces=None if predicted is None else [
            piece(i) if i >= 0 else '' for i in predicted[row][real]],
        p_original=None if p_original is None else p_original[row][real],
        has_generator=trained_by.has_generator))
  return inspections


def summary(inspection: Inspection) -> str:
  if inspection.is_masked_lm:
    masked = inspection.masked
    right = sum(inspection.predicted_pieces[i] == inspection.pieces[i]
                for i in np.flatnonzero(masked))
    parts = [f'{len(masked)} tokens', f'{int(masked.sum())} masked']
    if inspection.has_generator:
      parts.append(f'{int((masked & inspection.replaced).sum())} replaced by the generator')
    parts.append(f'top-1 right at {right} of {int(masked.sum())}')
    if masked.any():
      parts.append(f'mean P(original) {float(np.mean(inspection.p_original[masked])):.3f}')
    return ', '.join(parts)
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

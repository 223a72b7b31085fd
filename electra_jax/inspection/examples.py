"""What the inspector reads: typed text, or the first examples of a run's eval data, as
`[n, length]` ids and token types padded as training pads."""

from __future__ import annotations

import sys

import numpy as np

from electra_jax.data import pretraining
from electra_jax.data.tokenizers import hf as hf_tokenizer
from electra_jax.errors import UserError
from electra_jax.inspection.loading import Checkpoint
from electra_jax.spec import run as run_spec


def encode_text(checkpoint: Checkpoint, text: str):
  """`[CLS] text [SEP]` padded to the sequence length, as `[1, length]` ids and token types.

  Padded as training pads (the masking draws its K slots from the whole row; padding is never
  chosen nor attended to). A longer text is truncated, with a note on stderr.
  """
  tokenizer = checkpoint.tokenizer
  pieces = tokenizer.encode(text)
  if not pieces:
    raise UserError(f'--text={text!r} has no tokens: give a sentence.')
  length = checkpoint.spec.seq_length
  if len(pieces) > length - 2:
    print(f'note: the text has {len(pieces)} tokens; the first {length - 2} are inspected (the '
          f'sequence length is {length} with [CLS] and [SEP]).', file=sys.stderr)
    pieces = pieces[:length - 2]
  ids = np.full((1, length), tokenizer.pad_id, np.int32)
  ids[0, :len(pieces) + 2] = [tokenizer.cls_id, *pieces, tokenizer.sep_id]
  return ids, np.zeros_like(ids)


def eval_examples(checkpoint: Checkpoint, count: int):
  """The first `count` packed examples of the run's eval data: `[count, length]` ids and types."""
  if not checkpoint.is_workdir:
    raise UserError(f'--from_eval needs a pre-training run (its config names the eval data); '
                    f'{checkpoint.name} is a Hugging Face directory: use --text.')
  config = checkpoint.spec.config.copy_and_resolve_references()
  if config.data.source == 'synthetic':
    raise UserError(f'{checkpoint.name} was trained on synthetic batches, which have no text: '
                    'use --text.')
  config.train.batch_size = count  # eval is unshuffled: the first `count` examples in order
  config.tokenizer.update(hf_tokenizer.tokenizer_config_fields(checkpoint.tokenizer))
  try:
    batch = next(iter(pretraining.make_dataset(run_spec.load(config), 'eval')))
  except (ValueError, FileNotFoundError) as error:  # e.g. the run's text files moved
    raise UserError(f'cannot read the eval data of {checkpoint.name}: {error}') from error
  return (np.asarray(batch['input_ids'], np.int32),
          np.asarray(batch['token_type_ids'], np.int32))

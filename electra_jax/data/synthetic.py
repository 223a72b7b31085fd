"""Synthetic masked batches: the train step's throughput without any input pipeline.

`config.data.source = 'synthetic'` feeds random, well-formed batches (full-length sequences,
`[CLS] ... [SEP] ... [SEP]`, masked positions drawn without replacement). Used by the step
benchmark and by the multi-host tests: batch `step` is a fixed function of (seed, step), and host
`i` of `n` gets rows `[i*B/n, (i+1)*B/n)` of it, so any host layout sees the same global batch.
"""

from __future__ import annotations

import numpy as np

CLS_ID, SEP_ID, MASK_ID, FIRST_REGULAR_ID = 2, 3, 4, 5


def synthetic_batch(seed: int, step: int, *, batch_size: int, max_seq_length: int,
                    max_predictions: int, vocab_size: int) -> dict[str, np.ndarray]:
  """The global batch number `step`, as numpy arrays with the pipeline's keys and dtypes."""
  rng = np.random.default_rng([seed, step])
  length = max_seq_length
  input_ids = rng.integers(FIRST_REGULAR_ID, vocab_size, size=(batch_size, length), dtype=np.int32)
  split = length // 2
  input_ids[:, 0] = CLS_ID
  input_ids[:, split] = SEP_ID
  input_ids[:, -1] = SEP_ID
  token_type_ids = np.zeros_like(input_ids)
  token_type_ids[:, split + 1:] = 1
  candidates = np.array([i for i in range(length) if i not in (0, split, length - 1)])
  positions = np.stack([np.sort(rng.choice(candidates, max_predictions, replace=False))
                        for _ in range(batch_size)]).astype(np.int32)
  masked_lm_ids = np.take_along_axis(input_ids, positions, axis=1)
  masked_input_ids = input_ids.copy()
  np.put_along_axis(masked_input_ids, positions, MASK_ID, axis=1)
  return {
      'input_ids': input_ids,
      'attention_mask': np.ones_like(input_ids),
      'token_type_ids': token_type_ids,
      'masked_input_ids': masked_input_ids,
      'masked_lm_positions': positions,
      'masked_lm_ids': masked_lm_ids,
      'masked_lm_weights': np.ones(positions.shape, np.float32),
  }


class SyntheticIterator:
  """Host-local slices of the synthetic global batches; its whole state is the next step."""

  def __init__(self, config, process_index: int = 0, process_count: int = 1, start_step: int = 0,
               max_predictions: int = 0):
    self._config = config
    self._rows = config.train.batch_size // process_count
    self._first_row = process_index * self._rows
    self._max_predictions = max_predictions
    self.step = start_step

  def __iter__(self):
    return self

  def __next__(self) -> dict[str, np.ndarray]:
    c = self._config
    batch = synthetic_batch(c.seed, self.step, batch_size=c.train.batch_size,
                            max_seq_length=c.data.max_seq_length,
                            max_predictions=self._max_predictions, vocab_size=c.model.vocab_size)
    self.step += 1
    return {k: v[self._first_row:self._first_row + self._rows] for k, v in batch.items()}

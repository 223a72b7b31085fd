"""The trainer's one data entry point: the tokenizer, resolved once, and this host's batches.

  resolve_tokenizer(spec, workdir[, pretrained])  -> Tokenizer (None for synthetic batches)
      picks the tokenizer (`tokenizer.path`, else `init_from`'s, else the built-in corpus's copy
      in the workdir), records it in the run's config (`spec.config.tokenizer`), and runs the
      data checks that need I/O (`pretraining.validate_data_config`) once.
  HostInputs(spec, tokenizer, process_index)
      .checkpoint_iterator  the training tf.data iterator that every checkpoint saves (None for
                            synthetic batches, whose state is the step)
      .train_batches(start_step)  host-local numpy batches, resumed at `start_step`
      .eval_batches()             a fresh pass over the fixed eval batches (numpy), or None

Synthetic batches (`data.source='synthetic'`: benchmarks, multi-host tests) sit behind the same
interface, so the loop never asks which source it reads.
"""

from __future__ import annotations

from typing import Any, Iterator, Optional

import ml_collections
import tensorflow as tf

from electra_jax.data import bad_records
from electra_jax.data import pretraining
from electra_jax.data import synthetic
from electra_jax.data import tokenizers
from electra_jax.interop import checkpoint as checkpoint_lib
from electra_jax.interop import pretrained as pretrained_lib
from electra_jax.spec import run as run_spec

_BUILTIN_COPY = 'tokenizer/builtin.model'  # the workdir's copy of the built-in tokenizer


def _record_tokenizer_path(config: ml_collections.ConfigDict, workdir: str,
                           pretrained: Any = None) -> None:
  """Sets `config.tokenizer` when unset: init_from's tokenizer, else the workdir's built-in copy.

  `pretrained` is `init_from` already loaded (`pretrained.load_checkpoint`), so that the checkpoint
  is read once; without it only its tokenizer is read.
  """
  if not config.tokenizer.path and config.init_from:
    pretrained_lib.use_source_tokenizer(config, pretrained)
  if not config.tokenizer.path and config.data.source == 'builtin':
    kept = f'{workdir}/{_BUILTIN_COPY}'
    if not tf.io.gfile.exists(kept):
      checkpoint_lib.copy_file(tokenizers.builtin_tokenizer_path(config), kept)
    config.tokenizer.path = kept


def resolve_tokenizer(spec: run_spec.RunSpec, workdir: str,
                      pretrained: Any = None) -> Optional[tokenizers.Tokenizer]:
  """The run's tokenizer, recorded in `spec.config.tokenizer`; the data sources checked (see
  above)."""
  if spec.config.data.source == 'synthetic':
    return None
  _record_tokenizer_path(spec.config, workdir, pretrained)
  return pretraining.validate_data_config(spec)


def _numpy(batches) -> Iterator[dict[str, Any]]:
  """The batches as numpy; a bad record met by tf.data (on_bad_record=error) is its UserError."""
  iterator = iter(batches)
  while True:
    try:
      element = next(iterator)
    except StopIteration:
      return
    except tf.errors.OpError as error:
      user_error = bad_records.user_error_from(error)
      if user_error is None:
        raise
      raise user_error from None
    yield {k: v.numpy() for k, v in element.items()}


class HostInputs:
  """This host's training and eval batches, from tf.data or synthetic, as numpy dicts."""

  def __init__(self, spec: run_spec.RunSpec, tokenizer: Optional[tokenizers.Tokenizer],
               process_index: int = 0):
    self._spec = spec
    self._process_index = process_index
    self.synthetic = spec.config.data.source == 'synthetic'
    self.tokenizer_files = [] if tokenizer is None else tokenizer.files()
    self.checkpoint_iterator = None
    self._eval_dataset = None
    if not self.synthetic:
      self.checkpoint_iterator = iter(pretraining.make_dataset(
          spec, 'train', process_index, tokenizer=tokenizer))
      if spec.config.train.eval_every:
        self._eval_dataset = pretraining.make_dataset(spec, 'eval', process_index,
                                                      tokenizer=tokenizer)

  @property
  def has_eval(self) -> bool:
    """Whether the run evaluates: eval_every > 0 and a real (not synthetic) source."""
    return self._eval_dataset is not None

  def train_batches(self, start_step: int) -> Iterator[dict[str, Any]]:
    """Training batches from `start_step` on (a restored tf.data iterator is already there)."""
    if self.synthetic:
      return synthetic.SyntheticIterator(self._spec.config, self._process_index,
                                         self._spec.process_count, start_step,
                                         self._spec.max_predictions)
    return _numpy(self.checkpoint_iterator)

  def eval_batches(self) -> Optional[Iterator[dict[str, Any]]]:
    """A fresh pass over the eval batches (the same ones every time), or None."""
    return None if self._eval_dataset is None else _numpy(iter(self._eval_dataset))

"""Loading a run or an export for inspection: the networks, the tokenizer and the config the
masking follows (the run's own, or configs/default.py for a Hugging Face directory)."""

from __future__ import annotations

import dataclasses

import tensorflow as tf

from electra_jax.configs import default as default_config
from electra_jax.errors import UserError
from electra_jax.interop import pretrained as pretrained_lib
from electra_jax.spec import run as run_spec


@dataclasses.dataclass
class Checkpoint:
  """What inspection needs from a run or an export.

  Attributes:
    name: how the source is shown (the path, and the step for a workdir).
    pretrained: the standalone networks and the tokenizer.
    spec: the run spec of the run's own config for a workdir; for a Hugging Face directory, of
      configs/default.py with `data.max_seq_length` set to the model's position count.
  """
  name: str
  pretrained: pretrained_lib.Pretrained
  spec: run_spec.RunSpec

  @property
  def tokenizer(self):
    return self.pretrained.tokenizer

  @property
  def is_workdir(self) -> bool:
    """Whether `spec` is the run's own (then its config also names the eval data)."""
    return self.pretrained.source_config is not None


def load(path: str, *, step: int | None = None, generator_path: str | None = None) -> Checkpoint:
  """Loads a workdir or Hugging Face directory for inspection (`pretrained.load_checkpoint`).

  Raises:
    UserError: naming the problem and the fix (missing path or step, no tokenizer, ...).
  """
  if not tf.io.gfile.exists(path):
    raise UserError(f'--workdir={path} does not exist: give a pre-training run directory or '
                    'a Hugging Face directory (python -m electra_jax.convert --from=workdir '
                    '--to=hf writes one).')
  try:
    kind = pretrained_lib.detect_kind(path)
    if kind == 'tf1':
      raise UserError(f'{path} is an original TF1 checkpoint: convert it first with '
                      'python -m electra_jax.convert --from=tf1 --to=hf --src=... --dst=DIR, '
                      'then inspect DIR.')
    if generator_path and kind != 'hf':
      raise UserError(f'--generator applies to Hugging Face directories; {path} is a '
                      'pre-training run, which holds its own generator.')
    pretrained = pretrained_lib.load_checkpoint(path, step=step, generator_path=generator_path)
  except (ValueError, FileNotFoundError) as error:  # the loaders name the file and the fix
    raise UserError(str(error)) from error
  if pretrained.tokenizer is None:
    raise UserError(f'{path} carries no tokenizer (no vocab.txt or SentencePiece .model): '
                    'the inspector needs the one the model was trained with.')
  if pretrained.source_config is not None:
    return Checkpoint(f'{path} (step {pretrained.step})', pretrained,
                      run_spec.load(pretrained.source_config))
  config = default_config.get_config()
  config.model.update(pretrained.disc_config)
  config.data.max_seq_length = pretrained.disc_config.max_position_embeddings
  return Checkpoint(path, pretrained, run_spec.load(config))

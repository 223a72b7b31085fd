"""Where fine-tuning starts: the pre-trained encoder and tokenizer, the hyperparameters for its
size, and the checks of the fine-tuning config.

Evaluation protocol: as the original (`run_finetuning.py` evaluates each trial once, after
training), the reported model is the one after the last epoch. `train.select_best_epoch=True`
evaluates on dev after every epoch and keeps the best; that reads higher than the paper's
protocol, so results.json says so (`non_default_switches` of `PROTOCOL_SWITCHES`).
"""

from __future__ import annotations

import dataclasses
from typing import Any, Optional

import flax.linen as nn
import jax
import ml_collections
import numpy as np

from electra_jax.data import tokenizers
from electra_jax.errors import UserError
from electra_jax.finetune import layerwise
from electra_jax.interop import pretrained as pretrained_lib
from electra_jax.parallel import mesh as mesh_lib
from electra_jax.spec import validate

MODEL_SIZES = ('small', 'base', 'large')
# The reference fine-tuning rates per model size (ELECTRA.md): (learning rate, layer-wise decay).
_SIZE_HPARAMS = {'small': (1e-4, 0.8), 'base': (1e-4, 0.8), 'large': (5e-5, 0.9)}
# Compute settings that the fine-tuning config may choose for a loaded architecture.
_COMPUTE_FIELDS = ('dtype', 'param_dtype', 'scan_layers', 'remat')
# Switches that change what a reported number means, with the original's setting, which is the
# default in configs/finetune/ (tests/finetune/test_finetune_train.py checks they agree). A task's
# results.json lists every one that a run sets otherwise (`non_default_switches`).
PROTOCOL_SWITCHES = {
    'train.select_best_epoch': False,  # run_finetuning.py: evaluate once, after training
    'train.bias_correction': False,  # optimization.AdamWeightDecayOptimizer
    'train.layerwise_lr_rule': 'original',  # optimization._get_layer_lrs
    'task.classifier_head': 'electra',  # classification_tasks.py (GLUE)
    'task.double_unordered': True,  # configure_finetuning.double_unordered (GLUE)
    'task.qa_head': 'joint',  # qa_tasks.py: joint_prediction, answerable_classifier (SQuAD)
    'squad.null_score': 'classifier',  # qa_metrics.py: the classifier's logit alone (SQuAD)
}


@dataclasses.dataclass
class StartingPoint:
  """The encoder to fine-tune: its config, its weights (None = random init) and the tokenizer."""
  model_config: ml_collections.ConfigDict
  encoder_params: Optional[dict[str, Any]]  # the main network's standalone tree (numpy) or None
  tokenizer: Any
  tokenizer_files: list[str]
  description: str


def load_starting_point(config: ml_collections.ConfigDict) -> StartingPoint:
  """Reads `config.init_from` (workdir, HF directory or TF1 prefix) through the converter.

  With `init_from=''` the model is `config.model`, randomly initialised ("from scratch": for
  tests and baselines, not for real scores). The tokenizer is `config.tokenizer.path` when
  given, else the checkpoint's; from scratch with no path, the built-in corpus's model.
  """
  if config.init_from:
    pretrained = pretrained_lib.load_checkpoint(
        config.init_from, step=None if config.init_step < 0 else config.init_step)
    model_config = ml_collections.ConfigDict(pretrained.disc_config.to_dict())
    params = jax.tree.map(np.asarray, nn.meta.unbox(pretrained.disc_params))
    tokenizer, files = pretrained.tokenizer, list(pretrained.tokenizer_files or [])
    # The main network's encoder: ELECTRA's discriminator, or the masked LM of an MLM objective.
    description = (f'pre-trained {pretrained.trained_by.main_export} (electra.objective='
                   f'{pretrained.objective!r}) from {config.init_from}')
    for field in _COMPUTE_FIELDS:
      model_config[field] = config.model[field]
  else:
    model_config = ml_collections.ConfigDict(config.model.to_dict())
    params, tokenizer, files = None, None, []
    description = 'random initialisation (from scratch)'
  if config.train.dropout_prob >= 0:
    model_config.hidden_dropout_prob = config.train.dropout_prob
    model_config.attention_dropout_prob = config.train.dropout_prob
  validate.validate_model_config(model_config)

  if config.tokenizer.path:
    tokenizer = tokenizers.load_tokenizer(config.tokenizer)
    files = tokenizer.files()
  elif tokenizer is None and not config.init_from:
    tokenizer = tokenizers.load_tokenizer(
        config.tokenizer, tokenizers.builtin_tokenizer_path(config))
    files = tokenizer.files()
  elif tokenizer is None:
    raise UserError(f'{config.init_from} carries no tokenizer: pass the one it was pre-trained '
                    'with as --config.tokenizer.path (and --config.tokenizer.type).')
  if tokenizer.vocab_size > model_config.vocab_size:
    raise UserError(
        f'The tokenizer has {tokenizer.vocab_size} pieces but the model only '
        f'{model_config.vocab_size} word embeddings: use the tokenizer the model was '
        'pre-trained with (or, from scratch, raise config.model.vocab_size).')
  return StartingPoint(model_config, params, tokenizer, files, description)


def model_size(config: ml_collections.ConfigDict, model_config: ml_collections.ConfigDict) -> str:
  """`config.model_size`, or guessed from the width: >= 1024 large, >= 768 base, else small."""
  if config.model_size:
    if config.model_size not in MODEL_SIZES:
      raise UserError(f'config.model_size={config.model_size!r}; use one of {MODEL_SIZES} '
                      "or '' to derive it from the model.")
    return config.model_size
  if model_config.hidden_size >= 1024:
    return 'large'
  return 'base' if model_config.hidden_size >= 768 else 'small'


def resolve_hparams(config: ml_collections.ConfigDict, model_config: ml_collections.ConfigDict,
                    default_epochs: int) -> ml_collections.ConfigDict:
  """`config.train` with the per-size / per-task defaults (-1 fields) filled in."""
  hparams = ml_collections.ConfigDict(config.train.to_dict())
  size = model_size(config, model_config)
  learning_rate, decay = _SIZE_HPARAMS[size]
  if hparams.learning_rate < 0:
    hparams.learning_rate = learning_rate
  if hparams.layerwise_lr_decay < 0:
    hparams.layerwise_lr_decay = decay
  if hparams.num_epochs < 0:
    hparams.num_epochs = default_epochs
  hparams.model_size = size
  return hparams


def validate_finetune_config(config: ml_collections.ConfigDict, num_devices: int) -> None:
  """Up-front checks of the loop's fields; each error names the field and the fix."""
  t = config.train
  mesh = mesh_lib.MeshShape.of(config.mesh, num_devices)
  for field in ('batch_size', 'eval_batch_size'):
    validate.per_host_batch_size(t[field], jax.process_count(), f'config.train.{field}')
    validate.check_data_parallel_batch(f'config.train.{field}', t[field], mesh.data_parallel)
  if not 0.0 <= t.warmup_fraction <= 1.0:
    raise UserError(f'config.train.warmup_fraction={t.warmup_fraction} must be in [0, 1].')
  if t.layerwise_lr_rule not in layerwise.HEAD_DEPTH_OVER_LAYERS:
    raise UserError(f'config.train.layerwise_lr_rule={t.layerwise_lr_rule!r}; use one of '
                    f'{sorted(layerwise.HEAD_DEPTH_OVER_LAYERS)}.')
  if t.layerwise_lr_decay == 0 or t.layerwise_lr_decay > 1:
    raise UserError(f'config.train.layerwise_lr_decay={t.layerwise_lr_decay}: use a value in '
                    '(0, 1] (1 = no decay), or -1 for the per-size default.')
  if t.num_epochs == 0 or t.learning_rate == 0:
    raise UserError('config.train.num_epochs and learning_rate must be positive (or -1 for '
                    'the task / size default).')
  if not config.seeds:
    raise UserError('config.seeds is empty: give at least one seed, e.g. --config.seeds=0,1,2.')
  if len(set(config.seeds)) != len(config.seeds):
    raise UserError(f'config.seeds={tuple(config.seeds)} repeats a seed.')


def non_default_switches(config: ml_collections.ConfigDict) -> dict[str, Any]:
  """{'section.field': value} for each of `PROTOCOL_SWITCHES` the config sets otherwise."""
  changed = {}
  for path, original in PROTOCOL_SWITCHES.items():
    section, field = path.split('.')
    if field in config.get(section, {}) and config[section][field] != original:
      changed[path] = config[section][field]
  return changed

"""Writing a loaded checkpoint (`pretrained.Pretrained`) as Hugging Face directories or a workdir.

  write_hf       DST/discriminator and DST/generator: config.json, model.safetensors, tokenizer
                 (DST/masked_lm instead of DST/discriminator for the MLM `electra.objective`s).
  write_workdir  DST/checkpoints/0 (TrainState with a fresh optimizer, the full config, the
                 tokenizer) plus DST/tokenizer/, so pre-training can resume or start from it.

Both write into a temporary directory next to DST and rename it into place at the end, so a
failure leaves nothing half-written, and both refuse an existing DST unless `overwrite`.
"""

from __future__ import annotations

import contextlib
import os
import shutil
from typing import Any, Iterator
import uuid

import flax.linen as nn
import jax
import jax.numpy as jnp
import ml_collections
import numpy as np
from absl import logging

from electra_jax import startup
from electra_jax.core import model as model_lib
from electra_jax.core import objectives
from electra_jax.core import optimizer as optimizer_lib
from electra_jax.core import param_trees
from electra_jax.core.objectives.base import Objective
from electra_jax.data.tokenizers import hf as hf_tokenizer
from electra_jax.errors import UserError
from electra_jax.interop import checkpoint as checkpoint_lib
from electra_jax.interop import hf
from electra_jax.interop import train_state
from electra_jax.spec import run as run_spec
from electra_jax.spec import validate

SIZE_FIELDS = ('vocab_size', 'embedding_size', 'hidden_size', 'num_layers', 'num_heads',
               'intermediate_size', 'max_position_embeddings', 'type_vocab_size')
# Per-network fields a checkpoint fixes besides the sizes (its own training setup).
_CARRIED_FIELDS = ('hidden_dropout_prob', 'attention_dropout_prob', 'initializer_range',
                   'layer_norm_eps')
TOKENIZER_DIR = 'tokenizer'


# ---- Destinations ------------------------------------------------------------------------------

def check_destination(dst: str, overwrite: bool) -> None:
  """Raises before any work if `dst` cannot be written."""
  if '://' in dst:
    raise UserError(f'--dst={dst!r}: write to a local directory, then copy it (e.g. '
                    '`gsutil -m cp -r DST gs://...`); the atomic rename needs a local disk.')
  if os.path.exists(dst) and not overwrite:
    raise UserError(f'{dst} already exists; pass --overwrite to replace it, or choose another '
                    '--dst.')
  startup.check_output_dir(dst, 'dst', create=False)  # its parent takes the temporary directory


@contextlib.contextmanager
def atomic_directory(dst: str, overwrite: bool) -> Iterator[str]:
  """Yields a fresh temporary directory that replaces `dst` when the block succeeds."""
  check_destination(dst, overwrite)
  dst = os.path.abspath(dst)
  os.makedirs(os.path.dirname(dst), exist_ok=True)
  temp = f'{dst}.tmp-{uuid.uuid4().hex[:8]}'
  os.makedirs(temp)
  try:
    yield temp
  except BaseException:
    shutil.rmtree(temp, ignore_errors=True)
    raise
  if os.path.exists(dst):
    old = f'{dst}.old-{uuid.uuid4().hex[:8]}'
    os.rename(dst, old)
    os.rename(temp, dst)
    shutil.rmtree(old)
  else:
    os.rename(temp, dst)


def _check_tokenizer(pretrained) -> None:
  tokenizer = pretrained.tokenizer
  if tokenizer is not None and tokenizer.vocab_size > pretrained.disc_config.vocab_size:
    raise UserError(f'The tokenizer has {tokenizer.vocab_size} tokens but the model only '
                    f'{pretrained.disc_config.vocab_size} word embeddings: it is not the '
                    'tokenizer this model was trained with.')


# ---- Hugging Face --------------------------------------------------------------------------------

def write_hf(pretrained, dst: str, *, overwrite: bool = False) -> list[str]:
  """Writes DST/discriminator (and DST/generator, if there is one); returns the directories."""
  _check_tokenizer(pretrained)
  # Per objective (`Objective.hf_networks`): a masked-LM main network is written to
  # DST/masked_lm as ElectraForMaskedLM; 'electra' writes what it always did.
  configs = {'discriminator': pretrained.disc_config, 'masked_lm': pretrained.disc_config,
             'generator': pretrained.gen_config}
  networks = [(name, configs[name], params, architecture) for name, architecture, params in
              pretrained.trained_by.hf_networks({'discriminator': pretrained.disc_params,
                                                 'generator': pretrained.gen_params})]
  with atomic_directory(dst, overwrite) as out:
    for name, config, params, architecture in networks:
      directory = os.path.join(out, name)
      hf.save_pretrained(directory, config, params, architecture)
      if pretrained.tokenizer is not None:
        hf_tokenizer.export_tokenizer(pretrained.tokenizer, directory,
                                      model_max_length=config.max_position_embeddings)
  if pretrained.tokenizer is None:
    logging.warning('The source has no tokenizer: %s carries none.', dst)
  return [os.path.join(os.path.abspath(dst), name) for name, _, _, _ in networks]


# ---- Pre-training workdir ------------------------------------------------------------------------

def generator_fraction(disc_config: ml_collections.ConfigDict,
                       gen_config: ml_collections.ConfigDict,
                       embedding_sharing: str = 'shared') -> float:
  """`electra.generator_hidden_fraction` that rebuilds `gen_config` from `disc_config`.

  Raises ValueError when the generator does not follow the reference size rule (same layers,
  heads = H_gen // 64, FFN = 4 H_gen; with sharing 'none' tables H_gen wide), which the jointly
  trained pretrainer builds it with.
  """
  fraction = gen_config.hidden_size / disc_config.hidden_size  # round(H * H_gen / H) == H_gen
  try:
    derived = validate.generator_config(disc_config, fraction, embedding_sharing)
  except ValueError as e:
    raise UserError(f'The generator (hidden {gen_config.hidden_size}) cannot be paired with '
                    f'the discriminator (hidden {disc_config.hidden_size}): {e}') from e
  wrong = [f'{k} {gen_config[k]} (the rule gives {derived[k]})' for k in SIZE_FIELDS
           if derived[k] != gen_config[k]]
  if wrong:
    raise UserError('The generator does not follow the reference size rule the pretrainer '
                    'uses (same layers as the discriminator, heads = H_gen // 64, FFN = 4 H_gen, '
                    f'embedding_sharing={embedding_sharing!r}): ' + ', '.join(wrong)
                    + '. Convert the discriminator directory alone to start a fresh '
                    'generator instead.')
  return fraction


def check_main_network(pretrained, written: Objective) -> None:
  """The objective `written` (a run's) must continue the main network `pretrained` holds: a
  discriminator is not a masked LM. A UserError names the objectives that fit."""
  source = pretrained.trained_by
  if written.main_network is not source.main_network:
    others = [name for name, o in objectives.REGISTRY.items()
              if o.main_network is source.main_network and name != source.name]
    raise UserError(
        f'The source\'s main network was trained by {source.name!r} (a {source.main_export}), '
        f'which config.electra.objective={written.name!r} cannot continue: pass '
        f'--config.electra.objective={source.name}'
        + (f' (or {", ".join(others)})' if others else '') + '.')


def workdir_spec(pretrained, base_config: ml_collections.ConfigDict,
                 tokenizer_path: str = '') -> run_spec.RunSpec:
  """The run spec of `base_config` with the model (and generator fraction) of `pretrained` and
  its tokenizer; a UserError when its objective cannot continue `pretrained`'s main network."""
  config = ml_collections.ConfigDict(base_config.to_dict())
  if pretrained.source_config:  # a workdir keeps its objective settings (sharing, fraction, ...)
    config.electra.update(pretrained.source_config['electra'])
  for field in SIZE_FIELDS + _CARRIED_FIELDS:
    config.model[field] = pretrained.disc_config[field]
  if pretrained.gen_config is not None:
    config.electra.generator_hidden_fraction = generator_fraction(
        config.model, pretrained.gen_config, config.electra.embedding_sharing)
  if config.data.max_seq_length > config.model.max_position_embeddings:
    logging.warning('data.max_seq_length %d -> %d, the model\'s position count.',
                    config.data.max_seq_length, config.model.max_position_embeddings)
    config.data.max_seq_length = config.model.max_position_embeddings
  config.init_from = ''
  if pretrained.tokenizer is not None:
    config.tokenizer.update(hf_tokenizer.tokenizer_config_fields(pretrained.tokenizer))
    config.tokenizer.path = tokenizer_path or config.tokenizer.path
  spec = run_spec.load(config)
  check_main_network(pretrained, spec.objective)
  return spec


def _fresh_generator(gen_config: ml_collections.ConfigDict, seed: int) -> dict[str, Any]:
  ids = jnp.zeros((1, 2), jnp.int32)
  params = model_lib.Generator(gen_config).init(jax.random.key(seed), ids, ids, ids, ids)
  return jax.tree.map(np.asarray, nn.meta.unbox(params['params']))


def joint_params(pretrained, spec: run_spec.RunSpec,
                 fresh_generator: dict[str, Any] | None = None) -> dict[str, Any]:
  """The pretrainer's joint tree for the run `spec` (scanned if it scans layers).

  A source without a generator gets `fresh_generator`, or one initialised from `config.seed`.
  """
  trains = spec.objective
  gen_params = pretrained.gen_params
  if gen_params is None and trains.has_generator:
    if fresh_generator is None:
      fresh_generator = _fresh_generator(spec.generator, spec.config.seed)
    gen_params = fresh_generator
  joint = trains.merge_params(pretrained.disc_params, gen_params, spec.embedding_sharing)
  if spec.discriminator.scan_layers:
    joint = param_trees.to_scanned_layers(joint)
  return joint


def write_workdir(pretrained, dst: str, base_config: ml_collections.ConfigDict, *,
                  overwrite: bool = False) -> ml_collections.ConfigDict:
  """Writes a workdir whose step-0 checkpoint holds `pretrained`; returns its config."""
  _check_tokenizer(pretrained)
  check_destination(dst, overwrite)
  dst = os.path.abspath(dst)
  names = [os.path.basename(f) for f in pretrained.tokenizer_files]
  spec = workdir_spec(pretrained, base_config,
                      os.path.join(dst, TOKENIZER_DIR, names[0]) if names else '')
  config = spec.config
  params = jax.tree.map(lambda x: jnp.asarray(x, jnp.float32), joint_params(pretrained, spec))
  tx = optimizer_lib.make_optimizer(config.train)
  state = train_state.fresh(params, tx)
  with atomic_directory(dst, overwrite) as out:
    files = []
    for source, name in zip(pretrained.tokenizer_files, names):
      files.append(os.path.join(out, TOKENIZER_DIR, name))
      checkpoint_lib.copy_file(source, files[-1])
    checkpointer = checkpoint_lib.Checkpointer(out, save_every=1, keep=1, keep_period=0)
    checkpointer.save(0, state, data_iterator=None, config=config.to_dict(),
                      tokenizer_files=files, force=True)
    checkpointer.close()
  return config

"""Loading any checkpoint as standalone networks and a tokenizer; `init_from`.

`load_checkpoint(path)` reads a pre-training workdir (`WORKDIR/checkpoints/<step>`), a Hugging Face
directory (a discriminator, or a parent holding `discriminator/` and `generator/`) or an original
TF1 checkpoint prefix (its `vocab.txt` from the same directory), detecting which (`detect_kind`),
into a `Pretrained`: the networks as numpy trees with unscanned layers, and the tokenizer.
`source_tokenizer` reads only the tokenizer. `initial_params` is continued pre-training
(`config.init_from`): the source's weights in a fresh run. A mistake the user can fix (a bad path,
a foreign or damaged file, shapes that differ from the config's) is a `UserError` naming it.
Writing is `export.py`; the conversion CLI is `convert.py`.
"""

from __future__ import annotations

import dataclasses
import os
from typing import Any, Sequence

import flax.linen as nn
import jax
import ml_collections
import numpy as np
import orbax.checkpoint as ocp
import tensorflow as tf
from absl import logging

from electra_jax import errors
from electra_jax.configs import default as default_config
from electra_jax.core import objectives
from electra_jax.core import param_trees
from electra_jax.data import tokenizers
from electra_jax.data.tokenizers import hf as hf_tokenizer
from electra_jax.errors import UserError
from electra_jax.interop import checkpoint as checkpoint_lib
from electra_jax.interop import export
from electra_jax.interop import hf
from electra_jax.interop import tf1
from electra_jax.spec import run as run_spec

KINDS = ('workdir', 'hf', 'tf1')
MASKED_LM_DIR = 'masked_lm'  # where an export puts a masked-LM main network


@dataclasses.dataclass
class Pretrained:
  """A loaded checkpoint: standalone networks (numpy, unscanned layers) and the tokenizer."""
  disc_config: ml_collections.ConfigDict  # the `config.model` schema of the main network
  # The MAIN network's tree: a `model.Discriminator` for ELECTRA, the masked LM of the other
  # objectives (`trained_by.main_network`). Tools that need a detector check `trained_by`.
  disc_params: dict[str, Any]
  gen_config: ml_collections.ConfigDict | None = None
  gen_params: dict[str, Any] | None = None  # `model.Generator` tree
  tokenizer: tokenizers.Tokenizer | None = None
  tokenizer_files: list[str] = dataclasses.field(default_factory=list)
  source_config: dict | None = None  # a workdir's run config (upgraded: `run_spec.upgrade`)
  step: int | None = None  # the checkpoint step, when the source is a workdir
  objective: str = objectives.DEFAULT  # what trained the main network (`objectives.NAMES`)

  @property
  def trained_by(self) -> objectives.Objective:
    return objectives.named(self.objective)


def _model_schema(config: ml_collections.ConfigDict) -> ml_collections.ConfigDict:
  """`config` restricted to the fields of `config.model`, with layers unscanned (as loaded)."""
  schema = default_config.get_config().model
  values = {k: config.get(k, schema[k]) for k in schema}
  values['scan_layers'] = False
  return ml_collections.ConfigDict(values)


# ---- Reading -----------------------------------------------------------------------------------

def detect_kind(path: str) -> str:
  """'workdir', 'hf' or 'tf1' from what `path` holds."""
  if tf.io.gfile.isdir(checkpoint_lib.checkpoint_dir(path)):
    return 'workdir'
  if any(tf.io.gfile.exists(os.path.join(path, *parts, 'config.json'))
         for parts in ((), ('discriminator',), (MASKED_LM_DIR,))):
    return 'hf'
  if tf1.is_tf1_checkpoint(path):
    return 'tf1'
  problem = 'is not a checkpoint' if tf.io.gfile.exists(path) else 'does not exist'
  raise UserError(f'{path!r} {problem}: expected a pre-training workdir (with checkpoints/), a '
                  'Hugging Face directory (with config.json, discriminator/config.json or '
                  'masked_lm/config.json) or a TF1 checkpoint prefix (PREFIX.index).')


def load_checkpoint(path: str, *, step: int | None = None, kind: str | None = None,
                    generator_path: str | None = None, num_heads: int | None = None,
                    generator_num_heads: int | None = None) -> Pretrained:
  """Loads a workdir, Hugging Face directory or TF1 prefix (auto-detected unless `kind`).

  Args:
    path: the source.
    step: workdir only: the checkpoint step (default: the latest).
    kind: expected kind; an error if the path holds another.
    generator_path: hf only: a generator directory (default: `path/generator` if present).
    num_heads, generator_num_heads: tf1 only: head counts when not hidden // 64.
  """
  detected = detect_kind(path)
  if kind is not None and kind != detected:
    raise UserError(f'--from={kind} but {path!r} looks like a {detected} source.')
  if step is not None and detected != 'workdir':
    raise UserError(f'step={step} applies to workdirs only; {path!r} is a {detected} source.')
  if detected == 'workdir':
    return _load_workdir(path, step)
  if detected == 'hf':
    return _load_hf(path, generator_path)
  return _load_tf1(path, num_heads, generator_num_heads)


def _workdir_step(checkpointer: checkpoint_lib.Checkpointer, path: str, step: int | None) -> int:
  steps = checkpointer.all_steps()
  if not steps:
    raise UserError(f'{path} has no finished checkpoint in {checkpoint_lib.checkpoint_dir(path)}.')
  if step is None:
    return steps[-1]
  if step not in steps:
    raise UserError(f'{path} has no checkpoint at step {step}; it has steps {steps}.')
  return step


def _restore_params(state_dir: str) -> dict[str, Any]:
  """Only the params of a saved TrainState, as numpy (no optimizer state, no devices needed)."""
  checkpointer = ocp.PyTreeCheckpointer()
  tree = checkpointer.metadata(state_dir).item_metadata.tree
  target = {'params': jax.tree.map(lambda m: np.zeros(m.shape, m.dtype), tree['params'])}
  restore_args = jax.tree.map(lambda _: ocp.RestoreArgs(restore_type=np.ndarray), target)
  restored = checkpointer.restore(state_dir, args=ocp.args.PyTreeRestore(
      item=target, restore_args=restore_args, partial_restore=True))
  return restored['params']


def _tokenizer_from_files(tokenizer_config: dict, files: Sequence[str]):
  """The run's tokenizer from the files saved with its checkpoint (None if there are none)."""
  kind = tokenizer_config.get('type', 'sentencepiece')
  by_name = {os.path.basename(f): f for f in files}
  wanted = os.path.basename(tokenizer_config.get('path', ''))
  suffix = '.model' if kind == 'sentencepiece' else '.txt'
  candidates = [by_name[wanted]] if wanted in by_name else [
      f for name, f in sorted(by_name.items()) if name.endswith(suffix)]
  if not candidates:
    return None
  config = ml_collections.ConfigDict(dict(tokenizer_config, path=candidates[0]))
  return tokenizers.load_tokenizer(config)


def _unreadable_checkpoint(path: str, step: int, error: Exception) -> UserError:
  return UserError(f'{path}: the checkpoint at step {step} cannot be read '
                   f'({type(error).__name__}: {errors.one_line(error)[:300]}). It is damaged or '
                   'not an electra-jax checkpoint; pass an older one with --step / init_step.')


def _load_workdir(path: str, step: int | None) -> Pretrained:
  checkpointer = checkpoint_lib.Checkpointer(path, save_every=1, keep=1, keep_period=0,
                                             read_only=True)
  try:
    step = _workdir_step(checkpointer, path, step)
    try:
      run_config = checkpointer.restore_config(step)
      files = checkpointer.restore_tokenizer_files(step)
    except Exception as error:  # noqa: BLE001 - orbax raises many types for a damaged item
      raise _unreadable_checkpoint(path, step, error) from error
    state_dir = checkpointer.item_directory(step, 'state')
  finally:
    checkpointer.close()
  spec = run_spec.load(run_config)  # upgraded if an older version saved it
  try:
    params = _restore_params(state_dir)
  except Exception as error:  # noqa: BLE001 - as above (tensorstore, orbax, json)
    raise _unreadable_checkpoint(path, step, error) from error
  # The objective's own split: for the MLM objectives `discriminator` is the main masked LM,
  # and 'mlm' has no generator (None).
  trained_by = spec.objective
  networks = trained_by.split_params(param_trees.to_unscanned_layers(params),
                                     spec.embedding_sharing)
  has_generator = networks['generator'] is not None
  tokenizer = _tokenizer_from_files(spec.config.tokenizer.to_dict(), files)
  logging.info('Loaded step %d of %s.', step, path)
  return Pretrained(_model_schema(spec.discriminator), _to_numpy(networks['discriminator']),
                    _model_schema(spec.generator) if has_generator else None,
                    _to_numpy(networks['generator']) if has_generator else None, tokenizer,
                    tokenizer.files() if tokenizer else [], spec.config.to_dict(), step,
                    trained_by.name)


def _to_numpy(tree):
  return jax.tree.map(lambda x: np.asarray(x, np.float32), tree)


def _load_hf_network(path: str, expected: str):
  config, params = hf.load_pretrained(path)
  if config.architecture != expected:
    raise UserError(f'{path} holds a {config.architecture}, but a {expected} is expected here '
                    '(the discriminator is ElectraForPreTraining, the generator '
                    'ElectraForMaskedLM).')
  return _model_schema(config), _to_numpy(params)


def _load_hf(path: str, generator_path: str | None) -> Pretrained:
  disc_dir = path
  if not tf.io.gfile.exists(os.path.join(path, 'config.json')):
    disc_dir = os.path.join(path, 'discriminator')
  if generator_path is None and tf.io.gfile.exists(os.path.join(path, 'generator', 'config.json')):
    generator_path = os.path.join(path, 'generator')
  if (not tf.io.gfile.exists(os.path.join(disc_dir, 'config.json'))
      and tf.io.gfile.exists(os.path.join(path, MASKED_LM_DIR, 'config.json'))):
    return _load_hf_masked_lm(path, generator_path)
  disc_config, disc_params = _load_hf_network(disc_dir, 'discriminator')
  gen_config = gen_params = None
  if generator_path:
    gen_config, gen_params = _load_hf_network(generator_path, 'generator')
  tokenizer, files = hf_tokenizer.find_tokenizer(disc_dir)
  return Pretrained(disc_config, disc_params, gen_config, gen_params, tokenizer, files)


def _load_hf_masked_lm(path: str, generator_path: str | None) -> Pretrained:
  """An export of a masked-LM objective: DST/masked_lm (the main network) [+ DST/generator],
  read as `objectives.of_masked_lm_export` says."""
  main_dir = os.path.join(path, MASKED_LM_DIR)
  main_config, main_params = _load_hf_network(main_dir, 'generator')
  gen_config = gen_params = None
  if generator_path:
    gen_config, gen_params = _load_hf_network(generator_path, 'generator')
  tokenizer, files = hf_tokenizer.find_tokenizer(main_dir)
  return Pretrained(main_config, main_params, gen_config, gen_params, tokenizer, files,
                    objective=objectives.of_masked_lm_export(gen_params is not None).name)


def _tf1_vocab(prefix: str) -> str | None:
  vocab = os.path.join(os.path.dirname(prefix) or '.', 'vocab.txt')
  return vocab if tf.io.gfile.exists(vocab) else None


def _load_tf1(prefix: str, num_heads, generator_num_heads) -> Pretrained:
  disc_config, disc_params, gen_config, gen_params = tf1.read_tf1_checkpoint(
      prefix, default_config.get_config().model, num_heads=num_heads,
      generator_num_heads=generator_num_heads)
  vocab = _tf1_vocab(prefix)
  tokenizer = tokenizers.WordPieceTokenizer(vocab) if vocab else None  # the releases are uncased
  if tokenizer is None:
    logging.warning('No vocab.txt next to %s: the conversion carries no tokenizer.', prefix)
  return Pretrained(_model_schema(disc_config), disc_params,
                    gen_config and _model_schema(gen_config), gen_params, tokenizer,
                    tokenizer.files() if tokenizer else [])


def source_tokenizer(path: str) -> tokenizers.Tokenizer | None:
  """The tokenizer of a checkpoint, without loading its weights (None when it has none)."""
  kind = detect_kind(path)
  if kind == 'workdir':
    checkpointer = checkpoint_lib.Checkpointer(path, save_every=1, keep=1, keep_period=0,
                                               read_only=True)
    try:
      step = _workdir_step(checkpointer, path, None)
      run_config = checkpointer.restore_config(step)
      return _tokenizer_from_files(run_spec.upgrade(run_config).tokenizer.to_dict(),
                                   checkpointer.restore_tokenizer_files(step))
    finally:
      checkpointer.close()
  if kind == 'hf':
    disc_dir = path if tf.io.gfile.exists(os.path.join(path, 'config.json')) else os.path.join(
        path, 'discriminator')
    return hf_tokenizer.find_tokenizer(disc_dir)[0]
  vocab = _tf1_vocab(path)
  return tokenizers.WordPieceTokenizer(vocab) if vocab else None


def use_source_tokenizer(config: ml_collections.ConfigDict,
                         pretrained: Pretrained | None = None) -> None:
  """Points `config.tokenizer` at the tokenizer of `config.init_from` (continued pre-training).

  `pretrained`: `config.init_from` already loaded; without it only the tokenizer is read.
  """
  tokenizer = pretrained.tokenizer if pretrained is not None else source_tokenizer(
      config.init_from)
  if tokenizer is None:
    raise UserError(f'init_from={config.init_from!r} carries no tokenizer: pass the one it was '
                    'trained with as --config.tokenizer.path (and --config.tokenizer.type).')
  config.tokenizer.update(hf_tokenizer.tokenizer_config_fields(tokenizer))
  logging.info('Using the tokenizer of %s: %s', config.init_from, config.tokenizer.path)


# ---- Joint parameters for pre-training ----------------------------------------------------------

def _check_same_shapes(params, reference, source: str) -> None:
  """Raises, naming the tensor and both shapes, unless `params` has exactly `reference`'s shapes."""
  loaded = {param_trees.path_name(p): np.shape(x)
            for p, x in jax.tree_util.tree_leaves_with_path(params)}
  wanted = {param_trees.path_name(p): tuple(x.shape)
            for p, x in jax.tree_util.tree_leaves_with_path(reference)}
  for name, shape in wanted.items():
    if name not in loaded:
      raise UserError(f'{source} has no tensor {name} (shape {shape}), which the configured '
                      'model needs.')
    if tuple(loaded[name]) != shape:
      raise UserError(f'Tensor {name} has shape {tuple(loaded[name])} in {source} but {shape} '
                      'in the configured model (config.model / config.electra): set the sizes '
                      'to the checkpoint\'s.')
  extra = sorted(set(loaded) - set(wanted))
  if extra:
    raise UserError(f'{source} has tensors the configured model lacks: {extra[:10]} (check '
                    'config.electra.embedding_sharing).')


def initial_params(spec: run_spec.RunSpec, fresh_params: Any,
                   pretrained: Pretrained | None = None) -> Any:
  """Joint params for continued pre-training from `config.init_from`, placed as `fresh_params`.

  Every tensor must have the shape the run `spec` gives it (its discriminator and generator);
  an error names the first that does not. A checkpoint without a generator keeps the freshly
  initialised generator of `fresh_params`. `pretrained`: `config.init_from` already loaded
  (default: load it here).
  """
  source = spec.config.init_from
  if pretrained is None:
    pretrained = load_checkpoint(source)
  trains = spec.objective
  export.check_main_network(pretrained, trains)
  fresh = nn.meta.unbox(fresh_params)
  # Each network on its own first, so that an error names the checkpoint's own tensor.
  networks = jax.eval_shape(lambda p: param_trees.to_unscanned_layers(
      trains.split_params(p, spec.embedding_sharing)), fresh)
  loaded = {'discriminator': pretrained.disc_params}
  if pretrained.gen_params is not None and trains.has_generator:
    loaded['generator'] = pretrained.gen_params
  _check_same_shapes(loaded, {k: networks[k] for k in loaded}, f'init_from={source!r}')
  fresh_generator = None
  if pretrained.gen_params is None and trains.has_generator:
    logging.warning('%s has no generator: the generator starts from its fresh initialisation.',
                    source)
    fresh_generator = param_trees.to_unscanned_layers(
        trains.split_params(fresh, spec.embedding_sharing)['generator'])
  joint = export.joint_params(pretrained, spec, fresh_generator)
  _check_same_shapes(joint, fresh, f'init_from={source!r}')

  def place(path, value):
    fresh_leaf = _leaf_at(fresh, path)
    if isinstance(value, jax.Array) and value.sharding == fresh_leaf.sharding:
      return value  # a freshly initialised generator leaf, already in place
    value = np.asarray(value, fresh_leaf.dtype)
    # Every host holds the whole tensor and each device takes its shard (jax.device_put's
    # job on one host; this also works when the mesh spans several hosts).
    return jax.make_array_from_callback(value.shape, fresh_leaf.sharding, lambda i: value[i])

  params = jax.tree_util.tree_map_with_path(place, joint)
  logging.info('Initialised the model from %s (fresh optimizer and schedule).', source)
  return params


def _leaf_at(tree, path):
  for key in path:
    tree = tree[param_trees.path_key(key)]
  return tree

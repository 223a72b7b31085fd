"""Hugging Face ELECTRA checkpoints <-> standalone Flax discriminator / generator params.

A checkpoint directory holds `config.json` plus `model.safetensors` (or a sharded
`model.safetensors.index.json`, or `pytorch_model.bin`). Its `architectures` entry decides the kind:
`ElectraForPreTraining` is a discriminator (`electra_jax.core.model.Discriminator`),
`ElectraForMaskedLM` a generator (`electra_jax.core.model.Generator`). Safetensors are read with
numpy, so torch is needed only for `pytorch_model.bin`.

`load_pretrained` returns a model config (the `config.model` schema, unscanned, float32) with an
extra field `architecture` ('discriminator' or 'generator'). To continue pre-training from a
released pair, load both directories and join them with `electra_jax.core.param_trees.merge_params`.
"""

import json
import math
import os
import re
from typing import Any

import flax.linen as nn
import jax
import jax.numpy as jnp
import ml_collections
import numpy as np
import safetensors.numpy

from electra_jax import errors
from electra_jax.core import model as model_lib
from electra_jax.core import param_trees
from electra_jax.errors import MissingFileError, UserError
from electra_jax.spec import validate

ARCHITECTURES = {'ElectraForPreTraining': 'discriminator', 'ElectraForMaskedLM': 'generator'}
_HF_NAMES = {kind: name for name, kind in ARCHITECTURES.items()}
# Buffers or tied copies some checkpoints carry that are not parameters of their own.
_IGNORED = ('electra.embeddings.position_ids',)
_TIED_LM_HEAD = 'generator_lm_head.weight'


def model_config_from_hf(hf_config: dict[str, Any]) -> ml_collections.ConfigDict:
  """A Hugging Face ELECTRA `config.json` dict -> our model config (+ `architecture`)."""
  if hf_config.get('model_type', 'electra') != 'electra':
    raise UserError(f"model_type is {hf_config.get('model_type')!r}, not 'electra'.")
  if hf_config.get('hidden_act', 'gelu') != 'gelu':
    raise UserError(f"hidden_act={hf_config['hidden_act']!r}: only the exact 'gelu' is built.")
  if hf_config.get('position_embedding_type', 'absolute') != 'absolute':
    raise UserError('only absolute position embeddings are supported, got '
                    f"{hf_config['position_embedding_type']!r}.")
  kinds = [ARCHITECTURES[a] for a in hf_config.get('architectures') or [] if a in ARCHITECTURES]
  if len(set(kinds)) != 1:
    raise UserError(f"config.json architectures={hf_config.get('architectures')}; need exactly "
                    f'one of {sorted(ARCHITECTURES)} to tell discriminator from generator.')
  config = ml_collections.ConfigDict(dict(
      vocab_size=hf_config['vocab_size'],
      embedding_size=hf_config.get('embedding_size', hf_config['hidden_size']),
      hidden_size=hf_config['hidden_size'],
      num_layers=hf_config['num_hidden_layers'],
      num_heads=hf_config['num_attention_heads'],
      intermediate_size=hf_config['intermediate_size'],
      max_position_embeddings=hf_config.get('max_position_embeddings', 512),
      type_vocab_size=hf_config.get('type_vocab_size', 2),
      hidden_dropout_prob=hf_config.get('hidden_dropout_prob', 0.1),
      attention_dropout_prob=hf_config.get('attention_probs_dropout_prob', 0.1),
      initializer_range=hf_config.get('initializer_range', 0.02),
      layer_norm_eps=hf_config.get('layer_norm_eps', 1e-12),
      dtype='float32', param_dtype='float32', scan_layers=False, remat='none',
      architecture=kinds[0]))
  validate.validate_model_config(config)
  return config


def hf_config_from_model_config(config: ml_collections.ConfigDict,
                                architecture: str) -> dict[str, Any]:
  """Our model config -> a `config.json` dict that `transformers.ElectraConfig` reads."""
  if architecture not in _HF_NAMES:
    raise ValueError(f"architecture={architecture!r}; use 'discriminator' or 'generator'.")
  return {
      'architectures': [_HF_NAMES[architecture]],
      'model_type': 'electra',
      'vocab_size': config.vocab_size,
      'embedding_size': config.embedding_size,
      'hidden_size': config.hidden_size,
      'num_hidden_layers': config.num_layers,
      'num_attention_heads': config.num_heads,
      'intermediate_size': config.intermediate_size,
      'hidden_act': 'gelu',
      'hidden_dropout_prob': config.hidden_dropout_prob,
      'attention_probs_dropout_prob': config.attention_dropout_prob,
      'max_position_embeddings': config.max_position_embeddings,
      'type_vocab_size': config.type_vocab_size,
      'initializer_range': config.initializer_range,
      'layer_norm_eps': config.layer_norm_eps,
      'position_embedding_type': 'absolute',
      'pad_token_id': 0,
      'tie_word_embeddings': True,
      'dtype': 'float32',
  }


# Names the Hugging Face port gives differently from the original's graph.
_HF_RENAMED = {'discriminator_predictions/dense_1': 'discriminator_predictions.dense_prediction',
               'generator_predictions/output_bias': 'generator_lm_head.bias'}


def _hf_name(scope: str) -> str:
  if scope in _HF_RENAMED:
    return _HF_RENAMED[scope]
  name = re.sub(r'layer_(\d+)', r'layer.\1', scope).replace('/', '.')
  return f'electra.{name}' if scope.startswith(('embeddings', 'encoder')) else name


def _tensor_map(config, architecture):
  """[(HF name, our param path, HF shape, is_kernel)] for one network.

  A kernel is stored [out, in] by PyTorch; ours is [*in_dims, *out_dims] (attention kernels split
  heads), so it converts as transpose + reshape. Everything else only reshapes.
  """
  entries = []
  for weight in param_trees.network_layout(config, architecture):
    name = _hf_name(weight.scope)
    if weight.kind in ('table', 'bias'):
      entries.append((name if weight.kind == 'bias' else f'{name}.weight', weight.path,
                      weight.shape, False))
    elif weight.kind == 'dense':
      in_size, out_size = weight.shape
      entries.append((f'{name}.weight', weight.path + ('kernel',), (out_size, in_size), True))
      entries.append((f'{name}.bias', weight.path + ('bias',), (out_size,), False))
    else:  # layer_norm
      entries.append((f'{name}.weight', weight.path + ('scale',), weight.shape, False))
      entries.append((f'{name}.bias', weight.path + ('bias',), weight.shape, False))
  return entries


def _param_shapes(config, architecture):
  """Our parameter shapes for this config, unscanned layout (abstract init, no FLOPs)."""
  config = ml_collections.ConfigDict(config.to_dict() | {'scan_layers': False, 'remat': 'none'})
  ids = jnp.zeros((1, 2), jnp.int32)
  if architecture == 'discriminator':
    module, args = model_lib.Discriminator(config), (ids, ids, ids)
  else:
    module, args = model_lib.Generator(config), (ids, ids, ids, ids)
  shapes = jax.eval_shape(lambda: module.init(jax.random.key(0), *args)['params'])
  return jax.tree.map(lambda x: tuple(x.shape), nn.meta.unbox(shapes))


def _get(tree, path):
  for key in path:
    tree = tree[key]
  return tree


def _set(tree, path, value):
  for key in path[:-1]:
    tree = tree.setdefault(key, {})
  tree[path[-1]] = value


def _read_json(path: str, what: str) -> dict[str, Any]:
  try:
    with open(path) as f:
      return json.load(f)
  except (json.JSONDecodeError, UnicodeDecodeError) as error:
    raise UserError(f'{path} is not valid JSON ({error}); expected {what}.') from None


def _read_safetensors(path: str) -> dict[str, np.ndarray]:
  try:
    return dict(safetensors.numpy.load_file(path))
  except safetensors.SafetensorError as error:
    raise UserError(f'{path} is not a readable safetensors file ({error}): it is truncated or '
                    'not a weights file. Download or export the checkpoint again.') from None


def _read_state_dict(path: str) -> dict[str, np.ndarray]:
  single = os.path.join(path, 'model.safetensors')
  index = os.path.join(path, 'model.safetensors.index.json')
  torch_bin = os.path.join(path, 'pytorch_model.bin')
  if os.path.exists(single):
    return _read_safetensors(single)
  if os.path.exists(index):
    weight_map = _read_json(index, 'a safetensors index').get('weight_map', {})
    state = {}
    for shard in sorted(set(weight_map.values())):
      state.update(_read_safetensors(os.path.join(path, shard)))
    return state
  if os.path.exists(torch_bin):
    try:
      import torch  # noqa: PLC0415  (only this legacy format needs it)
    except ImportError as e:
      raise ImportError(f'{torch_bin} is a PyTorch pickle and needs torch; install it or re-save '
                        'the checkpoint as model.safetensors.') from e
    try:
      state = torch.load(torch_bin, map_location='cpu', weights_only=True)
    except Exception as error:  # noqa: BLE001 - torch raises many types for a damaged pickle
      raise UserError(f'{torch_bin} cannot be read as PyTorch weights ({type(error).__name__}: '
                      f'{errors.one_line(error)[:200]}).') from None
    return {k: v.float().numpy() for k, v in state.items()}
  raise MissingFileError(f'{path} has neither model.safetensors nor pytorch_model.bin.')


def load_pretrained(path: str) -> tuple[ml_collections.ConfigDict, dict[str, Any]]:
  """Reads a Hugging Face ELECTRA directory -> (model config with `architecture`, params).

  The params are float32 arrays in the unscanned layout (see `param_trees.to_scanned_layers`).
  """
  config_file = os.path.join(path, 'config.json')
  if not os.path.exists(config_file):
    raise MissingFileError(f'{config_file} not found: not a Hugging Face checkpoint directory.')
  hf_config = _read_json(config_file, "a Hugging Face model's config.json")
  try:
    config = model_config_from_hf(hf_config)
  except KeyError as error:
    raise UserError(f'{config_file} lacks the field {error}: not an ELECTRA config.') from None
  state = _read_state_dict(path)
  entries = _tensor_map(config, config.architecture)
  if config.architecture == 'generator' and _TIED_LM_HEAD in state:
    word = state['electra.embeddings.word_embeddings.weight']
    if not np.array_equal(state.pop(_TIED_LM_HEAD), word):
      raise UserError(f'{_TIED_LM_HEAD} differs from the word embeddings: an untied generator '
                      'head cannot be represented (the projection is tied, as in ELECTRA).')
  for name in _IGNORED:
    state.pop(name, None)
  expected = {name for name, *_ in entries}
  missing, unexpected = sorted(expected - set(state)), sorted(set(state) - expected)
  if missing or unexpected:
    raise UserError(f'{path} does not match its config.json ({config.architecture}): missing '
                    f'tensors {missing}, unexpected tensors {unexpected}.')
  shapes = _param_shapes(config, config.architecture)
  params = {}
  for name, param_path, hf_shape, is_kernel in entries:
    tensor = np.asarray(state[name], np.float32)
    if tensor.shape != hf_shape:
      raise UserError(f'tensor {name} has shape {tensor.shape} in the checkpoint, but '
                      f'config.json implies {hf_shape}.')
    value = tensor.T if is_kernel else tensor
    _set(params, param_path, jnp.asarray(value.reshape(_get(shapes, param_path))))
  return config, params


def save_pretrained(path: str, model_config: ml_collections.ConfigDict, params: dict[str, Any],
                    architecture: str | None = None) -> None:
  """Writes standalone discriminator or generator params as a Hugging Face ELECTRA directory.

  `ElectraForPreTraining.from_pretrained` (discriminator) or `ElectraForMaskedLM.from_pretrained`
  (generator) loads it with no missing or unexpected weights. The kind comes from `architecture`,
  else `model_config.architecture`, else the params' head. Scanned or boxed params are fine.
  """
  params = param_trees.to_unscanned_layers(params)
  if architecture is None:
    architecture = model_config.get('architecture') or (
        'discriminator' if 'discriminator_predictions' in params else 'generator')
  if architecture not in _HF_NAMES:
    raise ValueError(f"architecture={architecture!r}; use 'discriminator' or 'generator'.")
  validate.validate_model_config(model_config)
  expected_shapes = _param_shapes(model_config, architecture)
  state = {}
  for name, param_path, hf_shape, is_kernel in _tensor_map(model_config, architecture):
    try:
      value = np.asarray(_get(params, param_path), np.float32)
    except KeyError as e:
      raise ValueError(f"params have no {'/'.join(param_path)} (needed for {name}); pass a "
                       f'standalone {architecture} tree (see param_trees.split_params).') from e
    if value.shape != _get(expected_shapes, param_path):
      raise ValueError(f"param {'/'.join(param_path)} (tensor {name}) has shape {value.shape}, "
                       f'but the model config implies {_get(expected_shapes, param_path)}.')
    if is_kernel:
      value = value.reshape(hf_shape[1], math.prod(hf_shape) // hf_shape[1]).T
    state[name] = np.ascontiguousarray(value.reshape(hf_shape))
  os.makedirs(path, exist_ok=True)
  with open(os.path.join(path, 'config.json'), 'w') as f:
    json.dump(hf_config_from_model_config(model_config, architecture), f, indent=2,
              sort_keys=True)
  safetensors.numpy.save_file(state, os.path.join(path, 'model.safetensors'),
                              metadata={'format': 'pt'})

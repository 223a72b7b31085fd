"""Original google-research/electra TF1 checkpoints -> standalone discriminator / generator params.

Reads a checkpoint prefix (`PREFIX.index` + `PREFIX.data-*`) with `tf.train.load_checkpoint`, using
the original variable names (see ../shared/ELECTRA.md):

  electra/embeddings/{word_embeddings [V, E], position_embeddings, token_type_embeddings,
                      LayerNorm/{gamma, beta}}                       shared by both networks
  electra/embeddings_project/{kernel [E, H], bias}                   only when E != H
  electra/encoder/layer_{i}/attention/self/{query,key,value}/..., attention/output/dense/...,
      attention/output/LayerNorm/..., intermediate/dense/..., output/dense/..., output/LayerNorm/...
  discriminator_predictions/{dense, dense_1}/{kernel, bias}
  generator/{embeddings_project, encoder/layer_{i}}/...  (generator/embeddings/... if untied)
  generator_predictions/{dense/{kernel [Hg, E], bias}, LayerNorm/{gamma, beta}, output_bias [V]}

Kernels are stored [in, out], as ours are (only the attention kernels split their heads axis).
`global_step` and the Adam slots (`.../adam_m`, `.../adam_v`) are ignored. The sizes come from the
tensor shapes; the head count is not stored, so it follows the reference rule, heads = H // 64
(what every released ELECTRA uses), unless given.
"""

from __future__ import annotations

import re
from typing import Any

import ml_collections
import numpy as np
import tensorflow as tf
from absl import logging

from electra_jax.core import param_trees
from electra_jax.errors import UserError

DISC_SCOPE, GEN_SCOPE = 'electra', 'generator'
_NETWORK_SCOPES = (DISC_SCOPE, GEN_SCOPE, 'discriminator_predictions', 'generator_predictions')
_OPTIMIZER_SLOTS = re.compile(r'(^global_step$|/adam_[mv]$|/Adam(_\d+)?$)')
HEAD_SIZE = 64  # the reference head size: heads = H // 64


def is_tf1_checkpoint(path: str) -> bool:
  return tf.io.gfile.exists(f'{path}.index')


def _model_config(base: ml_collections.ConfigDict, **sizes) -> ml_collections.ConfigDict:
  config = ml_collections.ConfigDict(base.to_dict())
  config.update(sizes)
  config.update(dtype='float32', param_dtype='float32', scan_layers=False, remat='none')
  return config


def _infer_config(shapes: dict[str, tuple[int, ...]], scope: str, embeddings_scope: str,
                  base: ml_collections.ConfigDict, num_heads: int | None
                  ) -> ml_collections.ConfigDict:
  """One network's sizes from its tensor shapes (heads by the reference rule unless given)."""
  vocab_size, embedding_size = shapes[f'{embeddings_scope}/embeddings/word_embeddings']
  num_layers = 0
  while f'{scope}/encoder/layer_{num_layers}/attention/self/query/kernel' in shapes:
    num_layers += 1
  if not num_layers:
    raise UserError(f'No {scope}/encoder/layer_0/... tensors: not an ELECTRA TF1 checkpoint.')
  hidden_size = shapes[f'{scope}/encoder/layer_0/attention/self/query/kernel'][1]
  heads = num_heads or max(1, hidden_size // HEAD_SIZE)
  if hidden_size % heads:
    raise UserError(f'{scope}: hidden size {hidden_size} is not divisible by {heads} heads; '
                    'pass the right head count (--num_heads / --generator_num_heads).')
  return _model_config(
      base, vocab_size=vocab_size, embedding_size=embedding_size, hidden_size=hidden_size,
      num_layers=num_layers, num_heads=heads,
      intermediate_size=shapes[f'{scope}/encoder/layer_0/intermediate/dense/kernel'][1],
      max_position_embeddings=shapes[f'{embeddings_scope}/embeddings/position_embeddings'][0],
      type_vocab_size=shapes[f'{embeddings_scope}/embeddings/token_type_embeddings'][0])


def _tensor_map(config, scope: str, embeddings_scope: str, architecture: str):
  """[(TF1 name, our param path, TF1 shape, our shape)] for one network."""
  n = config.num_heads
  d = config.hidden_size // n
  entries = []
  for weight in param_trees.network_layout(config, architecture):
    if weight.scope.startswith('embeddings/'):
      name = f'{embeddings_scope}/{weight.scope}'
    elif weight.scope.startswith(('embeddings_project', 'encoder/')):
      name = f'{scope}/{weight.scope}'
    else:
      name = weight.scope
    if weight.kind in ('table', 'bias'):
      entries.append((name, weight.path, weight.shape, weight.shape))
    elif weight.kind == 'dense':
      in_size, out_size = weight.shape
      ours_kernel, ours_bias = {'out': ((in_size, n, d), (n, d)),  # heads split out of the output
                                'in': ((n, d, out_size), (out_size,)),
                                None: (weight.shape, (out_size,))}[weight.heads]
      entries.append((f'{name}/kernel', weight.path + ('kernel',), weight.shape, ours_kernel))
      entries.append((f'{name}/bias', weight.path + ('bias',), (out_size,), ours_bias))
    else:  # layer_norm: TF1's gamma / beta
      entries.append((f'{name}/gamma', weight.path + ('scale',), weight.shape, weight.shape))
      entries.append((f'{name}/beta', weight.path + ('bias',), weight.shape, weight.shape))
  return entries


def _read_network(reader, shapes, entries) -> tuple[dict[str, Any], set[str]]:
  """Reads and reshapes the tensors of `entries`; returns (params, the names used)."""
  params = {}
  for name, path, tf_shape, our_shape in entries:
    if name not in shapes:
      raise UserError(f'The TF1 checkpoint has no tensor {name} (shape {tf_shape} expected).')
    if tuple(shapes[name]) != tf_shape:
      raise UserError(f'Tensor {name} has shape {tuple(shapes[name])} in the TF1 checkpoint, but '
                      f'the inferred sizes imply {tf_shape}.')
    node = params
    for key in path[:-1]:
      node = node.setdefault(key, {})
    node[path[-1]] = np.asarray(reader.get_tensor(name), np.float32).reshape(our_shape)
  return params, {name for name, *_ in entries}


def read_tf1_checkpoint(prefix: str, base_model_config: ml_collections.ConfigDict, *,
                        num_heads: int | None = None, generator_num_heads: int | None = None):
  """Reads an original ELECTRA checkpoint.

  Args:
    prefix: the checkpoint prefix (e.g. `electra_small/model.ckpt-1000000`), local or gs://.
    base_model_config: a `config.model`; the sizes are replaced by the checkpoint's.
    num_heads, generator_num_heads: head counts, when not H // 64.

  Returns:
    (disc_config, disc_params, gen_config, gen_params): standalone numpy trees as
    `model.Discriminator` / `model.Generator` apply them; the generator pair is (None, None) when
    the checkpoint has no generator.
  """
  if not is_tf1_checkpoint(prefix):
    raise UserError(f'{prefix}.index does not exist: give the TF1 checkpoint prefix (the path '
                    'without .index / .data-*).')
  try:
    reader = tf.train.load_checkpoint(prefix)
  except tf.errors.OpError as error:
    raise UserError(f'{prefix} cannot be read as a TF1 checkpoint ({type(error).__name__}: '
                    f'{error.message.splitlines()[0] if error.message else ""}): its .index or '
                    '.data-* files are damaged or of another format.') from None
  shapes = {k: tuple(v) for k, v in reader.get_variable_to_shape_map().items()
            if not _OPTIMIZER_SLOTS.search(k)}
  if f'{DISC_SCOPE}/embeddings/word_embeddings' not in shapes:
    sample = sorted(shapes)[:8]
    raise UserError(f'{prefix} is not an ELECTRA TF1 checkpoint: it has no '
                    f'{DISC_SCOPE}/embeddings/word_embeddings (it has e.g. {sample}).')
  disc_config = _infer_config(shapes, DISC_SCOPE, DISC_SCOPE, base_model_config, num_heads)
  disc_params, used = _read_network(
      reader, shapes, _tensor_map(disc_config, DISC_SCOPE, DISC_SCOPE, 'discriminator'))
  gen_config = gen_params = None
  if f'{GEN_SCOPE}/encoder/layer_0/attention/self/query/kernel' in shapes:
    # The original shares the embedding tables; an untied generator has its own.
    tables = GEN_SCOPE if f'{GEN_SCOPE}/embeddings/word_embeddings' in shapes else DISC_SCOPE
    gen_config = _infer_config(shapes, GEN_SCOPE, tables, base_model_config, generator_num_heads)
    gen_params, gen_used = _read_network(
        reader, shapes, _tensor_map(gen_config, GEN_SCOPE, tables, 'generator'))
    used |= gen_used
  left = sorted(set(shapes) - used)
  ours = [name for name in left if name.split('/')[0] in _NETWORK_SCOPES]
  if ours:
    raise UserError(f'{prefix} has ELECTRA tensors this converter does not know, which would be '
                    f'lost: {ours[:10]}{" ..." if len(ours) > 10 else ""}.')
  if left:
    logging.warning('Ignoring %d tensors outside the ELECTRA networks in %s: %s', len(left),
                    prefix, left[:10])
  return disc_config, disc_params, gen_config, gen_params

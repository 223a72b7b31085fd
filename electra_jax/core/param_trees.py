"""Conversions between parameter trees, and the one helper that names a tree path.

The jointly trained `ElectraPretrainer` holds the embedding tables once (`shared_embeddings`);
`split_params` / `merge_params` convert between its tree and standalone `Discriminator` /
`Generator` trees (what every export format holds), and `to_scanned_layers` /
`to_unscanned_layers` between per-layer subtrees and `scan_layers`' stacked ones.
"""

import dataclasses
from typing import Any

import flax.linen as nn
import jax
import jax.numpy as jnp

from electra_jax.core import schema
from electra_jax.errors import UserError, check_choice


def path_key(entry) -> str:
  """One entry of a `jax.tree_util` key path as a plain string (a dict key, an index, ...)."""
  return str(getattr(entry, 'key', entry))


def path_name(path) -> str:
  """A key path as 'a/b/c'."""
  return '/'.join(path_key(entry) for entry in path)


def split_params(joint_params, embedding_sharing: str) -> dict[str, Any]:
  """Joint pretrainer params -> {'discriminator': ..., 'generator': ...}, standalone trees.

  Each tree is what `Discriminator(disc_config)` / `Generator(gen_config)` apply (with its own
  `embeddings`), and what `electra_jax.interop.hf.save_pretrained` writes. With 'shared' both
  get a copy of the shared tables; with 'gdes' the discriminator's tables are materialised as
  shared + delta. Boxed (`nn.Partitioned`) inputs are unboxed; the result holds plain arrays.
  """
  check_choice('embedding_sharing', embedding_sharing, schema.EMBEDDING_SHARING)
  joint = nn.meta.unbox(joint_params)
  discriminator, generator = dict(joint['discriminator']), dict(joint['generator'])
  if embedding_sharing != 'none':
    shared = joint['shared_embeddings']
    generator['embeddings'] = shared
    discriminator['embeddings'] = (
        jax.tree.map(jnp.add, shared, joint['embeddings_delta'])
        if embedding_sharing == 'gdes' else shared)
  return {'discriminator': discriminator, 'generator': generator}


def merge_params(disc_params, gen_params, embedding_sharing: str) -> dict[str, Any]:
  """Standalone discriminator + generator params -> joint pretrainer params (inverse of split).

  For continued pre-training from released checkpoints. With 'shared' / 'gdes' the shared tables
  are the discriminator's (the generator's own tables are dropped, so check their shapes agree);
  the GDES delta starts at zero. With 'none' each network keeps its own tables.
  """
  check_choice('embedding_sharing', embedding_sharing, schema.EMBEDDING_SHARING)
  discriminator, generator = dict(nn.meta.unbox(disc_params)), dict(nn.meta.unbox(gen_params))
  if embedding_sharing == 'none':
    return {'discriminator': discriminator, 'generator': generator}
  shared = discriminator.pop('embeddings')
  gen_tables = generator.pop('embeddings')
  disc_shapes = jax.tree.map(jnp.shape, shared)
  gen_shapes = jax.tree.map(jnp.shape, gen_tables)
  if disc_shapes != gen_shapes:
    raise UserError(f'cannot share embeddings: discriminator tables {disc_shapes} differ from '
                    f"generator tables {gen_shapes}; use embedding_sharing='none'.")
  joint = {'discriminator': discriminator, 'generator': generator, 'shared_embeddings': shared}
  if embedding_sharing == 'gdes':
    joint['embeddings_delta'] = jax.tree.map(jnp.zeros_like, shared)
  return joint


def _map_encoders(params, convert):
  """Applies `convert` to every `encoder` subtree of a (possibly joint) param tree."""
  if not isinstance(params, dict):
    return params
  return {k: convert(v) if k == 'encoder' else _map_encoders(v, convert)
          for k, v in params.items()}


def to_scanned_layers(params):
  """encoder/layer_{i}/... -> encoder/layers/... stacked on a leading axis (for scan_layers)."""

  def stack(encoder):
    if 'layers' in encoder:
      return encoder
    layers = [encoder[f'layer_{i}'] for i in range(len(encoder))]
    return {'layers': jax.tree.map(lambda *xs: jnp.stack(xs), *layers)}

  return _map_encoders(nn.meta.unbox(params), stack)


def to_unscanned_layers(params):
  """encoder/layers/... (scanned) -> encoder/layer_{i}/... (one subtree per layer)."""

  def unstack(encoder):
    if 'layers' not in encoder:
      return encoder
    stacked = encoder['layers']
    num_layers = jax.tree.leaves(stacked)[0].shape[0]
    return {f'layer_{i}': jax.tree.map(lambda x, i=i: x[i], stacked) for i in range(num_layers)}

  return _map_encoders(nn.meta.unbox(params), unstack)


# ---- The layout of one standalone network, in the original's terms ------------------------------

@dataclasses.dataclass(frozen=True)
class Weight:
  """One weight (or weight + bias) of a standalone `Discriminator` / `Generator`.

  Attributes:
    kind: 'table' (an embedding table), 'dense' (kernel + bias), 'layer_norm' (scale + bias) or
      'bias' (a lone bias vector).
    scope: its name in the original's TF1 graph, below the network's scope, e.g.
      'encoder/layer_0/attention/self/query'; each format derives its own names from it.
    path: our param path: the module for 'dense' / 'layer_norm', the leaf for 'table' / 'bias'.
    shape: [rows, E] for a table, [in, out] for a dense kernel, [size] otherwise.
    heads: for attention kernels, where ours splits heads: 'out' (query/key/value: [H, n, d]) or
      'in' (the attention output: [n, d, H]).
  """
  kind: str
  scope: str
  path: tuple[str, ...]
  shape: tuple[int, ...]
  heads: str | None = None


def network_layout(config, architecture: str) -> list[Weight]:
  """Every weight of one network ('discriminator' or 'generator') of `config`, in graph order.

  The one walk over the layer structure that the Hugging Face and TF1 converters share.
  """
  v, e, h = config.vocab_size, config.embedding_size, config.hidden_size
  f = config.intermediate_size
  weights = [Weight('table', f'embeddings/{name}', ('embeddings', name), (rows, e))
             for name, rows in (('word_embeddings', v),
                                ('position_embeddings', config.max_position_embeddings),
                                ('token_type_embeddings', config.type_vocab_size))]
  weights.append(Weight('layer_norm', 'embeddings/LayerNorm', ('embeddings', 'LayerNorm'), (e,)))
  if e != h:
    weights.append(Weight('dense', 'embeddings_project', ('embeddings_project',), (e, h)))
  for i in range(config.num_layers):
    scope, ours = f'encoder/layer_{i}', ('encoder', f'layer_{i}')
    for name in ('query', 'key', 'value'):
      weights.append(Weight('dense', f'{scope}/attention/self/{name}', ours + ('attention', name),
                            (h, h), heads='out'))
    weights += [
        Weight('dense', f'{scope}/attention/output/dense', ours + ('attention', 'output'), (h, h),
               heads='in'),
        Weight('layer_norm', f'{scope}/attention/output/LayerNorm', ours + ('attention_LayerNorm',),
               (h,)),
        Weight('dense', f'{scope}/intermediate/dense', ours + ('intermediate',), (h, f)),
        Weight('dense', f'{scope}/output/dense', ours + ('output',), (f, h)),
        Weight('layer_norm', f'{scope}/output/LayerNorm', ours + ('output_LayerNorm',), (h,)),
    ]
  if architecture == 'discriminator':
    weights += [
        Weight('dense', 'discriminator_predictions/dense', ('discriminator_predictions', 'dense'),
               (h, h)),
        Weight('dense', 'discriminator_predictions/dense_1',
               ('discriminator_predictions', 'dense_prediction'), (h, 1)),
    ]
  else:
    weights += [
        Weight('dense', 'generator_predictions/dense', ('generator_predictions', 'dense'), (h, e)),
        Weight('layer_norm', 'generator_predictions/LayerNorm',
               ('generator_predictions', 'LayerNorm'), (e,)),
        Weight('bias', 'generator_predictions/output_bias', ('generator_lm_head', 'bias'), (v,)),
    ]
  return weights

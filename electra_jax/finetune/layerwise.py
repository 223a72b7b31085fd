"""Layer-wise learning-rate decay, as the original's `_get_layer_lrs` (`model/optimization.py`).

Embeddings (and the E->H projection) have depth 0, encoder layer i depth i + 1, the task head
depth L + 2, and a parameter at depth d gets `lr * decay ** (L + 2 - d)`: the head trains at the
full rate, the top layer at `decay**2`, the embeddings at `decay**(L + 2)`. The published scores
were made that way. `train.layerwise_lr_rule='no_gap'` puts the head at depth L + 1 instead
(`decay ** (L + 1 - d)`: every encoder weight 1/decay faster). The scale multiplies the whole
AdamW update, weight decay included, as the original applies its per-layer rate to both.
"""

from __future__ import annotations

import re
from typing import Any

import jax
import jax.numpy as jnp
import ml_collections
import numpy as np
import optax

from electra_jax.core import optimizer as optimizer_lib
from electra_jax.core import param_trees
from electra_jax.finetune import model as task_model_lib

# `train.layerwise_lr_rule` -> the task head's depth above the top encoder layer's (L).
HEAD_DEPTH_OVER_LAYERS = {'original': 2, 'no_gap': 1}


def head_depth(num_layers: int, rule: str = 'original') -> int:
  """The task head's depth: L + 2 as in the original (`'original'`), L + 1 with `'no_gap'`."""
  return num_layers + HEAD_DEPTH_OVER_LAYERS[rule]


def layer_depths(params: Any, num_layers: int, rule: str = 'original') -> Any:
  """The depth of every parameter (see the module docstring), as a tree of int arrays.

  Scanned layers (`encoder/layers/...`, stacked on a leading axis of size L) get an int array
  `[L, 1, ...]` that broadcasts over each leaf, so every layer keeps its own depth.
  """

  def depth(path, leaf):
    top = param_trees.path_key(path[0])
    if top in ('embeddings', 'embeddings_project'):
      return np.zeros((), np.int32)
    if top == 'encoder':
      layer = param_trees.path_key(path[1])
      if layer == 'layers':
        shape = (num_layers,) + (1,) * (len(leaf.shape) - 1)
        return (np.arange(num_layers, dtype=np.int32) + 1).reshape(shape)
      match = re.fullmatch(r'layer_(\d+)', layer)
      if not match:
        raise ValueError(f'Unexpected encoder parameter {param_trees.path_name(path)}.')
      return np.asarray(int(match.group(1)) + 1, np.int32)
    if top in task_model_lib.HEAD_NAMES:
      return np.asarray(head_depth(num_layers, rule), np.int32)
    raise ValueError(f'Parameter {param_trees.path_name(path)} belongs to neither the encoder nor '
                    f'a task head {task_model_lib.HEAD_NAMES}.')

  return jax.tree_util.tree_map_with_path(depth, params)


def layerwise_lr_scales(params: Any, num_layers: int, decay: float,
                        rule: str = 'original') -> Any:
  """`decay ** (head depth - depth)` per parameter (float32; `[L, 1, ...]` for scanned layers)."""
  top = head_depth(num_layers, rule)
  return jax.tree.map(lambda d: np.asarray(np.float64(decay) ** (top - d), np.float32),
                      layer_depths(params, num_layers, rule))


def scale_by_tree(scales: Any) -> optax.GradientTransformation:
  """Multiplies each update by its own constant (broadcast) factor.

  optax.multi_transform labels whole leaves, which cannot give each layer of a scanned
  (stacked) parameter its own rate; a per-leaf factor array can.
  """

  def update_fn(updates, state, params=None):
    del params
    return jax.tree.map(lambda u, s: u * jnp.asarray(s, u.dtype), updates, scales), state

  return optax.GradientTransformation(lambda params: optax.EmptyState(), update_fn)


def make_optimizer(hparams: ml_collections.ConfigDict, params: Any, num_layers: int,
                   num_steps: int) -> tuple[optax.GradientTransformation, optax.Schedule]:
  """The reference AdamW (optimizer.py) with 10% warm-up, linear decay and layer-wise rates.

  The warm-up length is `warmup_fraction * num_steps` unrounded, as the original computes it.
  """
  schedule_config = ml_collections.ConfigDict(dict(
      learning_rate=hparams.learning_rate, num_steps=num_steps,
      warmup_steps=hparams.warmup_fraction * num_steps))
  schedule = optimizer_lib.learning_rate_schedule(schedule_config)
  scales = layerwise_lr_scales(params, num_layers, hparams.layerwise_lr_decay,
                               hparams.layerwise_lr_rule)
  tx = optax.chain(optimizer_lib.make_optimizer(hparams, schedule), scale_by_tree(scales))
  return tx, schedule

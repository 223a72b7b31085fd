"""Sharding by logical axis names: the mesh scope, parameter and batch shardings, sharded state.

Parameters carry logical names ('vocab', 'embed', 'mlp', 'heads', 'kv') and activations 'batch',
'length', 'act_*'; `config.mesh.logical_axis_rules` (as tuples: `mesh.MeshShape.rules`)
maps them to the mesh axes. Everything that runs the model enters `mesh_scope(mesh, rules)`;
state is created directly sharded (`eval_shape` -> logical names -> `jit(init, out_shardings)`),
never materialised on one device. Dimensions the mesh cannot divide (a one-head generator on
tensor=2) are replicated instead of failing.
"""

from __future__ import annotations

import contextlib
import math
from typing import Any, Callable, Iterator

import flax.linen as nn
from flax.core import meta
import jax
from jax.sharding import Mesh, NamedSharding, PartitionSpec as P


@contextlib.contextmanager
def mesh_scope(mesh: Mesh, rules) -> Iterator[None]:
  """The mesh and the logical axis rules, as every trace or call of the model needs them."""
  with jax.set_mesh(mesh), nn.logical_axis_rules(rules):
    yield


def _divisible_logical_axes(shape, logical_axes, mesh, rules):
  """`logical_axes` with None wherever the mapped mesh axes do not divide the dimension.

  A small generator has a single attention head (and tiny tables), which a tensor axis of 2
  cannot split; such a dimension is replicated instead of failing.
  """
  mesh_axes = nn.logical_to_mesh_axes(logical_axes, rules)
  kept = []
  for size, name, axes in zip(shape, logical_axes, mesh_axes):
    axes = () if axes is None else (axes,) if isinstance(axes, str) else tuple(axes)
    ways = math.prod(mesh.shape.get(axis, 1) for axis in axes)
    kept.append(name if size % ways == 0 else None)
  return tuple(kept)


def _ways(logical_axis, mesh, rules) -> int:
  axes = nn.logical_to_mesh_axes((logical_axis,), rules)[0]
  axes = () if axes is None else (axes,) if isinstance(axes, str) else tuple(axes)
  return math.prod(mesh.shape.get(axis, 1) for axis in axes)


_LANES, _SUBLANES = 128, 8  # a TPU float32 memory tile: (8, 128) over two dimensions


def _round_up(size: int, multiple: int) -> int:
  return -(-size // multiple) * multiple


def _tiled_sizes(shape) -> tuple[int, int]:
  """(elements laid out in TPU tiles in the best layout, in the row-major one) of `shape`.

  XLA chooses a parameter's layout, so any dimension may lie on the 128 lanes and any other on
  the 8 sublanes: a [128, 2, 64] attention kernel is laid out with 128 on the lanes, unpadded,
  where row-major would pad 64 to 128. Row-major breaks ties (what XLA falls back to).
  """
  shape = tuple(shape)
  if len(shape) < 2:
    return (_round_up(shape[0], _LANES),) * 2 if shape else (1, 1)
  total = math.prod(shape)

  def padded(lanes, sublanes):
    return (total // (shape[lanes] * shape[sublanes]) * _round_up(shape[lanes], _LANES)
            * _round_up(shape[sublanes], _SUBLANES))

  rank = len(shape)
  best = min(padded(i, j) for i in range(rank) for j in range(rank) if i != j)
  return best, padded(rank - 1, rank - 2)


def _whole_tile_param_axes(shape, logical_axes, mesh, rules):
  """Moves a parameter's sharded logical axis off a dimension whose shards would be padded to a
  TPU tile, onto an unsharded dimension whose shards pad least (`_tiled_sizes`).

  fsdp maps 'embed' to the mesh. Where 'embed' is the minor dimension (an output kernel
  [mlp, embed], a table [vocab, embed]) its shards (768/8 = 96 on Base) would be padded to 128
  lanes; a query kernel [embed, heads, kv] = [768, 12, 64] split on embed leaves [96, 12, 64],
  no dimension of which fills the lanes, where [768, 12, 8] (split on kv) does. Either way the
  state would not shrink by the fsdp factor. Elsewhere (CPU, GPU) the move changes nothing but
  which dimension is split.
  """
  names = list(logical_axes)
  for dim, name in enumerate(logical_axes):
    ways = _ways(name, mesh, rules) if name is not None else 1
    if ways == 1:
      continue

    def shard(j):
      return tuple(size // ways if k == j else size for k, size in enumerate(shape))

    free = [j for j in range(len(shape)) if j != dim and shape[j] % ways == 0
            and (names[j] is None or _ways(names[j], mesh, rules) == 1)]
    # Least padding first, then the row-major layout's, then staying, then the largest dimension.
    target = min([dim] + free, key=lambda j: (_tiled_sizes(shard(j)), j != dim, -shape[j]))
    if target != dim:
      names[target], names[dim] = name, None
  return tuple(names)


def _param_axes(shape, logical_axes, mesh, rules):
  """A parameter's logical axes as laid out on the mesh: divisible, whole TPU tiles."""
  names = _divisible_logical_axes(shape, logical_axes, mesh, rules)
  return _whole_tile_param_axes(shape, names, mesh, rules)


def constrain(x, logical_axes, *, param: bool = False):
  """`nn.with_logical_constraint` that leaves indivisible dimensions unconstrained (and, for a
  parameter, lays its shards out in whole TPU tiles: `_whole_tile_param_axes`)."""
  rules, mesh = nn.get_logical_axis_rules(), meta.get_global_mesh()
  if rules and mesh is not None:
    layout = _param_axes if param else _divisible_logical_axes
    logical_axes = layout(x.shape, logical_axes, mesh, rules)
  return nn.with_logical_constraint(x, logical_axes)


class Partitioned(nn.LogicallyPartitioned):
  """Logically partitioned param whose read-time constraint skips indivisible dimensions."""

  def unbox(self, apply_constraint=True):
    if apply_constraint and meta.global_mesh_defined():
      return constrain(self.value, self.names, param=True)
    return self.value


def partitioned(init, names):
  """Like `nn.with_logical_partitioning`, with `Partitioned` boxes."""
  return lambda *args, **kwargs: Partitioned(init(*args, **kwargs), names)


def param_shardings(abstract_params, mesh: Mesh, rules):
  """NamedShardings for boxed (abstract) params, replicating dimensions the mesh cannot divide.

  Use instead of `nn.logical_to_mesh_sharding(nn.get_partition_spec(...))`, which fails when,
  e.g., a one-head generator meets a tensor axis of 2. The result can be `jit`'s `out_shardings`
  for `model.init_pretrainer_params`.
  """

  def sharding(leaf):
    if not isinstance(leaf, nn.Partitioned):
      return NamedSharding(mesh, P())
    names = _param_axes(leaf.value.shape, leaf.names, mesh, rules)
    return NamedSharding(mesh, nn.logical_to_mesh_axes(names, rules))

  return jax.tree.map(sharding, abstract_params, is_leaf=lambda x: isinstance(x, nn.Partitioned))


def batch_sharding(mesh: Mesh, rules) -> NamedSharding:
  """Input rows follow the 'batch' logical rule (every data-parallel axis by default); the
  length axis stays whole. Editing the rule moves the input with the activations."""
  return NamedSharding(mesh, nn.logical_to_mesh_axes(('batch',), rules))


def state_shardings(init_fn: Callable[[jax.Array], Any], rng: jax.Array, mesh: Mesh,
                    rules) -> tuple[Any, Any]:
  """(abstract unboxed state, NamedShardings) from the logical axis names of the parameters.

  `init_fn` returns a state whose params (and so optimizer slots) are still `nn.Partitioned`
  boxes: eval_shape reads their logical names without allocating anything.
  """
  with mesh_scope(mesh, rules):
    boxed = jax.eval_shape(init_fn, rng)
    shardings = param_shardings(boxed, mesh, rules)
    unboxed = jax.eval_shape(lambda r: nn.unbox(init_fn(r)), rng)
  abstract = jax.tree.map(lambda leaf, sharding: jax.ShapeDtypeStruct(
      leaf.shape, leaf.dtype, sharding=sharding), unboxed, shardings)
  return abstract, shardings


def init_state(init_fn: Callable[[jax.Array], Any], rng: jax.Array, mesh: Mesh, rules,
               shardings) -> Any:
  """Runs `init_fn` under `jit`, each leaf created directly with its sharding."""
  with mesh_scope(mesh, rules):
    return jax.jit(lambda r: nn.unbox(init_fn(r)), out_shardings=shardings)(rng)


def create_sharded_state(init_fn: Callable[[jax.Array], Any], rng: jax.Array, mesh: Mesh,
                         rules) -> tuple[Any, Any, Any]:
  """(state, abstract state, shardings): `state_shardings`, then `init_state`."""
  abstract, shardings = state_shardings(init_fn, rng, mesh, rules)
  return init_state(init_fn, rng, mesh, rules, shardings), abstract, shardings

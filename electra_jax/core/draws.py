"""Random words that use every bit a threefry block hashes: the step's dropout masks and
Gumbel noise draw from here.

Under the partitionable threefry that runs use, `jax.random.bits` hashes one 64-bit threefry block
per 32-bit output and keeps half of it (the two words xor-ed). `block_words` calls the block's
function, `threefry2x32_p`, on a counter of (index over the leading axes, index along the last)
and keeps both words: half the hashing per random bit. Counters made of iotas are elementwise, so
a draw shards like its consumer and is the same on any mesh, as jax's own. Other PRNG
implementations (`train.prng_impl='rbg'`) give one 32-bit word per counter, through
`jax.random.bits`.
"""

import jax
from jax.extend.random import threefry2x32_p
import jax.numpy as jnp


def words_per_block(rng: jax.Array) -> int:
  """How many independent uint32 words `block_words` returns for a key: 2 for threefry, else 1."""
  return 2 if str(jax.random.key_impl(rng)) == 'threefry2x32' else 1


def block_words(rng: jax.Array, shape) -> list[jax.Array]:
  """`words_per_block(rng)` independent uniform uint32 arrays of `shape` from one key."""
  shape = tuple(shape)
  if words_per_block(rng) == 1:
    return [jax.random.bits(rng, shape, jnp.uint32)]
  rows = jnp.zeros(shape, jnp.uint32)
  for axis in range(len(shape) - 1):
    rows = rows * jnp.uint32(shape[axis]) + jax.lax.broadcasted_iota(jnp.uint32, shape, axis)
  cols = jax.lax.broadcasted_iota(jnp.uint32, shape, len(shape) - 1)
  key = jax.random.key_data(rng)
  return list(threefry2x32_p.bind(key[0], key[1], rows, cols))


def interleave(lanes: list[jax.Array], length: int) -> jax.Array:
  """[..., length]: element len(lanes) * j + i of the last axis is lanes[i][..., j].

  A select over [..., j, lane], which XLA fuses into the consumer (stacking the lanes would be a
  separate copy of each).
  """
  shape = (*lanes[0].shape, len(lanes))
  lane = jax.lax.broadcasted_iota(jnp.int32, shape, len(shape) - 1)
  out = None
  for i, part in reversed(list(enumerate(lanes))):
    part = jnp.broadcast_to(part[..., None], shape)
    out = part if out is None else jnp.where(lane == i, part, out)
  return out.reshape(*shape[:-2], shape[-2] * len(lanes))[..., :length]


def unit_floats(bits: jax.Array) -> jax.Array:
  """Uniform float32 in [0, 1) from uint32 words, as `jax.random.uniform` makes them (the top 23
  bits as the mantissa of a float in [1, 2), minus 1)."""
  mantissa = jax.lax.shift_right_logical(bits, jnp.uint32(32 - 23)) | jnp.uint32(0x3F800000)
  return jax.lax.bitcast_convert_type(mantissa, jnp.float32) - 1.0


def uniform(rng: jax.Array, shape) -> jax.Array:
  """Uniform float32 in [0, 1) of `shape`: both words of each threefry block used (one word per
  counter for other PRNG implementations)."""
  lanes = words_per_block(rng)
  groups = (*shape[:-1], -(-shape[-1] // lanes))
  return interleave([unit_floats(w) for w in block_words(rng, groups)], shape[-1])

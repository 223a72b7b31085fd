"""The one sharded-state path and the batch sharding that follows the 'batch' logical rule."""

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np
import pytest
from jax.sharding import PartitionSpec as P

from electra_jax.configs import tiny
from electra_jax.core import optimizer as optimizer_lib
from electra_jax.parallel import mesh as mesh_lib
from electra_jax.parallel import sharding
from electra_jax.pretraining import steps
from electra_jax.spec import run as run_spec


def _config(**mesh):
  config = tiny.get_config()
  config.mesh.update(**mesh)
  config.model.update(num_layers=1, hidden_size=32, embedding_size=32, num_heads=2,
                      intermediate_size=64, vocab_size=128, max_position_embeddings=32)
  config.data.max_seq_length = 32
  return config


def test_batch_sharding_follows_the_batch_rule():
  config = _config(data=2, fsdp=2, tensor=2)
  shape = mesh_lib.MeshShape.of(config.mesh, jax.device_count())
  mesh, rules = mesh_lib.make_mesh(shape), shape.rules
  assert sharding.batch_sharding(mesh, rules).spec == P(('data', 'fsdp'))
  edited = tuple(('batch', 'data') if name == 'batch' else (name, axes) for name, axes in rules)
  assert sharding.batch_sharding(mesh, edited).spec == P('data')


def test_create_sharded_state_places_every_leaf_as_its_logical_names_say():
  config = _config(data=2, fsdp=2, tensor=2)
  spec = run_spec.load(config, num_devices=jax.device_count())
  mesh, rules = mesh_lib.make_mesh(spec.mesh), spec.mesh.rules
  tx = optimizer_lib.make_optimizer(config.train)
  init_fn = steps.make_init_fn(spec.objective.build_model(spec), tx, 32, spec.max_predictions)
  state, abstract, shardings = sharding.create_sharded_state(init_fn, jax.random.key(0), mesh,
                                                             rules)
  kernel = state.params['discriminator']['encoder']['layer_0']['intermediate']['kernel']
  assert kernel.sharding.spec == P('fsdp', 'tensor')
  for leaf, want, shape in zip(jax.tree.leaves(state), jax.tree.leaves(shardings),
                               jax.tree.leaves(abstract)):
    assert leaf.sharding == want and leaf.shape == shape.shape
  # The same values as an unsharded init.
  plain = jax.jit(lambda r: jax.tree.map(jnp.asarray, nn.unbox(init_fn(r))))(
      jax.random.key(0))
  np.testing.assert_array_equal(np.asarray(kernel), np.asarray(
      plain.params['discriminator']['encoder']['layer_0']['intermediate']['kernel']))


class _FakeMesh:
  shape = {'data': 1, 'fsdp': 8, 'tensor': 1}


_RULES = (('embed', 'fsdp'), ('heads', 'tensor'), ('mlp', 'tensor'), ('kv', None),
          ('vocab', None))


@pytest.mark.parametrize('shape, names, laid_out', [
    # Base's query kernel: [96, 12, 64] shards fill no 128 lanes whatever the layout; split on kv,
    # [768, 12, 8] lays 768 on the lanes and 8 on the sublanes, unpadded.
    ((768, 12, 64), ('embed', 'heads', 'kv'), (None, 'heads', 'embed')),
    # An output kernel [mlp, embed]: row-major [3072, 96] pads 96 to 128 lanes; [384, 768] does not.
    ((3072, 768), ('mlp', 'embed'), ('embed', None)),
    # An intermediate kernel's [96, 3072] shards are whole tiles already: it stays.
    ((768, 3072), ('embed', 'mlp'), ('embed', 'mlp')),
    # 30522 rows cannot be split 8 ways: the table stays split on embed.
    ((30522, 128), ('vocab', 'embed'), ('vocab', 'embed')),
    ((256,), ('embed',), ('embed',)),
])
def test_fsdp_splits_each_parameter_where_its_shards_fill_tpu_tiles(shape, names, laid_out):
  assert sharding._whole_tile_param_axes(shape, names, _FakeMesh, _RULES) == laid_out

"""The compiled train step under fsdp=8: what crosses devices, and what each device holds.

Compiled ahead of time for 8 emulated CPU devices (nothing runs). On this backend gradients leave
the backward pass as all-reduces followed by a dynamic-slice to each device's shard (XLA's GPU
and TPU pipelines rewrite that pair into a reduce-scatter; the CPU pipeline does not), and each
sharded parameter is all-gathered once per step, the gathered copy serving forward and backward.
"""

import functools
import re

import jax
import numpy as np
import pytest

from electra_jax import mesh as mesh_lib
from electra_jax import model as model_lib
from electra_jax import optimizer as optimizer_lib
from electra_jax import reporting
from electra_jax import sharding
from electra_jax import startup
from electra_jax import steps
from electra_jax import validate

_DTYPE_BYTES = {'f32': 4, 's32': 4, 'u32': 4, 'bf16': 2, 'pred': 1, 'u8': 1}
# What XLA (jax 0.10) emits for this tiny config: 61 sharded parameter leaves, each gathered
# once, plus 13 re-gathers of LayerNorm vectors in the backward pass; no reduce-scatter on CPU.
# If an XLA upgrade changes these, check the invariants in the tests below before updating them.
_EXPECTED_COUNTS = {'all-gather': 74, 'reduce-scatter': 0}


def _bytes(shape: str) -> int:
  dtype, dims = re.match(r'(\w+)\[([\d,]*)\]', shape).groups()
  return _DTYPE_BYTES[dtype] * int(np.prod([int(d) for d in dims.split(',') if d]))


def _collectives(hlo: str) -> dict[str, list[int]]:
  """Opcode -> the byte size of every array each such collective produces."""
  found = {'all-gather': [], 'all-reduce': [], 'reduce-scatter': []}
  for line in hlo.splitlines():
    match = re.search(r'= (\(.*?\)|\S+) (all-gather|all-reduce|reduce-scatter)(?:-start)?\(', line)
    if match:
      found[match.group(2)].append(sum(_bytes(s) for s in re.findall(r'\w+\[[\d,]*\]',
                                                                     match.group(1))))
  return found


@pytest.fixture(scope='module')
def fsdp8(repo_root):
  config = startup.load_config_file(repo_root / 'configs' / 'tiny.py')
  config.mesh.update(data=1, fsdp=8, tensor=1)
  # The original's generator (H/4, tied tables), whose shared-table gradients are counted below.
  config.electra.update(generator_hidden_fraction=0.25, embedding_sharing='shared')
  config.train.batch_size, config.data.max_seq_length = 16, 32
  config.data.source = 'synthetic'
  jax.config.update('jax_threefry_partitionable', True)
  mesh = mesh_lib.make_mesh(config.mesh)
  rules = validate.logical_axis_rules(config.mesh)
  model = model_lib.build_pretrainer(config)
  tx = optimizer_lib.make_optimizer(config.train)
  max_predictions = validate.max_predictions(config)
  init_fn = steps.make_init_fn(model, tx, config.data.max_seq_length, max_predictions)
  rng = jax.random.key(0)
  state, shardings = sharding.state_shardings(init_fn, rng, mesh, rules)
  batch_sharding = sharding.batch_sharding(mesh, rules)
  with sharding.mesh_scope(mesh, rules):
    shapes = {'masked_lm_positions': (16, max_predictions), 'masked_lm_ids': (16, max_predictions),
              'masked_lm_weights': (16, max_predictions)}
    batch = {k: jax.ShapeDtypeStruct(shapes.get(k, (16, 32)),
                                     np.float32 if k == 'masked_lm_weights' else np.int32,
                                     sharding=batch_sharding) for k in steps.BATCH_KEYS}
    compiled = jax.jit(
        functools.partial(steps.train_step, model=model, tx=tx, config=config, base_rng=rng),
        in_shardings=(shardings, batch_sharding), out_shardings=(shardings, None),
        donate_argnums=(0,)).lower(state, batch).compile()
  return state, batch, compiled


def _shard_bytes(tree) -> int:
  return sum(int(np.prod(x.sharding.shard_shape(x.shape))) * np.dtype(x.dtype).itemsize
             for x in jax.tree.leaves(tree))


def test_each_device_holds_an_eighth_of_the_state(fsdp8):
  state, batch, compiled = fsdp8
  full = sum(x.size * np.dtype(x.dtype).itemsize for x in jax.tree.leaves(state))
  per_device = _shard_bytes(state)
  # Only vectors the mesh cannot divide (and the step counter) stay whole: within 10% of 1/8.
  assert per_device <= 1.1 * full / 8, (per_device, full)
  memory = reporting.memory_per_device(compiled)
  assert memory['argument'] == per_device + _shard_bytes(batch)
  assert memory['alias'] == per_device  # the donated state is updated in place


def test_collective_counts_are_pinned(fsdp8):
  _, _, compiled = fsdp8
  found = _collectives(compiled.as_text())
  assert {k: len(found[k]) for k in _EXPECTED_COUNTS} == _EXPECTED_COUNTS


def test_parameters_are_gathered_once_and_gradients_reduced_once(fsdp8):
  state, _, compiled = fsdp8
  found = _collectives(compiled.as_text())
  params = jax.tree.leaves(state.params)
  sharded = [p for p in params if not p.sharding.is_fully_replicated]
  sharded_bytes = sum(p.size * 4 for p in sharded)
  # Every sharded parameter is gathered (whole) once per step; nothing bigger than a parameter
  # (an activation) is gathered.
  assert len(found['all-gather']) >= len(sharded)
  assert sharded_bytes <= sum(found['all-gather']) <= 1.01 * sharded_bytes
  assert max(found['all-gather']) <= max(p.size * 4 for p in params)
  # Each gradient is all-reduced once; the shared word table gets three contributions (generator
  # lookup and output projection, discriminator lookup), reduced before they are added.
  param_bytes = sum(p.size * 4 for p in params)
  word_table = state.params['shared_embeddings']['word_embeddings']
  reduced = sum(found['all-reduce'])
  assert param_bytes <= reduced <= param_bytes + 2 * word_table.size * 4 + 64 * 1024

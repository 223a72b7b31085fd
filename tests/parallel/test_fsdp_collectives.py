"""The compiled train step under fsdp=8: what crosses devices, and what each device holds.

Compiled ahead of time for 8 emulated CPU devices (nothing runs). On this backend gradients leave
the backward pass as all-reduces followed by a dynamic-slice to each device's shard (XLA's GPU
and TPU pipelines rewrite that pair into a reduce-scatter; the CPU pipeline does not), and each
sharded parameter is all-gathered once per step, the gathered copy serving forward and backward.
"""

import jax
import numpy as np
import pytest

from electra_jax import reporting
from electra_jax import startup
from electra_jax.parallel import hlo
from electra_jax.parallel import sharding
from electra_jax.pretraining import train

# What XLA (jax 0.10) emits for this tiny config: 62 sharded parameter leaves (the prediction
# heads' dense kernels included), each gathered once, plus 13 re-gathers of LayerNorm vectors in
# the backward pass; no reduce-scatter on CPU.
# If an XLA upgrade changes these, check the invariants in the tests below before updating them.
_EXPECTED_COUNTS = {'all-gather': 75, 'reduce-scatter': 0}
# The compile check's parser (tests/pretraining/test_tpu_compile.py: on TPU).
_collectives = hlo.collectives


@pytest.fixture(scope='module')
def fsdp8(repo_root):
  config = startup.load_config_file(repo_root / 'configs' / 'tiny.py')
  config.mesh.update(data=1, fsdp=8, tensor=1)
  # The original's generator (H/4, tied tables), whose shared-table gradients are counted below.
  config.electra.update(generator_hidden_fraction=0.25, embedding_sharing='shared')
  config.train.batch_size, config.data.max_seq_length = 16, 32
  config.data.source = 'synthetic'
  spec, mesh = train.spec_and_mesh(config, jax.devices(), 1)
  rules = spec.mesh.rules
  program = train.build_program(spec, mesh)  # what training compiles
  with sharding.mesh_scope(mesh, rules):
    compiled = program.train_step.lower(program.abstract_state, program.abstract_batch).compile()
  return program.abstract_state, program.abstract_batch, compiled


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

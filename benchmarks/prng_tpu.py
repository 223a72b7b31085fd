"""What the PRNG implementation (`train.prng_impl`) changes in the TPU-compiled train step.

  JAX_PLATFORMS=cpu TPU_SKIP_MDS_QUERY=1 python benchmarks/prng_tpu.py --config=tiny \
      --topology=v4:2x2x1 [--batch_size=128 --seq_len=128] [--impls=threefry,rbg,unsafe_rbg]

Needs libtpu (`pip install -e '.[tpu]'`), no TPU: the real train step (dropout masks and the
generator's Gumbel or inverse-CDF sampling included) is compiled ahead of time for the named TPU
topology (`jax.experimental.topologies.get_topology_desc`), once per implementation, with
jax_threefry_partitionable on as in training. For each it prints XLA's compiled FLOPs and bytes
accessed per device, the temporary memory per device, the compile time, and the random-number
ops of the optimised TPU HLO: RngBitGenerator ops, and threefry's hash as the count of shift
pairs (each of its 32-bit rotations is a shift-left, a shift-right-logical and an or). Prints
figures; asserts nothing. Speed itself needs a TPU: these are what the compiler plans. On a
machine where another process holds libtpu, add ALLOW_MULTIPLE_LIBTPU_LOAD=1.
"""

from __future__ import annotations

import functools
import re
import time

from absl import app
from absl import flags
import jax
import ml_collections

_CONFIG = flags.DEFINE_string('config', 'tiny', 'Config file or packaged name.')
_TOPOLOGY = flags.DEFINE_string('topology', 'v4:2x2x1', "libtpu's topology string.")
_BATCH = flags.DEFINE_integer('batch_size', 0, 'Global batch; 0 = the config\'s.')
_SEQ = flags.DEFINE_integer('seq_len', 0, 'Sequence length; 0 = the config\'s.')
_IMPLS = flags.DEFINE_list('impls', ['threefry', 'rbg', 'unsafe_rbg'], 'train.prng_impl values.')
_DROPOUT = flags.DEFINE_float('dropout', 0.1, 'model.hidden/attention_dropout_prob (the paper\'s '
                               '0.1: tiny.py has none); -1 = the config\'s.')
_HLO_DIR = flags.DEFINE_string('hlo_dir', '', 'If set, writes each compiled HLO text here.')


def compile_train_step(config: ml_collections.ConfigDict, devices) -> tuple:
  """(compiled train step, seconds to compile) of `config` on `devices` (e.g. a TPU topology's),
  built as `train.setup` builds it, from shapes only: nothing is allocated or run."""
  from electra_jax import mesh as mesh_lib  # noqa: PLC0415
  from electra_jax import objective_switch  # noqa: PLC0415
  from electra_jax import optimizer as optimizer_lib  # noqa: PLC0415
  from electra_jax import sharding  # noqa: PLC0415
  from electra_jax import steps  # noqa: PLC0415
  from electra_jax import validate  # noqa: PLC0415
  from electra_jax.data import synthetic  # noqa: PLC0415

  validate.validate_config(config, num_devices=len(devices))
  mesh = mesh_lib.make_mesh(config.mesh, devices)
  rules = validate.logical_axis_rules(config.mesh)
  model = objective_switch.build_model(config)
  tx = optimizer_lib.make_optimizer(config.train,
                                    optimizer_lib.learning_rate_schedule(config.train))
  max_predictions = validate.max_predictions(config)
  init_fn = steps.make_init_fn(model, tx, config.data.max_seq_length, max_predictions)
  init_rng, train_rng = jax.random.split(jax.random.key(
      config.seed, dtype=validate.prng_impl(config.train, devices[0].platform)))
  abstract_state, state_shardings = sharding.state_shardings(init_fn, init_rng, mesh, rules)
  batch_sharding = sharding.batch_sharding(mesh, rules)
  host_batch = synthetic.synthetic_batch(
      0, 0, batch_size=config.train.batch_size, max_seq_length=config.data.max_seq_length,
      max_predictions=max_predictions, vocab_size=config.model.vocab_size)
  batch = {k: jax.ShapeDtypeStruct(host_batch[k].shape, host_batch[k].dtype,
                                   sharding=batch_sharding) for k in steps.BATCH_KEYS}
  train_step = jax.jit(
      functools.partial(steps.train_step, model=model, tx=tx, config=config, base_rng=train_rng),
      in_shardings=(state_shardings, batch_sharding),
      out_shardings=(state_shardings, None), donate_argnums=(0,))
  start = time.perf_counter()
  with sharding.mesh_scope(mesh, rules):
    compiled = train_step.lower(abstract_state, batch).compile()
  return compiled, time.perf_counter() - start


def rng_op_counts(hlo_text: str) -> dict[str, int]:
  """Random-number ops in an optimised HLO module's text (fusion bodies included)."""
  def count(op):
    return len(re.findall(rf'\s{re.escape(op)}\(', hlo_text))
  return {'rng-bit-generator': count('rng-bit-generator'),
          # threefry's rotations x<<r | x>>(32-r): one shift pair each (other shifts inflate it)
          'shift pairs': min(count('shift-left'), count('shift-right-logical')),
          'while loops': count('while'),
          'HLO ops': len(re.findall(r'^\s*(?:ROOT\s+)?%\S+\s*=', hlo_text, re.MULTILINE))}


def _cost(compiled) -> dict[str, float]:
  analysis = compiled.cost_analysis()
  if isinstance(analysis, (list, tuple)):  # one per program in older jax
    analysis = analysis[0]
  return analysis or {}


def main(argv):
  del argv
  from jax.experimental import topologies  # noqa: PLC0415
  from electra_jax import reporting  # noqa: PLC0415
  from electra_jax import startup  # noqa: PLC0415

  jax.config.update('jax_threefry_partitionable', True)  # as train.train_and_evaluate does
  devices = topologies.get_topology_desc(topology_name=_TOPOLOGY.value, platform='tpu').devices
  path, _, argument = startup.resolve_config(_CONFIG.value).partition(':')
  base = startup.load_config_file(path, argument)
  if _BATCH.value:
    base.train.batch_size = _BATCH.value
  if _SEQ.value:
    base.data.max_seq_length = _SEQ.value
  if _DROPOUT.value >= 0:
    base.model.hidden_dropout_prob = base.model.attention_dropout_prob = _DROPOUT.value
  base.data.source = 'synthetic'
  print(f'{_CONFIG.value}: batch {base.train.batch_size} x {base.data.max_seq_length}, '
        f'{base.model.dtype}, dropout {base.model.hidden_dropout_prob}, sampler '
        f'{base.electra.sampler}, on {_TOPOLOGY.value} '
        f'({len(devices)} x {devices[0].device_kind}), jax {jax.__version__}; per device:\n')
  columns = ('prng_impl', 'compile s', 'GFLOPs', 'GB accessed', 'temp MiB', 'rng-bit-generator',
             'shift pairs', 'while loops', 'HLO ops')
  print('| ' + ' | '.join(columns) + ' |')
  print('|' + '---|' * len(columns))
  for impl in _IMPLS.value:
    config = ml_collections.ConfigDict(base.to_dict())
    config.train.prng_impl = impl
    compiled, seconds = compile_train_step(config, devices)
    cost = _cost(compiled)
    memory = reporting.memory_per_device(compiled) or {}
    hlo = compiled.as_text()
    if _HLO_DIR.value:
      with open(f'{_HLO_DIR.value}/{impl}.hlo.txt', 'w') as f:
        f.write(hlo)
    counts = rng_op_counts(hlo)
    row = [impl, f'{seconds:.0f}', f'{cost.get("flops", 0) / 1e9:.2f}',
           f'{cost.get("bytes accessed", 0) / 1e9:.3f}', f'{memory.get("temp", 0) / 2**20:.1f}',
           *(str(counts[c]) for c in columns[5:])]
    print('| ' + ' | '.join(row) + ' |', flush=True)


if __name__ == '__main__':
  app.run(main)

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

import re

from absl import app
from absl import flags
import jax
import ml_collections

_CONFIG = flags.DEFINE_string('config', 'tiny', 'Config file or packaged name.')
_TOPOLOGY = flags.DEFINE_string('topology', 'v4-8', 'TPU accelerator type (v4-8) or libtpu '
                                 'topology (v4:2x2x1).')
_BATCH = flags.DEFINE_integer('batch_size', 0, 'Global batch; 0 = the config\'s.')
_SEQ = flags.DEFINE_integer('seq_len', 0, 'Sequence length; 0 = the config\'s.')
_IMPLS = flags.DEFINE_list('impls', ['threefry', 'rbg', 'unsafe_rbg'], 'train.prng_impl values.')
_DROPOUT = flags.DEFINE_float('dropout', 0.1, 'model.hidden/attention_dropout_prob (the paper\'s '
                               '0.1: tiny.py has none); -1 = the config\'s.')
_HLO_DIR = flags.DEFINE_string('hlo_dir', '', 'If set, writes each compiled HLO text here.')


def rng_op_counts(hlo_text: str) -> dict[str, int]:
  """Random-number ops in an optimised HLO module's text (fusion bodies included)."""
  def count(op):
    return len(re.findall(rf'\s{re.escape(op)}\(', hlo_text))
  return {'rng-bit-generator': count('rng-bit-generator'),
          # threefry's rotations x<<r | x>>(32-r): one shift pair each (other shifts inflate it)
          'shift pairs': min(count('shift-left'), count('shift-right-logical')),
          'while loops': count('while'),
          'HLO ops': len(re.findall(r'^\s*(?:ROOT\s+)?%\S+\s*=', hlo_text, re.MULTILINE))}


def main(argv):
  del argv
  from electra_jax.parallel import topologies  # noqa: PLC0415
  from electra_jax.pretraining import tpu_compile  # noqa: PLC0415
  from electra_jax import reporting  # noqa: PLC0415
  from electra_jax import startup  # noqa: PLC0415

  topology = topologies.parse_topology(_TOPOLOGY.value)
  devices = topologies.topology_devices(topology)
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
    # The program training compiles (train.build_program), for the topology's devices.
    checked = tpu_compile.compile_steps(config, devices, with_eval=False)
    compiled, seconds = checked.train, checked.train_seconds
    cost = compiled.cost_analysis()
    cost = (cost[0] if isinstance(cost, (list, tuple)) else cost) or {}
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

"""In-process A/B of train-step variants: a tighter comparison than alternating processes.

  python benchmarks/ab_steps.py --variants=my_variants [--rounds=14] [--config=configs/small.py]

`--variants` names an importable module (put its folder on PYTHONPATH) holding
`VARIANTS = {name: context-manager factory}`; each factory patches the code (e.g. puts back the
old version of one function) while its step is traced, e.g.

  import contextlib
  from electra_jax.core import model
  @contextlib.contextmanager
  def old():
    saved, model._layer_norm = model._layer_norm, old_layer_norm
    try: yield
    finally: model._layer_norm = saved
  VARIANTS = {'before': old, 'after': contextlib.nullcontext}

`--device_counts=1,2` builds each variant's step over the first 1 and the first 2 devices of this
process (a CPU host is split as the trainer splits it, `config.mesh.cpu_devices`): how
issue 24 measured one XLA:CPU device against two on the same cores,

  python benchmarks/ab_steps.py --device_counts=1,2 --config=configs/small.py

Every variant's step is compiled in this process (Small's state each: memory permitting), then
single steps alternate over the rounds (order reversed every other round), so a shared machine's
changing load hits all alike. Prints each variant's median and minimum, and the median of the
per-round speed-ups against the first variant. Asserts nothing: compare the rows of one run.
"""

import contextlib
import importlib

from absl import app
from absl import flags
import jax
import numpy as np

import step_harness  # benchmarks/step_harness.py

_VARIANTS = flags.DEFINE_string('variants', '', 'Module with VARIANTS = {name: patch}; '
                                'default: the code as it is.')
_DEVICE_COUNTS = flags.DEFINE_list('device_counts', [], 'Build each variant over the first N '
                                   'devices, for each N; default: all devices.')
_CONFIG = flags.DEFINE_string('config', 'configs/small.py', 'Config file or packaged name.')
_ROUNDS = flags.DEFINE_integer('rounds', 14, 'Alternating rounds of one step per variant.')
_BATCH = flags.DEFINE_integer('batch_size', 32, 'Global batch size.')
_SEQ = flags.DEFINE_integer('seq_len', 128, 'Sequence length.')


def main(argv):
  del argv
  from electra_jax import startup  # noqa: PLC0415
  from electra_jax.parallel import mesh as mesh_lib  # noqa: PLC0415

  variants = (importlib.import_module(_VARIANTS.value).VARIANTS if _VARIANTS.value
              else {'as is': contextlib.nullcontext})
  config = startup.load_config_file(_CONFIG.value)
  config.train.batch_size = _BATCH.value
  config.data.max_seq_length = _SEQ.value
  mesh_lib.split_cpu_host(config)  # as the trainer does: mesh.cpu_devices (XLA_FLAGS' count wins)
  devices = jax.devices()
  counts = [int(n) for n in _DEVICE_COUNTS.value] or [len(devices)]
  if max(counts) > len(devices):
    raise app.UsageError(f'--device_counts={max(counts)}: this process has {len(devices)} '
                         'devices (XLA_FLAGS=--xla_force_host_platform_device_count=N for more).')
  steps = {}
  for name, patch in variants.items():
    for count in counts:
      key = name if len(counts) == 1 else f'{name} @ {count} device(s)'
      with patch():  # traced and compiled under the patch
        steps[key] = step_harness.build(config, devices=devices[:count])
      steps[key].run(2)  # warm-up
  times = {name: [] for name in steps}
  for index in range(_ROUNDS.value):
    for name in (list(steps) if index % 2 == 0 else list(reversed(steps))):
      times[name].append(steps[name].run(1))
  base = np.array(times[next(iter(steps))])
  print(f'{_ROUNDS.value} alternating rounds, {_CONFIG.value} at {_BATCH.value} x {_SEQ.value}')
  print('| variant | median ms | min ms | speed-up vs the first (median per round) |')
  print('|---|---|---|---|')
  for name, values in times.items():
    values = np.array(values)
    print(f'| {name} | {np.median(values) * 1e3:.1f} | {values.min() * 1e3:.1f} | '
          f'{np.median(base / values):.3f}x |')


if __name__ == '__main__':
  app.run(main)

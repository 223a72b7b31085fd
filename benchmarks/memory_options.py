"""Per-device memory and step-time cost of the rematerialisation options (`model.remat`).

  XLA_FLAGS=--xla_force_host_platform_device_count=8 python benchmarks/memory_options.py

For each of remat = none | dots | full: XLA's compiled peak memory per device of the train step
(compiled ahead of time, nothing allocated) for `--config` at `--batch_size` x `--seq_len` on
all local devices with `mesh.fsdp` = device count; then the step time of the same config at the
smaller `--time_batch` x `--time_seq_len` on one device, where a CPU can run it. Prints figures;
asserts nothing.
"""

from absl import app
from absl import flags
import jax

import step_harness  # benchmarks/step_harness.py

_CONFIG = flags.DEFINE_string('config', 'configs/base.py', 'Config file.')
_BATCH = flags.DEFINE_integer('batch_size', 64, 'Global batch for the memory analysis.')
_SEQ = flags.DEFINE_integer('seq_len', 512, 'Sequence length for the memory analysis.')
_TIME_BATCH = flags.DEFINE_integer('time_batch', 8, 'Batch for the step-time measurement; 0 = skip.')
_TIME_SEQ = flags.DEFINE_integer('time_seq_len', 128, 'Sequence length for the step time.')
_STEPS = flags.DEFINE_integer('steps', 2, 'Timed steps (after one warm-up step).')
_REMATS = ('none', 'dots', 'full')


def main(argv):
  del argv
  from electra_jax import reporting  # noqa: PLC0415
  from electra_jax import startup  # noqa: PLC0415

  gib = 2 ** 30
  rows = []
  for remat in _REMATS:
    config = startup.load_config_file(_CONFIG.value)
    config.model.remat = remat
    config.train.batch_size, config.data.max_seq_length = _BATCH.value, _SEQ.value
    config.mesh.update(data=1, fsdp=jax.device_count(), tensor=1)
    step = step_harness.build(config, compile_now=False)
    compiled = step.lower().compile()
    memory = reporting.memory_per_device(compiled)
    row = {'remat': remat, 'peak': memory['peak'] / gib, 'temp': memory['temp'] / gib,
           'state': memory['argument'] / gib}
    del compiled, step
    rows.append(row)
    print(row, flush=True)
  if _TIME_BATCH.value:
    timed = []
    for remat in _REMATS:
      config = startup.load_config_file(_CONFIG.value)
      config.model.remat = remat
      config.train.batch_size, config.data.max_seq_length = _TIME_BATCH.value, _TIME_SEQ.value
      config.mesh.update(data=1, fsdp=1, tensor=1)
      timed.append(step_harness.build(config, devices=jax.devices()[:1]))
      timed[-1].run(1)
    # Interleaved, so that a shared machine's changing load hits the three options alike.
    for _ in range(_STEPS.value):
      for row, step in zip(rows, timed):
        row['step_s'] = row.get('step_s', 0.0) + step.run(1) / _STEPS.value
  print(f'\n{_CONFIG.value}: memory at {_BATCH.value} x {_SEQ.value} on {jax.device_count()} '
        f'devices (fsdp={jax.device_count()}); step time at {_TIME_BATCH.value} x '
        f'{_TIME_SEQ.value} on one {jax.devices()[0].device_kind}\n')
  print('| remat | peak GiB/device | temporaries GiB | arguments GiB | step time s | vs none |')
  print('|---|---|---|---|---|---|')
  for row in rows:
    step_s = row.get('step_s')
    ratio = f'{step_s / rows[0]["step_s"]:.2f}x' if step_s and rows[0].get('step_s') else ''
    print(f'| {row["remat"]} | {row["peak"]:.2f} | {row["temp"]:.2f} | {row["state"]:.2f} | '
          f'{step_s:.2f} | {ratio} |' if step_s else
          f'| {row["remat"]} | {row["peak"]:.2f} | {row["temp"]:.2f} | {row["state"]:.2f} | | |')


if __name__ == '__main__':
  app.run(main)

"""Command line: `python -m electra_jax.main --config=configs/tiny.py --workdir=DIR`.

Kept short on purpose: flags, multi-host start-up, then `train.train_and_evaluate`. Any config
field can be overridden, e.g. `--config.train.num_steps=1000 --config.mesh.fsdp=4`.
"""

import logging as std_logging
import os

from absl import app
from absl import flags
from absl import logging
from ml_collections import config_flags

_CONFIG = config_flags.DEFINE_config_file('config', None, 'Config file, e.g. configs/tiny.py.',
                                          lock_config=True)
_WORKDIR = flags.DEFINE_string('workdir', None, 'Run directory (local or gs://): checkpoints, '
                               'metrics.jsonl, TensorBoard events. Rerun with it to resume.')
_COORDINATOR = flags.DEFINE_string(
    'coordinator_address', os.environ.get('ELECTRA_JAX_COORDINATOR_ADDRESS', ''),
    'host:port of process 0, for multi-process runs off TPU (env ELECTRA_JAX_COORDINATOR_ADDRESS).')
_NUM_PROCESSES = flags.DEFINE_integer(
    'num_processes', int(os.environ.get('ELECTRA_JAX_NUM_PROCESSES', '1')),
    'Number of processes in a multi-process run off TPU (env ELECTRA_JAX_NUM_PROCESSES).')
_PROCESS_ID = flags.DEFINE_integer(
    'process_id', int(os.environ.get('ELECTRA_JAX_PROCESS_ID', '0')),
    'This process\'s index in a multi-process run off TPU (env ELECTRA_JAX_PROCESS_ID).')
flags.mark_flags_as_required(['config', 'workdir'])


def _on_cloud_tpu_vm() -> bool:
  """TPU VMs expose their chips as /dev/accel* (v2-v4) or /dev/vfio/* (v5e and later)."""
  if os.environ.get('TPU_WORKER_HOSTNAMES') or os.environ.get('TPU_ACCELERATOR_TYPE'):
    return True
  return any(os.path.exists(p) for p in ('/dev/accel0', '/dev/vfio/0'))


def _start_distributed():
  """Joins the processes of a multi-host run before jax touches any device."""
  import jax  # noqa: PLC0415 - imported after flags so that env/XLA settings apply
  if _COORDINATOR.value:
    # Cross-process collectives on CPU devices need gloo; accelerators ignore this setting.
    jax.config.update('jax_cpu_collectives_implementation', 'gloo')
    jax.distributed.initialize(_COORDINATOR.value, _NUM_PROCESSES.value, _PROCESS_ID.value)
  elif _on_cloud_tpu_vm():
    # Every worker of a pod runs this same command; jax finds its peers from the TPU metadata.
    # On a single-host TPU VM this is a one-process "cluster", which is harmless.
    jax.distributed.initialize()
  logging.info('Process %d of %d, %d local / %d global devices.', jax.process_index(),
               jax.process_count(), jax.local_device_count(), jax.device_count())


class _QuietCheckpointLibrary(std_logging.Filter):
  """orbax narrates every save at INFO; keep its warnings, drop the chatter from the progress log."""

  def filter(self, record: std_logging.LogRecord) -> bool:
    return record.levelno >= std_logging.WARNING or '/orbax/' not in record.pathname


def main(argv):
  if len(argv) > 1:
    raise app.UsageError(f'Unexpected arguments: {argv[1:]}')
  logging.get_absl_handler().addFilter(_QuietCheckpointLibrary())
  _start_distributed()
  from electra_jax import train  # noqa: PLC0415
  train.train_and_evaluate(_CONFIG.value, _WORKDIR.value)


def run():
  """Console-script entry point (`electra-jax-pretrain`)."""
  app.run(main)


if __name__ == '__main__':
  run()

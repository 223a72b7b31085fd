"""Process start-up shared by the command lines (pre-training, fine-tuning): logging, hosts."""

import logging as std_logging
import os

from absl import logging

ENV_COORDINATOR = 'ELECTRA_JAX_COORDINATOR_ADDRESS'
ENV_NUM_PROCESSES = 'ELECTRA_JAX_NUM_PROCESSES'
ENV_PROCESS_ID = 'ELECTRA_JAX_PROCESS_ID'


class QuietCheckpointLibrary(std_logging.Filter):
  """orbax and TF's checkpointing narrate every save at INFO; keep their warnings only."""

  _CHATTY = ('/orbax/', '/tensorflow/python/checkpoint/')

  def filter(self, record: std_logging.LogRecord) -> bool:
    return (record.levelno >= std_logging.WARNING
            or not any(part in record.pathname for part in self._CHATTY))


def quiet_checkpoint_logs() -> None:
  logging.get_absl_handler().addFilter(QuietCheckpointLibrary())


def on_cloud_tpu_vm() -> bool:
  """TPU VMs expose their chips as /dev/accel* (v2-v4) or /dev/vfio/* (v5e and later)."""
  if os.environ.get('TPU_WORKER_HOSTNAMES') or os.environ.get('TPU_ACCELERATOR_TYPE'):
    return True
  return any(os.path.exists(p) for p in ('/dev/accel0', '/dev/vfio/0'))


def keep_tensorflow_off_accelerators() -> None:
  """tf.data runs on the host; a TensorFlow that finds the CUDA libraries jax[cuda] installed
  would otherwise reserve most of every GPU's memory before jax allocates anything."""
  import tensorflow as tf  # noqa: PLC0415
  try:
    tf.config.set_visible_devices([], 'GPU')
  except RuntimeError:  # TensorFlow already initialised its devices: too late, nothing to do
    pass


def start_distributed(coordinator_address: str = '', num_processes: int = 0,
                      process_id: int = -1) -> None:
  """Joins the processes of a multi-host run before jax touches any device.

  Off TPU, a coordinator address (argument or $ELECTRA_JAX_COORDINATOR_ADDRESS, with
  $ELECTRA_JAX_NUM_PROCESSES and $ELECTRA_JAX_PROCESS_ID) turns it on. On a Cloud TPU VM every
  worker of a pod runs the same command and jax finds its peers from the TPU metadata; on a
  single-host TPU VM that is a one-process "cluster", which is harmless.
  """
  keep_tensorflow_off_accelerators()
  import jax  # noqa: PLC0415 - imported late so that env/XLA settings made before apply
  coordinator_address = coordinator_address or os.environ.get(ENV_COORDINATOR, '')
  if coordinator_address:
    num_processes = num_processes or int(os.environ.get(ENV_NUM_PROCESSES, '1'))
    process_id = process_id if process_id >= 0 else int(os.environ.get(ENV_PROCESS_ID, '0'))
    # Cross-process collectives on CPU devices need gloo; accelerators ignore this setting.
    jax.config.update('jax_cpu_collectives_implementation', 'gloo')
    jax.distributed.initialize(coordinator_address, num_processes, process_id)
  elif on_cloud_tpu_vm():
    jax.distributed.initialize()
  logging.info('Process %d of %d, %d local / %d global devices.', jax.process_index(),
               jax.process_count(), jax.local_device_count(), jax.device_count())


def load_config_file(path, argument: str = ''):
  """`get_config([argument])` of a config file, as `--config=path[:argument]` would load it.

  For scripts and tests that take a config without going through absl flags.
  """
  import importlib.util  # noqa: PLC0415
  spec = importlib.util.spec_from_file_location(f'electra_jax_config_{abs(hash(str(path)))}',
                                                str(path))
  module = importlib.util.module_from_spec(spec)
  spec.loader.exec_module(module)
  return module.get_config(argument) if argument else module.get_config()

"""Process start-up shared by the command lines (pre-training, fine-tuning): logging, hosts."""

import logging as std_logging
import os
import sys

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


def start_distributed(coordinator_address: str = '', num_processes: int = 0,
                      process_id: int = -1) -> None:
  """Joins the processes of a multi-host run before jax touches any device.

  Off TPU, a coordinator address (argument or $ELECTRA_JAX_COORDINATOR_ADDRESS, with
  $ELECTRA_JAX_NUM_PROCESSES and $ELECTRA_JAX_PROCESS_ID) turns it on. On a Cloud TPU VM every
  worker of a pod runs the same command and jax finds its peers from the TPU metadata; on a
  single-host TPU VM that is a one-process "cluster", which is harmless.
  """
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


# ---- User errors --------------------------------------------------------------------------------
# Used by `electra_jax.inspect` and `electra_jax.plot`. Interim home: when the project-wide
# `electra_jax.errors.UserError` lands, `UserError` here becomes an import of it.

USER_ERROR_EXIT_STATUS = 2


class UserError(Exception):
  """A problem the user can fix (a flag, path or file): one `error: ...` line, no traceback."""


def exit_with_user_error(error: Exception):
  """Prints `error: <message>` on stderr and exits with status 2."""
  print(f'error: {error}', file=sys.stderr)
  sys.exit(USER_ERROR_EXIT_STATUS)


def parse_flags_or_exit(argv):
  """absl flag parsing for `app.run(main, flags_parser=...)`: a bad flag is a user error too.

  absl's own parser prints a multi-line usage dump and exits with status 1.
  """
  from absl import flags  # noqa: PLC0415
  try:
    return flags.FLAGS(argv)
  except flags.Error as error:
    exit_with_user_error(error)

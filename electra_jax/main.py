"""Command line: `python -m electra_jax.main --config=configs/tiny.py --workdir=DIR`.

Kept short on purpose: flags, multi-host start-up, then `train.train_and_evaluate`. Any config
field can be overridden, e.g. `--config.train.num_steps=1000 --config.mesh.fsdp=4`.
"""

from absl import app
from absl import flags
from ml_collections import config_flags

from electra_jax import cli

_CONFIG = config_flags.DEFINE_config_file('config', None, 'Config file, e.g. configs/tiny.py.',
                                          lock_config=True)
_WORKDIR = flags.DEFINE_string('workdir', None, 'Run directory (local or gs://): checkpoints, '
                               'metrics.jsonl, TensorBoard events. Rerun with it to resume.')
_COORDINATOR = flags.DEFINE_string(
    'coordinator_address', '', 'host:port of process 0, for multi-process runs off TPU '
    f'(or ${cli.ENV_COORDINATOR}). TPU pods need nothing: every worker runs the same command.')
_NUM_PROCESSES = flags.DEFINE_integer(
    'num_processes', 0, f'Processes in a multi-process run off TPU (or ${cli.ENV_NUM_PROCESSES}).')
_PROCESS_ID = flags.DEFINE_integer(
    'process_id', -1, f'This process\'s index in a multi-process run off TPU '
    f'(or ${cli.ENV_PROCESS_ID}).')
flags.mark_flags_as_required(['config', 'workdir'])


def main(argv):
  if len(argv) > 1:
    raise app.UsageError(f'Unexpected arguments: {argv[1:]}')
  cli.quiet_checkpoint_logs()
  cli.start_distributed(_COORDINATOR.value, _NUM_PROCESSES.value, _PROCESS_ID.value)
  from electra_jax import train  # noqa: PLC0415 - after the distributed runtime is up
  train.train_and_evaluate(_CONFIG.value, _WORKDIR.value)


def run():
  """Console-script entry point (`electra-jax-pretrain`)."""
  app.run(main)


if __name__ == '__main__':
  run()

"""Command line: `python -m electra_jax.main --config=configs/tiny.py --workdir=DIR`.

Installed (`electra-jax-pretrain`), name a packaged config instead of a path: `--config=tiny`
(or small, base, large). Kept short on purpose: flags, the workdir check, multi-host start-up,
then `train.train_and_evaluate`. Any config field can be overridden, e.g.
`--config.train.num_steps=1000 --config.mesh.fsdp=4`. A mistake the user can fix is reported as
one `error: ...` line with exit status 2 (see `startup.run`).
"""

from absl import flags
from ml_collections import config_flags

from electra_jax import startup

_CONFIG = config_flags.DEFINE_config_file(
    'config', None, 'Config file (configs/tiny.py) or packaged config name (tiny, small, base, '
    'large).', lock_config=True)
_WORKDIR = flags.DEFINE_string('workdir', None, 'Run directory (local or gs://): checkpoints, '
                               'metrics.jsonl, TensorBoard events. Rerun with it to resume.')
_COORDINATOR = flags.DEFINE_string(
    'coordinator_address', '', 'host:port of process 0, for multi-process runs off TPU '
    f'(or ${startup.ENV_COORDINATOR}). TPU pods need nothing: every worker runs the same command.')
_NUM_PROCESSES = flags.DEFINE_integer(
    'num_processes', 0, 'Processes in a multi-process run off TPU '
    f'(or ${startup.ENV_NUM_PROCESSES}).')
_PROCESS_ID = flags.DEFINE_integer(
    'process_id', -1, f'This process\'s index in a multi-process run off TPU '
    f'(or ${startup.ENV_PROCESS_ID}).')
flags.mark_flags_as_required(['config', 'workdir'])


def main(argv):
  startup.no_arguments(argv)
  startup.check_output_dir(_WORKDIR.value, 'workdir')  # every process, before the hosts meet
  startup.quiet_checkpoint_logs()
  from electra_jax.parallel import mesh as mesh_lib  # noqa: PLC0415
  mesh_lib.split_cpu_host(_CONFIG.value, _COORDINATOR.value)  # before jax starts its backends
  startup.start_distributed(_COORDINATOR.value, _NUM_PROCESSES.value, _PROCESS_ID.value)
  from electra_jax.pretraining import train  # noqa: PLC0415 - after the distributed runtime is up
  train.train_and_evaluate(_CONFIG.value, _WORKDIR.value)


def run():
  """Console-script entry point (`electra-jax-pretrain`)."""
  startup.run(main)


if __name__ == '__main__':
  run()

r"""Will it compile, fit and run fast on that TPU? Compiles the real train step for a named TPU
topology on this (CPU-only) host, before any TPU-hour is paid for.

  python -m electra_jax.compile_check --config=base --topology=v3-32
  electra-jax-compile-check --config=small --topology=v3-8 --config.train.batch_size=8192 --suggest
  electra-jax-compile-check --config=large --topology=v5e-256 --num_slices=2

libtpu (the `[tpu]` extra: pip install 'electra-jax[tpu]') describes a topology's devices without
owning them (`jax.experimental.topologies`); the train and eval steps are then lowered and compiled
for them from abstract inputs, through `train.build_program`: the very mesh, logical rules,
shardings, donation, scan/remat, micro-batching and dtypes that training compiles.

Printed: the mesh; per-device HBM (XLA's memory analysis) against the chip's, fits or not;
compiled / analytic FLOPs; collectives by kind with their bytes, those crossing slices apart; the
compile time; a roofline step time, max(FLOPs / peak, bytes accessed / HBM bandwidth) per device,
and from it tokens/s, MFU and days for `train.num_steps`; XLA's own estimate where it is positive.

Exit status 0 when the step fits; 2, with one `error:` line, when it does not (`--suggest` then
compiles the cheapest changes that should fit and names the first that does) or for bad input.
The roofline is a bound, not a measurement: `train.profile_steps` and the progress line's MFU
give the real figures on the chips.

This module is the CLI: topologies are named in `parallel.topologies`, the compile and its
analysis live in `pretraining.tpu_compile`.
"""

from __future__ import annotations

import os
from typing import Sequence

import jax
from absl import flags
from ml_collections import config_flags

from electra_jax import startup
from electra_jax.pretraining import tpu_compile

FLAGS = flags.FLAGS
config_flags.DEFINE_config_file('config', None, 'Pre-training config (file or packaged name).',
                                lock_config=True)
flags.DEFINE_string('topology', None, 'TPU accelerator type as gcloud names it (v3-8, v3-32, '
                    'v4-8, v5litepod-8 or v5e-8, v5p-8, v6e-8, ...) or a libtpu topology '
                    '(v4:2x2x1).')
flags.DEFINE_integer('num_slices', 1, 'Slices of that topology joined over the data-center '
                     'network (multi-slice); the mesh puts data parallelism across them.')
flags.DEFINE_boolean('suggest', False, 'When the step does not fit, compile the cheapest changes '
                     '(mesh.fsdp, train.grad_accum_steps, model.remat) and print the first that '
                     'fits.')
flags.DEFINE_boolean('eval', True, 'Also compile the eval step (its memory counts for the fit).')
flags.mark_flags_as_required(['config', 'topology'])


def main(argv: Sequence[str]) -> None:
  startup.no_arguments(argv)
  # The TPU's devices are only described, never used: jax itself runs on the CPU, also on a TPU
  # VM whose chips may be busy training.
  jax.config.update('jax_platforms', 'cpu')
  config_name = os.path.basename(
      config_flags.get_config_filename(FLAGS['config'])).removesuffix('.py')
  tpu_compile.check(FLAGS.config, config_name, FLAGS.topology, FLAGS.num_slices, FLAGS.suggest,
                    FLAGS.eval)


def run() -> None:
  startup.run(main)


if __name__ == '__main__':
  run()

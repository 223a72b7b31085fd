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

Every variant's step is compiled in this process (Small's state each: memory permitting), then
single steps alternate over the rounds (order reversed every other round), so a shared machine's
changing load hits all alike. Prints each variant's median and minimum, and the median of the
per-round speed-ups against the first variant. Asserts nothing: compare the rows of one run.
"""

import importlib

from absl import app
from absl import flags
import numpy as np

import step_harness  # benchmarks/step_harness.py

_VARIANTS = flags.DEFINE_string('variants', None, 'Module with VARIANTS = {name: patch}.',
                                required=True)
_CONFIG = flags.DEFINE_string('config', 'configs/small.py', 'Config file or packaged name.')
_ROUNDS = flags.DEFINE_integer('rounds', 14, 'Alternating rounds of one step per variant.')
_BATCH = flags.DEFINE_integer('batch_size', 32, 'Global batch size.')
_SEQ = flags.DEFINE_integer('seq_len', 128, 'Sequence length.')


def main(argv):
  del argv
  from electra_jax import startup  # noqa: PLC0415

  variants = importlib.import_module(_VARIANTS.value).VARIANTS
  config = startup.load_config_file(_CONFIG.value)
  config.train.batch_size = _BATCH.value
  config.data.max_seq_length = _SEQ.value
  config.model.hidden_dropout_prob = config.model.attention_dropout_prob = 0.1  # as bench_train_step
  steps = {}
  for name, patch in variants.items():
    with patch():
      steps[name] = step_harness.build(config)  # traced and compiled under the patch
    steps[name].run(2)  # warm-up
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

"""The paper's objective comparison (section 3.2, Table 5) at equal train FLOPs, on a CPU.

  python benchmarks/compare_objectives.py --workdir=/tmp/compare            # ~20 min, 2 cores
  python benchmarks/compare_objectives.py --workdir=/tmp/compare --electra_steps=4000 \
      --seeds=0,1,2,3,4 --config=small                                      # scale up

For each `electra.objective`, pre-trains the same config (`--config`, default `tiny`) on the
built-in corpus with the same seed and so the same documents in the same order (the masking of
'mlm' differs: BERT's 80/10/10), for the same analytic train FLOPs
(`RunSpec.train_flops_per_token`): ELECTRA gets `--electra_steps`, every other objective as many
steps as that compute buys it.
Then fine-tunes the offline probe (`configs/finetune/probe.py`: which standard-library module is
a docstring section from?) from each run's main network, once per seed, and prints one table:
objective, steps, pre-training PFLOPs, the final eval masked-LM accuracy (the generator's, or
BERT's own; `main_mlm_accuracy` of the replace/all-tokens main network) and disc AUC where a
discriminator exists, the probe's dev accuracy median and spread over seeds, and the
frozen-encoder linear probe's dev accuracy with its train cross-validated accuracy in brackets
(`finetune/linear_probe.py`: same task and examples, deterministic, ~10-30 s per objective;
`--skip_linear_probe` leaves it out), with each objective's linear-probe gap to ELECTRA and its
90% paired-bootstrap interval over the dev examples. How to read it (WORKSPACE.md has the
default run's table): at the default size the linear probe puts ELECTRA above the other four
beyond dev-set noise, but resolves smaller gaps (and 1500 vs 6000 ELECTRA steps) only within
it; the fine-tuned column measures how fast fine-tuning moves, not a ranking.

Prints figures, asserts nothing. Runs are kept in WORKDIR/<objective>, WORKDIR/probe_<objective>
and WORKDIR/linear_probe_<objective>; a finished pre-training run or probe seed is reused on a
rerun with the same flags (the linear probe, ~30 s, runs again).
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time

import numpy as np

from electra_jax.core import objectives as objectives_lib  # the registry: every objective
from electra_jax.spec import run as run_spec

OBJECTIVES = objectives_lib.NAMES


def parse_args(argv=None):
  parser = argparse.ArgumentParser(description=__doc__.split('\n\n')[0])
  parser.add_argument('--workdir', required=True, help='where the runs are kept')
  parser.add_argument('--config', default='tiny', help='pre-training config (name or path)')
  parser.add_argument('--objectives', default=','.join(OBJECTIVES))
  parser.add_argument('--electra_steps', type=int, default=400,
                      help="ELECTRA's pre-training steps; sets the FLOPs budget of every objective")
  parser.add_argument('--batch_size', type=int, default=32)
  parser.add_argument('--max_seq_length', type=int, default=128)
  parser.add_argument('--eval_steps', type=int, default=10, help='eval batches at the end')
  parser.add_argument('--seeds', default='0,1,2', help='probe fine-tuning seeds')
  # The probe's settings default to configs/finetune/probe.py's (measured for the tiny model).
  parser.add_argument('--probe_task', default=None, help="'topic' or 'coherence' (config's)")
  parser.add_argument('--probe_train', type=int, default=None, help='probe train examples cap')
  parser.add_argument('--probe_dev', type=int, default=None, help='probe dev examples cap')
  parser.add_argument('--probe_epochs', type=int, default=None)
  parser.add_argument('--probe_seq_length', type=int, default=None)
  parser.add_argument('--skip_linear_probe', action='store_true',
                      help='leave out the frozen-encoder linear probe column')
  return parser.parse_args(argv)


def pretraining_config(args, objective: str, num_steps: int):
  from electra_jax import startup  # noqa: PLC0415 - after argument parsing (imports jax)
  config = startup.load_config_file(args.config)
  config.electra.objective = objective
  config.train.batch_size = args.batch_size
  config.data.max_seq_length = args.max_seq_length
  config.train.num_steps = num_steps
  config.train.warmup_steps = min(config.train.warmup_steps, max(1, num_steps // 10))
  config.train.log_every = max(1, min(config.train.log_every, num_steps))
  config.train.eval_every = num_steps  # one evaluation, at the end
  config.train.eval_steps = args.eval_steps
  config.train.checkpoint_every = num_steps
  return config


def steps_for_budget(args, objectives):
  """{objective: steps} so that every objective spends ELECTRA's train FLOPs (rounded)."""
  def per_token(name):
    return run_spec.load(pretraining_config(args, name, 1)).train_flops_per_token()
  electra = per_token('electra')
  return {name: max(1, round(args.electra_steps * electra / per_token(name)))
          for name in objectives}


def pretrain(args, objective: str, num_steps: int) -> dict[str, float]:
  from electra_jax.pretraining import train  # noqa: PLC0415
  workdir = os.path.join(args.workdir, objective)
  train.train_and_evaluate(pretraining_config(args, objective, num_steps), workdir)
  with open(os.path.join(workdir, 'metrics.jsonl')) as f:
    records = [json.loads(line) for line in f]
  merged = {}
  for record in records:
    merged.update(record)  # the last value of every metric
  return merged


def probe_config(args, objective: str):
  """configs/finetune/probe.py from the objective's run (the loader picks its main network:
  the discriminator, or the masked LM of 'mlm' / 'replace_mlm' / 'all_tokens_mlm')."""
  from electra_jax.configs.finetune import probe as probe_lib  # noqa: PLC0415
  config = probe_lib.get_config()
  config.init_from = os.path.join(args.workdir, objective)
  config.seeds = tuple(int(s) for s in args.seeds.split(','))
  for value, section, field in ((args.probe_task, config.probe, 'task'),
                                (args.probe_train, config.probe, 'max_train_examples'),
                                (args.probe_dev, config.probe, 'max_dev_examples'),
                                (args.probe_epochs, config.train, 'num_epochs'),
                                (args.probe_seq_length, config.data, 'max_seq_length')):
    if value is not None:  # None: the probe config's own setting
      section[field] = value
  return config


def probe(args, objective: str) -> list[float]:
  from electra_jax.finetune import glue  # noqa: PLC0415
  result = glue.run(probe_config(args, objective), os.path.join(args.workdir, f'probe_{objective}'))
  return [seed['metrics']['accuracy'] for seed in result['seeds']]


def linear_probe(args, objective: str) -> dict:
  """The linear probe's result (`linear_probe.run`: 'accuracy', 'cv_accuracy_at_l2', ...)."""
  from electra_jax.finetune import linear_probe as linear_probe_lib  # noqa: PLC0415
  return linear_probe_lib.run(probe_config(args, objective),
                              os.path.join(args.workdir, f'linear_probe_{objective}'))


def format_table(rows) -> str:
  from electra_jax.finetune import linear_probe as linear_probe_lib  # noqa: PLC0415
  header = (f"{'objective':<16}{'steps':>7}{'PFLOPs':>9}{'eval mlm acc':>14}{'main mlm acc':>14}"
            f"{'disc AUC':>10}{'probe acc (median ± half range, seeds)':>42}"
            f"{'linear probe acc dev (train CV)':>33}{'linear - electra [90% bootstrap]':>34}")
  lines = [header, '-' * len(header)]
  fmt = lambda value: '-' if value is None else f'{value:.3f}'
  electra = next((row['linear_probe'] for row in rows if row['objective'] == 'electra'), None)
  for row in rows:
    accuracies = row['probe']
    probe_cell = (f"{np.median(accuracies):.3f} ± {(max(accuracies) - min(accuracies)) / 2:.3f}"
                  f" (n={len(accuracies)})")
    linear = row['linear_probe']
    linear_cell = ('-' if linear is None
                   else f"{linear['accuracy']:.3f} ({linear['cv_accuracy_at_l2']:.3f})")
    gap_cell = '-'  # this objective's linear-probe accuracy minus ELECTRA's, paired interval
    if linear is not None and electra is not None and row['objective'] != 'electra':
      gap = linear_probe_lib.paired_bootstrap(linear['dev_correct'], electra['dev_correct'])
      gap_cell = '{:+.3f} [{:+.3f}, {:+.3f}]'.format(*gap)
    lines.append(f"{row['objective']:<16}{row['steps']:>7}{row['pflops']:>9.3g}"
                 f"{fmt(row['mlm_acc']):>14}{fmt(row['main_mlm_acc']):>14}"
                 f"{fmt(row['disc_auc']):>10}{probe_cell:>42}{linear_cell:>33}{gap_cell:>34}")
  return '\n'.join(lines)


def main(argv=None):
  args = parse_args(argv)
  objectives = [o for o in args.objectives.split(',') if o]
  unknown = sorted(set(objectives) - set(OBJECTIVES))
  if unknown:
    sys.exit(f'error: --objectives: unknown {unknown}; use some of {",".join(OBJECTIVES)}')
  os.makedirs(args.workdir, exist_ok=True)
  budget = steps_for_budget(args, objectives)
  rows = []
  for objective in objectives:
    start = time.time()
    metrics = pretrain(args, objective, budget[objective])
    pretrain_s = time.time() - start
    accuracies = probe(args, objective)
    probe_s = time.time() - start - pretrain_s
    linear = None if args.skip_linear_probe else linear_probe(args, objective)
    linear_s = time.time() - start - pretrain_s - probe_s
    print(f'{objective}: pre-training {pretrain_s:.0f} s, probe {probe_s:.0f} s, linear probe '
          f'{linear_s:.0f} s, probe accuracies {accuracies}, linear probe accuracy '
          f'{None if linear is None else linear["accuracy"]}',
          flush=True)
    rows.append({'objective': objective, 'steps': budget[objective],
                 'pflops': metrics.get('pflops', float('nan')),
                 'mlm_acc': metrics.get('eval_masked_lm_accuracy'),
                 'main_mlm_acc': metrics.get('eval_main_mlm_accuracy'),
                 'disc_auc': metrics.get('eval_disc_auc'), 'probe': accuracies,
                 'linear_probe': linear})
  table = format_table(rows)
  print(table)
  with open(os.path.join(args.workdir, 'table.txt'), 'w') as f:
    f.write(' '.join(sys.argv) + '\n\n' + table + '\n')


if __name__ == '__main__':
  main()

"""Command line: fine-tune and evaluate a pre-trained ELECTRA on GLUE or SQuAD.

  python -m electra_jax.finetune --config=configs/finetune/glue.py:mrpc --workdir=DIR \
      --config.init_from=PRETRAINING_WORKDIR --config.seeds=0,1,2
  python -m electra_jax.finetune --config=configs/finetune/squad.py:v2.0 --workdir=DIR \
      --config.init_from=HF_DIRECTORY

Installed (`electra-jax-finetune`), name the packaged configs instead: `--config=glue:mrpc`,
`--config=squad:v2.0` (or `finetune/glue:mrpc`). A mistake the user can fix is reported as one
`error: ...` line with exit status 2 (see `startup.run`).

Writes `DIR/<task>/seed_<n>/` (the reported epoch's checkpoint, metrics.jsonl, TensorBoard,
predictions or GLUE submissions), `DIR/<task>/results.json` (every seed, the median and spread
of each metric, the protocol switches set away from the original's) and `DIR/results.json`:
every task fine-tuned in DIR so far, with the GLUE average (the paper's convention and GLUE's)
once all eight averaged tasks are there. The table is also printed.
"""

from __future__ import annotations

import json
import os
from typing import Any

import ml_collections
import numpy as np
import tensorflow as tf
from absl import flags
from absl import logging

from electra_jax import files
from electra_jax import startup
from electra_jax.errors import UserError
from electra_jax.finetune import glue_data
from electra_jax.finetune import metrics as metrics_lib

RESULTS_FILE = 'results.json'


# ---- Results ---------------------------------------------------------------------------------

def summarize_task(task_result: dict[str, Any]) -> dict[str, Any]:
  """Adds 'summary': {metric: {median, mean, std, min, max, num_seeds}} over the seeds."""
  summary = metrics_lib.summarize_seed_results([run['metrics'] for run in task_result['seeds']])
  return {**task_result, 'summary': summary}


def collect_workdir(workdir: str) -> dict[str, Any]:
  """Every `<task>/results.json` in `workdir`, with the GLUE average of the medians.

  Returns:
    {'tasks': {task: {'display_name', 'kind', 'num_seeds', 'primary_metrics',
    'non_default_switches', 'median': {..}, 'std': {..}, 'min': {..}, 'max': {..}}},
    'glue_average': {'electra', 'glue', 'task_scores'} or None, 'glue_missing': tasks still to
    run for the average}.
  """
  tasks = {}
  for name in sorted(tf.io.gfile.listdir(workdir)):
    path = f'{workdir.rstrip("/")}/{name.rstrip("/")}/{RESULTS_FILE}'
    if not tf.io.gfile.exists(path):
      continue
    with tf.io.gfile.GFile(path) as f:
      result = json.load(f)
    summary = result['summary']
    tasks[result['task']] = {
        'display_name': result['display_name'], 'kind': result['kind'],
        'num_seeds': len(result['seeds']), 'primary_metrics': result['primary_metrics'],
        'non_default_switches': result.get('non_default_switches', {}),
        **{stat: {metric: values[stat] for metric, values in summary.items()}
           for stat in ('median', 'std', 'min', 'max')}}
  glue_medians = {name: entry['median'] for name, entry in tasks.items()
                  if entry['kind'] == 'glue'}
  missing = [name for name in metrics_lib.AVERAGED_TASKS if name not in glue_medians]
  average = None
  if not missing:
    electra, task_scores = metrics_lib.glue_average(glue_medians, 'electra')
    average = {'electra': electra, 'glue': metrics_lib.glue_average(glue_medians, 'glue')[0],
               'task_scores': task_scores}
  return {'tasks': tasks, 'glue_average': average, 'glue_missing': missing}


def format_table(overview: dict[str, Any]) -> str:
  """The results as text: one line per task and metric (GLUE in percent), then the average."""
  lines = [f'{"task":<14}{"seeds":>6}  {"metric":<24}{"median":>9}{"std":>8}{"min":>9}{"max":>9}']
  for name, entry in overview['tasks'].items():
    scale = 100.0 if entry['kind'] == 'glue' else 1.0
    metrics = [m for m in entry['median'] if m in entry['primary_metrics']
               or m.split('/')[-1] in entry['primary_metrics']]
    for index, metric in enumerate(metrics):
      label = entry['display_name'] if index == 0 else ''
      seeds = str(entry['num_seeds']) if index == 0 else ''
      lines.append(f'{label:<14}{seeds:>6}  {metric:<24}' + ''.join(
          f'{scale * entry[stat][metric]:>{width}.2f}'
          for stat, width in (('median', 9), ('std', 8), ('min', 9), ('max', 9))))
  changed = {name: entry['non_default_switches'] for name, entry in overview['tasks'].items()
             if entry.get('non_default_switches')}
  for name, switches in changed.items():
    lines.append(f'{name}: not the original protocol: '
                 + ', '.join(f'{k}={v}' for k, v in sorted(switches.items())))
  average = overview['glue_average']
  if average is not None:
    lines.append(f'GLUE average of medians: {100 * average["electra"]:.2f} (ELECTRA paper: '
                 f'MCC, Spearman, accuracy; MNLI-m), {100 * average["glue"]:.2f} (GLUE scoring).')
  elif any(e['kind'] == 'glue' for e in overview['tasks'].values()):
    lines.append('GLUE average: still to run ' + ', '.join(overview['glue_missing']) + '.')
  return '\n'.join(lines)


def report(workdir: str, task_result: dict[str, Any]) -> dict[str, Any]:
  """Writes the task's and the workdir's results JSON; prints and returns the overview."""
  task_result = summarize_task(task_result)
  task_dir = f'{workdir.rstrip("/")}/{task_result["task"]}'
  tf.io.gfile.makedirs(task_dir)
  files.write_json(f'{task_dir}/{RESULTS_FILE}', task_result)
  overview = collect_workdir(workdir)
  files.write_json(f'{workdir.rstrip("/")}/{RESULTS_FILE}', overview)
  print(format_table(overview), flush=True)
  return overview


# ---- Entry point -----------------------------------------------------------------------------

def finetune_and_report(config: ml_collections.ConfigDict, workdir: str) -> dict[str, Any]:
  """Runs the task `config.task` names (every seed), then `report`s. Returns the task result."""
  import jax  # noqa: PLC0415 - after flags, so XLA/env settings apply
  from electra_jax.finetune import glue  # noqa: PLC0415
  from electra_jax.finetune import squad  # noqa: PLC0415
  drivers = {'glue': glue.run, 'squad': squad.run, 'probe': glue.run}  # probe: GLUE-like
  kind = config.task.kind if 'task' in config else None
  if kind not in drivers:
    raise UserError(f'config.task.kind={kind!r}: not a fine-tuning config; use '
                    '--config=glue:<task> or --config=squad:<version> '
                    '(configs/finetune/glue.py:<task>, configs/finetune/squad.py:<version>).')
  if kind == 'glue':
    glue_data.get_task(config.task.name)  # an unknown task fails before anything loads
  config = ml_collections.ConfigDict(config.to_dict())  # a private, mutable copy
  tf.io.gfile.makedirs(workdir)
  task_result = drivers[config.task.kind](config, workdir)
  if jax.process_index() == 0:
    report(workdir, task_result)
  return summarize_task(task_result)


def _enable_compilation_cache() -> None:
  """Every seed (and every rerun) compiles the same steps: keep them in XLA's persistent cache.

  Respects a cache directory already chosen through JAX_COMPILATION_CACHE_DIR.
  """
  import jax  # noqa: PLC0415
  if not jax.config.jax_compilation_cache_dir:
    from electra_jax.data import tokenizers  # noqa: PLC0415 - for the cache root
    jax.config.update('jax_compilation_cache_dir',
                      os.path.join(tokenizers.default_cache_dir(), 'xla_compilation_cache'))


def main(argv):
  startup.no_arguments(argv)
  startup.check_output_dir(flags.FLAGS.workdir, 'workdir')  # every process, before the hosts meet
  startup.quiet_checkpoint_logs()
  startup.start_distributed()  # TPU pods automatically; elsewhere $ELECTRA_JAX_COORDINATOR_ADDRESS
  _enable_compilation_cache()
  result = finetune_and_report(flags.FLAGS.config, flags.FLAGS.workdir)
  medians = {k: float(np.round(v['median'], 4)) for k, v in result['summary'].items()}
  logging.info('%s: medians %s', result['task'], medians)


def run():
  """Console-script entry point (`electra-jax-finetune`); flags are defined only here, so that
  importing this module next to `electra_jax.main` defines no duplicate flags."""
  from ml_collections import config_flags  # noqa: PLC0415
  config_flags.DEFINE_config_file(
      'config', None, 'configs/finetune/glue.py:<task> or configs/finetune/squad.py:<v1.1|v2.0>, '
      'or by name: glue:<task>, squad:<v1.1|v2.0>.', lock_config=True)
  flags.DEFINE_string('workdir', None, 'Experiment directory (local or gs://): one subdirectory '
                      'per task; results.json collects every task run there.')
  flags.mark_flags_as_required(['config', 'workdir'])
  startup.run(main, config_subdir='finetune')


if __name__ == '__main__':
  run()

"""What the user sees: the progress line, `metrics.jsonl`, TensorBoard events, MFU.

Everything here runs on the host, outside `jit`, and only process 0 writes files.
"""

from __future__ import annotations

import json
import math
import time
from typing import Mapping

import jax
import numpy as np
import tensorflow as tf
from absl import logging

from electra_jax.parallel import chips

def peak_tflops_per_device(device: jax.Device, override: float = 0.0) -> float | None:
  """The device's dense bf16 peak for MFU (`chips.CHIPS`), or None when unknown (e.g. CPUs)."""
  if override:
    return float(override)
  chip = chips.of_device(device)
  return None if chip is None else chip.peak_flops_per_device / 1e12


def format_duration(seconds: float) -> str:
  if not math.isfinite(seconds):
    return '?'
  seconds = int(seconds)
  hours, rest = divmod(seconds, 3600)
  return f'{hours}h{rest // 60:02d}m' if hours else f'{rest // 60}m{rest % 60:02d}s'


class Throughput:
  """Steps/s, tokens/s, TFLOP/s per device and the input-wait share between two log points.

  `data_wait_fraction` is the share of the window's wall time that the training loop spent
  waiting for the next batch from the host pipeline (the tf.data iterator, whose own prefetch
  runs in the background, plus the transfer to the devices), as reported by `add_data_wait`.
  """

  def __init__(self, *, tokens_per_step: int, flops_per_step: float, num_devices: int,
               peak_tflops: float | None):
    self.tokens_per_step = tokens_per_step
    self.flops_per_step = flops_per_step
    self.num_devices = num_devices
    self.peak_tflops = peak_tflops
    self._last_time = None
    self._last_step = None

  def start(self, step: int):
    self._last_time, self._last_step = time.perf_counter(), step
    self._data_wait = 0.0

  def add_data_wait(self, seconds: float):
    self._data_wait += seconds

  def measure(self, step: int) -> dict[str, float]:
    now = time.perf_counter()
    steps = step - self._last_step
    elapsed = max(now - self._last_time, 1e-9)
    self._last_time, self._last_step = now, step
    data_wait, self._data_wait = self._data_wait, 0.0
    if steps <= 0:
      return {}
    step_time = elapsed / steps
    tflops = self.flops_per_step / step_time / self.num_devices / 1e12
    out = {'steps_per_sec': 1.0 / step_time, 'step_time_s': step_time,
           'tokens_per_sec': self.tokens_per_step / step_time, 'tflops_per_device': tflops,
           'data_wait_fraction': min(data_wait / elapsed, 1.0),
           # Cumulative analytic train FLOPs (RunSpec.train_flops_per_token): equal-compute axis.
           'pflops': step * self.flops_per_step / 1e15}
    if self.peak_tflops:
      out['mfu'] = tflops / self.peak_tflops
    return out


class MetricsWriter:
  """Writes `metrics.jsonl` (one JSON object per record) and TensorBoard events (process 0)."""

  def __init__(self, workdir: str):
    self.enabled = jax.process_index() == 0
    self._workdir = workdir
    self._failed = False  # a write failed and was reported
    if not self.enabled:
      return
    tf.io.gfile.makedirs(workdir)
    self._jsonl = tf.io.gfile.GFile(f'{workdir}/metrics.jsonl', 'a')
    self._tb = tf.summary.create_file_writer(f'{workdir}/tensorboard')

  def write(self, step: int, metrics: Mapping[str, float]):
    """Appends one record. A failed write (disk full, permission) is reported once, as a
    warning, and training goes on: the checkpoints are what a run needs, and a failed checkpoint
    write stops it (`checkpoint.CheckpointWriteError`). Later records are tried again."""
    if not self.enabled:
      return
    record = {'step': int(step)}
    record.update({k: _to_python(v) for k, v in metrics.items()})
    try:
      self._jsonl.write(json.dumps(record) + '\n')
      self._jsonl.flush()
      with self._tb.as_default(step=int(step)):
        for name, value in record.items():
          if name != 'step' and isinstance(value, (int, float)):
            tf.summary.scalar(name, value)
      self._tb.flush()
    except (OSError, tf.errors.OpError) as error:
      self._report_failure(step, error)

  def _report_failure(self, step: int, error: Exception):
    logging.debug('Metrics write at step %d failed.', step, exc_info=error)
    if self._failed:
      return
    self._failed = True
    cause = getattr(error, 'strerror', None) or str(error).strip().splitlines()[0]
    logging.warning('Metrics of step %d could not be written to %s (metrics.jsonl, tensorboard/): '
                    '%s. Training goes on; later records are tried again, and this is reported '
                    'once.', step, self._workdir, cause)

  def close(self):
    if self.enabled:
      try:
        self._jsonl.close()
        self._tb.close()
      except (OSError, tf.errors.OpError) as error:
        self._report_failure(-1, error)


def _to_python(value):
  value = np.asarray(value)
  return value.item() if value.size == 1 else value.tolist()


def progress_line(step: int, num_steps: int, metrics: Mapping[str, float]) -> str:
  """`step 1200/10000 | loss 12.345 | mlm_acc 0.312 | disc_auc 0.871 | 3.1 steps/s | ...`

  `nonfinite N skipped` appears when N steps of the window had a non-finite loss or gradients
  (their updates were not applied; `train.max_consecutive_nonfinite`).
  """
  parts = [f'step {step}/{num_steps}']
  for key, label, fmt in (
      ('loss', 'loss', '.4f'), ('masked_lm_accuracy', 'mlm_acc', '.3f'),
      ('disc_loss', 'disc_loss', '.4f'), ('disc_auc', 'disc_auc', '.3f'),
      ('learning_rate', 'lr', '.2e'), ('grad_norm', 'gnorm', '.2f'),
      ('steps_per_sec', 'steps/s', '.2f'), ('tokens_per_sec', 'tok/s', ',.0f'),
      ('tflops_per_device', 'TFLOP/s/dev', '.2f'), ('mfu', 'MFU', '.1%'),
      ('data_wait_fraction', 'data_wait', '.1%'), ('pflops', 'PFLOPs', '.4g')):
    if key in metrics:
      parts.append(f'{label} {format(float(metrics[key]), fmt)}')
  if metrics.get('nonfinite_steps'):  # shown only when some step of the window was skipped
    parts.append(f'nonfinite {int(metrics["nonfinite_steps"])} skipped')
  if metrics.get('steps_per_sec'):
    parts.append(f'ETA {format_duration((num_steps - step) / metrics["steps_per_sec"])}')
  return ' | '.join(parts)


def eval_line(step: int, metrics: Mapping[str, float]) -> str:
  """`eval at step 1000: disc_auc 0.812 (token-only 0.561, context gain +0.251) | ...`.

  The AUC and its context-free baseline come first; every other eval metric follows, sorted.
  """
  parts = []
  if 'eval_disc_auc' in metrics:
    head = f'disc_auc {metrics["eval_disc_auc"]:.3f}'
    if 'eval_disc_auc_token_only' in metrics:
      head += (f' (token-only {metrics["eval_disc_auc_token_only"]:.3f}, context gain '
               f'{metrics["eval_disc_auc_context_gain"]:+.3f})')
    parts.append(head)
  shown = {'eval_disc_auc', 'eval_disc_auc_token_only', 'eval_disc_auc_context_gain'}
  parts.extend(f'{k[len("eval_"):] if k.startswith("eval_") else k} {v:.4f}'
               for k, v in sorted(metrics.items()) if k not in shown)
  return f'eval at step {step}: ' + ' | '.join(parts)


def memory_per_device(compiled) -> dict[str, float] | None:
  """Bytes per device from XLA's memory analysis of a compiled step; None where unavailable.

  Keys: argument, output, temp, alias and `peak` = argument + output + temp - alias (a donated
  train state is counted once).
  """
  try:
    analysis = compiled.memory_analysis()
  except Exception:  # noqa: BLE001 - purely informational; some backends have none
    return None
  if analysis is None:
    return None
  sizes = {f: float(getattr(analysis, f'{f}_size_in_bytes', 0) or 0)
           for f in ('argument', 'output', 'temp', 'alias')}
  sizes['peak'] = sizes['argument'] + sizes['output'] + sizes['temp'] - sizes['alias']
  return sizes


def log_memory_analysis(compiled) -> None:
  """Logs XLA's per-device memory estimate of a compiled step."""
  sizes = memory_per_device(compiled)
  if sizes is None:
    logging.info('Memory analysis unavailable on this backend.')
    return
  gib = 1024 ** 3
  logging.info('Compiled train step, memory per device: arguments %.3f GiB, outputs %.3f GiB, '
               'temporaries %.3f GiB, aliased %.3f GiB -> about %.3f GiB in use.',
               sizes['argument'] / gib, sizes['output'] / gib, sizes['temp'] / gib,
               sizes['alias'] / gib, sizes['peak'] / gib)

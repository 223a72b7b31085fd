"""One-command check of a fresh accelerator machine: speed, memory, compile times, a real run.

  bash benchmarks/accelerator_check.sh            # from the repository root
  bash benchmarks/accelerator_check.sh --cpu      # tiny shapes (automatic when only CPUs exist)

Prints ONE markdown table:
  - the device kind and count;
  - ELECTRA-Small and -Base train steps in bfloat16 at sequence length 128, and Base at 512, on
    all local devices (data parallel, synthetic batches): tokens/s, TFLOP/s per device, MFU
    against the chip's bf16 peak (`electra_jax.reporting`), XLA's compiled peak memory per device,
    compile time. A batch that would not fit in the device's memory is halved before running.
    On a TPU, beside each measured step: the compile check's roofline estimate for the same
    config on this topology (`electra_jax.pretraining.tpu_compile.estimate`), and measured /
    estimated;
  - a `tiny` pre-training run on the built-in corpus (loss at the first and the last log line),
    then its conversion to Hugging Face (`electra_jax.convert`), loaded back with `transformers`
    when that is installed.
On CPUs the model rows use the `tiny` model with small batches, and the run is shorter, so the
whole check takes a minute or two; tests/benchmarks/test_accelerator_check.py runs it that way.
Budget on one accelerator: compiles dominate; the timed steps are few. Everything is printed
even when one row fails (its `result` column says why).
"""

import json
import os
import pathlib
import subprocess
import sys
import tempfile
import time
import traceback

from absl import app
from absl import flags
import jax

import step_harness  # benchmarks/step_harness.py

_CPU = flags.DEFINE_bool('cpu', False, 'Tiny shapes, as on a machine with only CPUs (automatic '
                         'there).')
_TIMED_STEPS = flags.DEFINE_integer('timed_steps', 0, 'Timed steps per model row; 0 = 20 on '
                                    'accelerators, 3 on CPU.')
_TINY_STEPS = flags.DEFINE_integer('tiny_steps', 0, 'Steps of the tiny run; 0 = 200 on '
                                   'accelerators, 60 on CPU.')
_WORKDIR = flags.DEFINE_string('workdir', '', 'Where the tiny run goes; default a temporary '
                               'directory, removed afterwards.')

_REPO = pathlib.Path(__file__).resolve().parent.parent
# (label, config file, sequence length, batch per device) on an accelerator.
_ROWS = (('ELECTRA-Small bf16', 'small.py', 128, 256),
         ('ELECTRA-Base bf16', 'base.py', 128, 256),
         ('ELECTRA-Base bf16', 'base.py', 512, 32))
_CPU_BATCH_PER_DEVICE = 2
_MEMORY_HEADROOM = 0.9  # halve the batch while the compiled peak exceeds this share of memory


def _config(name: str, seq_len: int, batch_per_device: int, cpu: bool):
  from electra_jax import startup  # noqa: PLC0415
  config = startup.load_config_file(str(_REPO / 'configs' / name))
  config.model.dtype = 'bfloat16'
  config.model.hidden_dropout_prob = config.model.attention_dropout_prob = 0.1
  config.data.max_seq_length = seq_len
  config.model.max_position_embeddings = max(config.model.max_position_embeddings, seq_len)
  config.train.batch_size = batch_per_device * jax.device_count()
  return config


def _device_memory_limit(device) -> float | None:
  try:
    stats = device.memory_stats()
  except Exception:  # noqa: BLE001 - CPUs have none
    return None
  return float(stats['bytes_limit']) if stats and 'bytes_limit' in stats else None


def _model_row(label, name, seq_len, batch_per_device, cpu, timed_steps):
  from electra_jax import reporting  # noqa: PLC0415
  devices = jax.devices()
  limit = _device_memory_limit(devices[0])
  if cpu:
    batch_per_device = _CPU_BATCH_PER_DEVICE
  while True:
    config = _config(name, seq_len, batch_per_device, cpu)
    step = step_harness.build(config)
    memory = reporting.memory_per_device(step.step_fn)
    if limit is None or memory is None or memory['peak'] <= _MEMORY_HEADROOM * limit:
      break
    if batch_per_device == 1:
      raise RuntimeError(f'batch 1 x {seq_len} needs {memory["peak"] / 2**30:.1f} GiB per device')
    del step
    batch_per_device //= 2
  step.run(2)  # warm-up
  step_time = step.run(timed_steps)
  tokens = config.train.batch_size * seq_len
  tflops = step.spec.train_flops_per_token() * tokens / step_time / len(devices) / 1e12
  peak = reporting.peak_tflops_per_device(devices[0])
  return {
      'check': f'{label} train step', 'shape': f'{config.train.batch_size} x {seq_len}',
      'tokens/s': f'{tokens / step_time:,.0f}', 'TFLOP/s/device': f'{tflops:.3g}',
      'MFU': f'{tflops / peak:.1%}' if peak else 'n/a (peak unknown)',
      'peak memory/device': (f'{memory["peak"] / 2**30:.2f} GiB' if memory else 'n/a'),
      'compile': f'{step.compile_s:.0f} s', 'estimate (compile check)':
          _estimate(config, devices, step_time), 'result': 'ok'}


def _estimate(config, devices, step_time: float) -> str:
  """The compile check's roofline estimate of this step on this topology, beside the measured
  step time (TPUs only: the check compiles for a TPU topology)."""
  if devices[0].platform != 'tpu':
    return 'n/a (TPU only)'
  try:
    from electra_jax.parallel import topologies  # noqa: PLC0415 - the compile check's engine
    from electra_jax.pretraining import tpu_compile  # noqa: PLC0415
    estimate_fn = tpu_compile.estimate
  except (ImportError, AttributeError) as error:
    return f'n/a (the compile check\'s estimate is unavailable: {error})'
  topology = topologies.accelerator_type(devices)
  if topology is None:
    return f'n/a (no topology name known for {devices[0].device_kind!r})'
  try:
    estimate = estimate_fn(config, topology)
  except Exception as error:  # noqa: BLE001 - the measured row stands; say why there is no estimate
    traceback.print_exc()
    return f'n/a (estimate for {topology} failed: {error})'
  return (f'{topology}: {estimate["step_seconds"] * 1e3:.1f} ms/step, '
          f'{estimate["tokens_per_second"]:,.0f} tokens/s, MFU {estimate["mfu"]:.1%}; '
          f'measured {step_time * 1e3:.1f} ms = {step_time / estimate["step_seconds"]:.2f}x')


def _run(args: list[str], log: pathlib.Path) -> None:
  """Runs `python -m ...` from the repository root; its output goes to `log`."""
  with open(log, 'w') as out:
    process = subprocess.run([sys.executable, *args], cwd=_REPO, stdout=out,
                             stderr=subprocess.STDOUT, check=False)
  if process.returncode:
    tail = log.read_text().strip().splitlines()[-3:]
    raise RuntimeError(f'{args[1]} exited with {process.returncode}: ' + ' / '.join(tail))


def _tiny_run_rows(workdir: pathlib.Path, num_steps: int) -> list[dict]:
  run = workdir / 'tiny'
  log_every = max(num_steps // 4, 1)
  start = time.perf_counter()
  _run(['-m', 'electra_jax.main', '--config=configs/tiny.py', f'--workdir={run}',
        f'--config.train.num_steps={num_steps}', f'--config.train.warmup_steps={log_every}',
        f'--config.train.log_every={log_every}', '--config.train.eval_every=0',
        f'--config.train.checkpoint_every={num_steps}'], workdir / 'tiny.log')
  seconds = time.perf_counter() - start
  records = [json.loads(line) for line in (run / 'metrics.jsonl').read_text().splitlines()]
  # The generator's masked-LM loss, averaged over each log window: it falls from ln(vocab) within
  # the first steps whatever the recipe (the total loss of one step need not: the tiny recipe's
  # discriminator term first rises as the generator's samples stop being identity-detectable).
  losses = [r['masked_lm_loss'] for r in records if 'masked_lm_loss' in r]
  falling = losses[-1] < losses[0]
  from electra_jax import startup  # noqa: PLC0415
  tiny = startup.load_config_file(str(_REPO / 'configs' / 'tiny.py'))
  rows = [{'check': f'tiny pre-training, {num_steps} steps',
           'shape': f'{tiny.train.batch_size} x {tiny.data.max_seq_length}',
           'tokens/s': f'{records[-1].get("tokens_per_sec", 0):,.0f}',
           'compile': f'{seconds:.0f} s (whole run)',
           'result': f'masked-LM loss {losses[0]:.3f} -> {losses[-1]:.3f}: '
                     + ('falling' if falling else 'NOT falling')}]
  export = workdir / 'hf'
  _run(['-m', 'electra_jax.convert', '--from=workdir', '--to=hf', f'--src={run}',
        f'--dst={export}'], workdir / 'convert.log')
  result = f'wrote {", ".join(sorted(p.name for p in export.iterdir()))}'
  try:
    import torch  # noqa: PLC0415
    import transformers  # noqa: PLC0415
  except ImportError:
    result += '; transformers not installed, not loaded'
  else:
    model = transformers.ElectraForPreTraining.from_pretrained(export / 'discriminator')
    with torch.no_grad():
      logits = model(torch.ones((1, 8), dtype=torch.long)).logits
    result += f'; loads in transformers, logits {tuple(logits.shape)}'
  rows.append({'check': 'conversion to Hugging Face', 'result': result})
  return rows


_COLUMNS = ('check', 'shape', 'tokens/s', 'TFLOP/s/device', 'MFU', 'peak memory/device',
            'compile', 'estimate (compile check)', 'result')


def _default_backend() -> str:
  """jax's backend, asked in a child process: this one must not hold a TPU while children run."""
  probe = subprocess.run([sys.executable, '-c', 'import jax; print(jax.default_backend())'],
                         capture_output=True, text=True, check=False)
  return probe.stdout.strip().splitlines()[-1] if probe.stdout.strip() else 'unknown'


def main(argv):
  del argv
  from electra_jax import startup  # noqa: PLC0415
  startup.keep_tensorflow_off_accelerators()
  started = time.perf_counter()
  if _CPU.value:
    os.environ['JAX_PLATFORMS'] = 'cpu'  # this process and its children
  cpu = _CPU.value or _default_backend() == 'cpu'
  timed_steps = _TIMED_STEPS.value or (3 if cpu else 20)
  tiny_steps = _TINY_STEPS.value or (60 if cpu else 200)
  # The tiny run and the conversion go first, in child processes, before this process takes the
  # devices (a TPU admits one process at a time; a GPU's memory is preallocated by the first).
  with tempfile.TemporaryDirectory() as scratch:
    workdir = pathlib.Path(_WORKDIR.value or scratch)
    workdir.mkdir(parents=True, exist_ok=True)
    try:
      run_rows = _tiny_run_rows(workdir, tiny_steps)
    except Exception as error:  # noqa: BLE001 - report the row, keep checking the rest
      traceback.print_exc()
      run_rows = [{'check': f'tiny pre-training, {tiny_steps} steps + HF conversion',
                   'result': f'FAILED: {error} (logs in {workdir})'}]
  devices = jax.devices()
  rows = [{'check': 'devices', 'result': f'{len(devices)} x {devices[0].device_kind} '
                                          f'({devices[0].platform}, jax {jax.__version__})'}]
  for label, name, seq_len, batch in _ROWS:
    if cpu:
      label, name, seq_len = f'tiny (for {label} at {seq_len})', 'tiny.py', seq_len // 4
    try:
      rows.append(_model_row(label, name, seq_len, batch, cpu, timed_steps))
    except Exception as error:  # noqa: BLE001
      traceback.print_exc()
      rows.append({'check': f'{label} train step', 'shape': f'? x {seq_len}',
                   'result': f'FAILED: {error}'})
  rows.extend(run_rows)
  print(f'\nelectra-jax accelerator check ({"CPU, tiny shapes" if cpu else "accelerator"}), '
        f'{time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime())}, '
        f'{time.perf_counter() - started:.0f} s in all\n')
  print('| ' + ' | '.join(_COLUMNS) + ' |')
  print('|' + '---|' * len(_COLUMNS))
  for row in rows:
    print('| ' + ' | '.join(str(row.get(c, '')) for c in _COLUMNS) + ' |')
  sys.stdout.flush()
  if any(str(r.get('result', '')).startswith('FAILED') or 'NOT falling' in str(r.get('result'))
         for r in rows):
    sys.exit(1)


if __name__ == '__main__':
  os.environ.setdefault('TF_CPP_MIN_LOG_LEVEL', '2')
  app.run(main)

"""Train-step throughput: tokens/s, TFLOP/s and the fraction of this machine's matmul FLOP/s.

  python benchmarks/bench_train_step.py --config=configs/small.py --batch_size=32 --seq_len=128
  python benchmarks/bench_train_step.py ... --peer           # + the transformers/PyTorch step
  python benchmarks/bench_train_step.py ... --profile_dir=/tmp/prof   # + where the time goes
  python benchmarks/bench_train_step.py ... --peer --peer_profile     # + the peer's, op by op

Runs the real jitted train step (synthetic batches, so the input pipeline is not measured; see
bench_data.py for that) on all local devices, after measuring the dense-matmul FLOP/s that the
same devices reach on square float32/bfloat16 matmuls, in the same process. Prints figures;
asserts nothing, because this machine is shared and timings are noisy: compare ratios. On a CPU
the host is split into XLA devices as the trainer splits it (`config.mesh.cpu_devices`, auto: one
per core); `XLA_FLAGS=--xla_force_host_platform_device_count=1` times jax's single device instead.

`--peer` times the same ELECTRA step built from Hugging Face `transformers` in PyTorch, in the
same process after the JAX step: `ElectraForMaskedLM` (generator) + `ElectraForPreTraining`
(discriminator) sharing one embedding module, the generator head applied at the masked positions
only (as electra-jax does, so both do the same FLOPs), Gumbel-max sampling, the RTD loss with
weight 50, global-norm clipping and AdamW.

`--profile_dir` records a `jax.profiler` trace of a few steps and breaks the step down by
component (generator / discriminator forward and backward, sampling, optimizer update) and by
kind of op (dense matmuls, attention softmax, layer norms, GELU, embedding gathers/scatters,
dropout masks), from the per-op (XLA thunk) events in the trace's `perfetto_trace.json.gz`, each
op attributed through the `op_name` metadata of the compiled HLO (JAX's name stack).
"""

import collections
import glob
import gzip
import json
import os
import re
import time

from absl import app
from absl import flags
import jax
import jax.numpy as jnp
import numpy as np

import step_harness  # benchmarks/step_harness.py

_CONFIG = flags.DEFINE_string('config', 'small', 'Config file, or a packaged config name.')
_BATCH = flags.DEFINE_integer('batch_size', 32, 'Global batch size.')
_SEQ = flags.DEFINE_integer('seq_len', 128, 'Sequence length.')
_STEPS = flags.DEFINE_integer('steps', 10, 'Timed steps (after 2 warm-up steps).')
_DTYPE = flags.DEFINE_string('dtype', '', 'Override model.dtype (float32 / bfloat16).')
_SAMPLER = flags.DEFINE_enum('sampler', None, ['gumbel', 'inverse_cdf'],
                              'Override electra.sampler (default: the config\'s, Gumbel-max).')
_MATMUL = flags.DEFINE_integer('matmul_size', 2048, 'Side of the square matmul for the peak.')
_PEER = flags.DEFINE_bool('peer', False, 'Also time the transformers (PyTorch) ELECTRA step.')
_PROFILE_DIR = flags.DEFINE_string('profile_dir', '', 'Trace a few steps here and print the '
                                   'per-component breakdown.')
_PROFILE_STEPS = flags.DEFINE_integer('profile_steps', 3, 'Steps inside the profiler trace.')
_PEER_PROFILE = flags.DEFINE_bool('peer_profile', False, 'With --peer: torch.profiler\'s op-by-op '
                                  'account of the peer step (self CPU ms per step).')


def measured_matmul_tflops(size: int, dtype, repeats: int = 10) -> float:
  """Dense-matmul TFLOP/s of one device: the realistic ceiling for the train step here."""
  a = jnp.ones((size, size), dtype)
  b = jnp.ones((size, size), dtype)
  matmul = jax.jit(lambda x, y: x @ y)
  matmul(a, b).block_until_ready()
  start = time.perf_counter()
  for _ in range(repeats):
    out = matmul(a, b)
  out.block_until_ready()
  return 2 * size ** 3 * repeats / (time.perf_counter() - start) / 1e12


# ---- Profile: per-op times from the trace, attributed via the HLO's op_name metadata ----------

# Checked in order; the first match names the component. JAX's name stack puts the backward pass
# of a `value_and_grad`ed function under transpose(jvp(...)); `steps.train_step` and
# `objective.pretraining_loss` add the named scopes 'optimizer' and 'sampling'.
_COMPONENTS = (
    ('optimizer update', lambda s: re.search(r'(^|[/(])optimizer[)/]', s)),
    ('sampling + corruption', lambda s: re.search(r'(^|[/(])sampling[)/]', s)),
    ('generator bwd', lambda s: 'transpose(jvp(ElectraPretrainer.generator_logits))' in s),
    ('discriminator bwd', lambda s: 'transpose(jvp(ElectraPretrainer.discriminator_logits))' in s),
    ('generator fwd', lambda s: 'ElectraPretrainer.generator_logits' in s),
    ('discriminator fwd', lambda s: 'ElectraPretrainer.discriminator_logits' in s),
    ('losses, metrics, other', lambda s: True),
)
_KINDS = (
    ('dropout masks (RNG)', lambda s, ops: 'Dropout' in s),
    ('embedding gathers/scatters', lambda s, ops: '/embeddings/' in s
     and ({'gather', 'scatter'} & ops or re.search(r'/(gather|scatter[-_a-z]*)$', s))),
    ('layer norms', lambda s, ops: 'LayerNorm' in s),
    ('gelu', lambda s, ops: 'gelu' in s or 'erf' in s),
    ('attention softmax', lambda s, ops: '/attention/' in s and not re.search(
        r'/attention/(query|key|value|output)/', s) and 'dot' not in ops and 'dot_general' not in s),
    ('dense matmuls', lambda s, ops: 'dot' in ops or 'dot_general' in s or 'einsum' in s
     or 'convolution' in ops),
    ('optimizer / other elementwise', lambda s, ops: True),
)


def hlo_op_metadata(hlo_text: str) -> dict[str, tuple[str, set[str]]]:
  """Instruction name -> (op_name metadata, HLO opcodes inside it) for a compiled module's text.

  A fusion's own metadata names its root op; the opcodes of its fused computation tell a fused
  matmul or erf (GELU) apart from plain elementwise work.
  """
  instruction = re.compile(r'^\s*(?:ROOT\s+)?%?([\w.\-]+) = \S+(?:\s+\S+)*? ([a-z][\w\-]*)\(')
  computations: dict[str, set[str]] = {}
  ops: dict[str, tuple[str, str, str]] = {}  # name -> (op_name, opcode, called computation)
  current = None
  for line in hlo_text.splitlines():
    header = re.match(r'^(?:ENTRY\s+)?%?([\w.\-]+) \(.*\{\s*$', line)
    if header:
      current = header.group(1)
      computations[current] = set()
      continue
    match = instruction.match(line)
    if not match:
      continue
    name, opcode = match.groups()
    if current is not None:
      computations[current].add(opcode)
    op_name = re.search(r'op_name="((?:[^"\\]|\\.)*)"', line)
    calls = re.search(r'calls=%?([\w.\-]+)', line)
    ops[name] = (op_name.group(1) if op_name else '', opcode, calls.group(1) if calls else '')
  return {name: (op_name, {opcode} | computations.get(calls, set()))
          for name, (op_name, opcode, calls) in ops.items()}


def thunk_self_times(trace_path: str, module_prefix: str) -> dict[str, float]:
  """HLO op name -> summed self time (us) of its thunk events in a perfetto trace.

  Self time: an event's duration minus the events nested inside it on the same thread (a while
  loop's thunk contains its body's thunks).
  """
  with gzip.open(trace_path) as f:
    trace = json.load(f)
  events = [e for e in trace['traceEvents'] if e.get('ph') == 'X' and 'hlo_op' in e.get('args', {})
            and e['args'].get('hlo_module', '').startswith(module_prefix)]
  times: dict[str, float] = collections.defaultdict(float)
  by_thread = collections.defaultdict(list)
  for e in events:
    by_thread[e['tid']].append(e)
  for thread_events in by_thread.values():
    thread_events.sort(key=lambda e: (e['ts'], -e['dur']))
    stack: list[list] = []  # [end, name, child time]
    def close(until):
      while stack and stack[-1][0] <= until:
        end, name, child, dur = stack.pop()
        times[name] += dur - child
        if stack:
          stack[-1][2] += dur
    for e in thread_events:
      close(e['ts'])
      stack.append([e['ts'] + e['dur'], e['args']['hlo_op'], 0.0, e['dur']])
    close(float('inf'))
  return times


def print_profile(step_fn, state, batch, num_steps: int, log_dir: str, step_time: float) -> None:
  """Traces `num_steps` steps of a compiled `step_fn` and prints where the time goes."""
  metadata = hlo_op_metadata(step_fn.as_text())
  with jax.profiler.trace(log_dir, create_perfetto_trace=True):
    start = time.perf_counter()
    for _ in range(num_steps):
      state, stats = step_fn(state, batch)
    jax.block_until_ready(stats)
    traced_step_time = (time.perf_counter() - start) / num_steps
  trace = max(glob.glob(os.path.join(log_dir, 'plugins/profile/*/perfetto_trace.json.gz')),
              key=os.path.getmtime)
  times = thunk_self_times(trace, 'jit_train_step')
  table = collections.defaultdict(float)
  unmatched = 0.0
  for op, us in times.items():
    op_name, opcodes = metadata.get(op, ('', set()))
    if not op_name:
      unmatched += us
    component = next(label for label, test in _COMPONENTS if test(op_name))
    kind = next(label for label, test in _KINDS if test(op_name, opcodes))
    table[component, kind] += us / num_steps / 1e3
  total = sum(table.values())
  print(f'\nprofile: {num_steps} traced steps, trace {trace}')
  print(f'summed op (thunk) self time {total:.1f} ms/step; the traced steps took '
        f'{traced_step_time * 1e3:.1f} ms/step (timed earlier: {step_time * 1e3:.1f} ms; independent '
        f'ops may overlap on the thread pool); without HLO metadata: '
        f'{unmatched / num_steps / 1e3:.1f} ms/step')
  for title, index, labels in (('component', 0, [c for c, _ in _COMPONENTS]),
                               ('kind of op', 1, [k for k, _ in _KINDS])):
    print(f'\n| {title} | ms/step | share |\n|---|---|---|')
    for label in labels:
      ms = sum(v for key, v in table.items() if key[index] == label)
      if ms:
        print(f'| {label} | {ms:.1f} | {ms / total:.1%} |')
  print('\n| component \\ kind | ' + ' | '.join(k for k, _ in _KINDS) + ' |')
  print('|---' * (len(_KINDS) + 1) + '|')
  for component, _ in _COMPONENTS:
    print(f'| {component} | ' + ' | '.join(f'{table.get((component, k), 0.0):.0f}'
                                          for k, _ in _KINDS) + ' |')
  top = sorted(times.items(), key=lambda kv: -kv[1])[:12]
  print('\ntop ops (ms/step, op_name):')
  for op, us in top:
    print(f'  {us / num_steps / 1e3:7.1f}  {op:28s} {metadata.get(op, ("", ""))[0][:110]}')


# ---- The transformers / PyTorch peer -----------------------------------------------------------

def torch_peer_step(spec, batches):
  """A callable running one ELECTRA train step built from `transformers` in PyTorch (fp32)."""
  import torch
  import transformers

  disc, gen = spec.discriminator, spec.generator

  def hf_config(m):
    return transformers.ElectraConfig(
        vocab_size=m.vocab_size, embedding_size=m.embedding_size, hidden_size=m.hidden_size,
        num_hidden_layers=m.num_layers, num_attention_heads=m.num_heads,
        intermediate_size=m.intermediate_size, max_position_embeddings=m.max_position_embeddings,
        type_vocab_size=m.type_vocab_size, hidden_dropout_prob=m.hidden_dropout_prob,
        attention_probs_dropout_prob=m.attention_dropout_prob, layer_norm_eps=m.layer_norm_eps,
        attn_implementation='sdpa')

  torch.manual_seed(0)
  generator = transformers.ElectraForMaskedLM(hf_config(gen))
  discriminator = transformers.ElectraForPreTraining(hf_config(disc))
  generator.electra.embeddings = discriminator.electra.embeddings  # shared tables, as the original
  generator.generator_lm_head.weight = discriminator.electra.embeddings.word_embeddings.weight
  params = list({id(p): p for p in [*generator.parameters(), *discriminator.parameters()]}.values())
  optimizer = torch.optim.AdamW(params, lr=5e-4, betas=(0.9, 0.999), eps=1e-6, weight_decay=0.01)
  generator.train()
  discriminator.train()

  def step(b):
    hidden = generator.electra(b['masked_input_ids'], attention_mask=b['attention_mask'],
                               token_type_ids=b['token_type_ids']).last_hidden_state
    positions = b['masked_lm_positions']
    picked = torch.gather(hidden, 1, positions[..., None].expand(-1, -1, hidden.shape[-1]))
    logits = generator.generator_lm_head(generator.generator_predictions(picked))
    weights = b['masked_lm_weights']
    nll = torch.nn.functional.cross_entropy(logits.flatten(0, 1), b['masked_lm_ids'].flatten(),
                                            reduction='none')
    gen_loss = (nll * weights.flatten()).sum() / weights.sum().clamp(min=1)
    with torch.no_grad():
      uniform = torch.rand_like(logits)
      sampled = torch.argmax(logits - torch.log(-torch.log(uniform + 1e-9) + 1e-9), -1)
      corrupted = b['input_ids'].scatter(1, positions, sampled)
      replaced = (corrupted != b['input_ids']).float()
    disc_logits = discriminator(corrupted, attention_mask=b['attention_mask'],
                                token_type_ids=b['token_type_ids']).logits
    mask = b['attention_mask'].float()
    disc_loss = (torch.nn.functional.binary_cross_entropy_with_logits(
        disc_logits, replaced, reduction='none') * mask).sum() / mask.sum()
    loss = gen_loss + 50.0 * disc_loss
    optimizer.zero_grad(set_to_none=True)
    loss.backward()
    torch.nn.utils.clip_grad_norm_(params, 1.0)
    optimizer.step()
    return loss

  as_torch = [{k: torch.from_numpy(np.asarray(v)).long() if v.dtype != np.float32 else
               torch.from_numpy(np.asarray(v)) for k, v in b.items()} for b in batches]
  calls = iter(range(1 << 62))
  return lambda: step(as_torch[next(calls) % 2])


def print_peer_profile(peer, num_steps: int, top: int = 30) -> None:
  """The peer's steps under torch.profiler: every aten op's self CPU time per step, largest first
  (the PyTorch side of the op-by-op comparison with `--profile_dir`)."""
  import torch  # noqa: PLC0415
  with torch.profiler.profile(activities=[torch.profiler.ProfilerActivity.CPU]) as prof:
    for _ in range(num_steps):
      peer()
  events = prof.key_averages()
  total = sum(e.self_cpu_time_total for e in events)
  print(f'\npeer profile: {num_steps} steps, summed op self time {total / num_steps / 1e3:.1f} '
        'ms/step')
  print('| op | calls/step | self ms/step | share |\n|---|---|---|---|')
  for e in sorted(events, key=lambda e: -e.self_cpu_time_total)[:top]:
    print(f'| {e.key} | {e.count / num_steps:.0f} | {e.self_cpu_time_total / num_steps / 1e3:.1f} '
          f'| {e.self_cpu_time_total / total:.1%} |')


# ---- Main --------------------------------------------------------------------------------------

def main(argv):
  del argv
  from electra_jax.core import flops as flops_lib
  from electra_jax import startup
  from electra_jax.parallel import mesh as mesh_lib

  config = startup.load_config_file(_CONFIG.value)
  config.train.batch_size = _BATCH.value
  config.data.max_seq_length = _SEQ.value
  if _DTYPE.value:
    config.model.dtype = _DTYPE.value
  if _SAMPLER.value:
    config.electra.sampler = _SAMPLER.value
  mesh_lib.split_cpu_host(config)  # as the trainer does: mesh.cpu_devices (XLA_FLAGS' count wins)
  if _PEER.value and config.model.dtype != 'float32':
    raise app.UsageError('--peer compares float32 steps; drop --dtype.')

  step = step_harness.build(config)
  dtype = jnp.bfloat16 if config.model.dtype == 'bfloat16' else jnp.float32
  devices = jax.device_count()
  peer = torch_peer_step(step.spec, step.host_batches) if _PEER.value else None
  step.run(2)  # warm-up
  if peer:
    peer()
    peer()
  # Interleaved rounds (one step, one matmul measurement, one peer step), so that a shared
  # machine's changing load hits all three alike and their ratios stay meaningful.
  step_time = matmul_seconds = matmul_flops = peer_time = 0.0
  for _ in range(_STEPS.value):
    step_time += step.run(1)
    tflops = measured_matmul_tflops(_MATMUL.value, dtype, repeats=2)
    matmul_flops += 2 * 2 * _MATMUL.value ** 3
    matmul_seconds += 2 * 2 * _MATMUL.value ** 3 / (tflops * 1e12)
    if peer:
      start = time.perf_counter()
      peer()
      peer_time += time.perf_counter() - start
  step_time /= _STEPS.value
  # XLA:CPU devices (mesh.cpu_devices) share the host's cores, and one device's matmul already
  # runs on all of them: the host's peak is one measurement, an accelerator's one per chip.
  chips = 1 if jax.devices()[0].platform == 'cpu' else devices
  peak = matmul_flops / matmul_seconds / 1e12 * chips

  tokens = _BATCH.value * _SEQ.value
  flops_per_token = step.spec.train_flops_per_token()
  achieved = flops_per_token * tokens / step_time / 1e12
  counts = flops_lib.param_counts(step.spec.discriminator, step.spec.generator,
                                  step.spec.embedding_sharing)
  print(f'config {_CONFIG.value} sampler {config.electra.sampler} dtype {config.model.dtype} '
        f'batch {_BATCH.value} x {_SEQ.value} on {devices} x {jax.devices()[0].device_kind}, '
        f'{_STEPS.value} interleaved rounds')
  print(f'parameters: {counts}')
  print(f'train FLOPs per token (analytic): {flops_per_token / 1e6:.1f} MFLOP')
  print(f'step time {step_time * 1e3:.1f} ms | {tokens / step_time:,.0f} tokens/s | '
        f'{achieved:.3f} TFLOP/s')
  print(f'measured dense matmul ({_MATMUL.value}^2, {jnp.dtype(dtype).name}): {peak:.3f} TFLOP/s '
        f'-> train step reaches {achieved / peak:.1%} of it')
  if peer:
    peer_time /= _STEPS.value
    print(f'transformers/PyTorch peer: step time {peer_time * 1e3:.1f} ms | '
          f'{tokens / peer_time:,.0f} tokens/s -> electra-jax is {peer_time / step_time:.2f}x')
  if peer and _PEER_PROFILE.value:
    print_peer_profile(peer, _PROFILE_STEPS.value)
  if _PROFILE_DIR.value:
    with step.context():
      print_profile(step.step_fn, step.state, step.batches[0], _PROFILE_STEPS.value,
                    _PROFILE_DIR.value, step_time)


if __name__ == '__main__':
  app.run(main)

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
"""

from __future__ import annotations

import dataclasses
import math
import os
import re
import time
from typing import Any, Sequence

import jax
import jax.numpy as jnp
import ml_collections
from absl import flags
from ml_collections import config_flags

from electra_jax import chips
from electra_jax import hlo
from electra_jax import objectives
from electra_jax import reporting
from electra_jax import sharding
from electra_jax import startup
from electra_jax import train
from electra_jax.errors import UserError

GIB = 1024**3
# Counted in TensorCores (two per chip) by gcloud's accelerator types; the others count chips.
_COUNTS_CORES = ('v2', 'v3', 'v4', 'v5p')
_THREE_D = ('v4', 'v5p')  # 3-D torus topologies (chips as XxYxZ); the rest are 2-D
_GCLOUD_ALIASES = {'v5litepod': 'v5e'}  # gcloud's accelerator type for v5e is v5litepod-N


@dataclasses.dataclass(frozen=True)
class Topology:
  name: str  # as the user typed it, e.g. 'v3-32'
  libtpu_name: str  # e.g. 'v3:4x4'
  chip: chips.Chip
  num_slices: int = 1

  @property
  def num_chips(self) -> int:
    return self.num_slices * math.prod(int(d) for d in self.libtpu_name.split(':')[1].split('x'))


def _chip_grid(num_chips: int, three_d: bool) -> list[int]:
  """gcloud's slice shapes: double the smallest dimension (the last on ties), from 1x1(x1) or
  2x2x1; v3-32 -> 4x4, v5e-8 -> 2x4, v4-32 -> 2x2x4, v4-64 -> 2x4x4."""
  dims = [2, 2, 1] if three_d and num_chips >= 4 else [1, 1, 1] if three_d else [1, 1]
  while math.prod(dims) < num_chips:
    smallest = min(dims)
    index = max(i for i, d in enumerate(dims) if d == smallest)
    dims[index] *= 2
  return dims


def parse_topology(name: str, num_slices: int = 1) -> Topology:
  """A gcloud accelerator type ('v3-32', 'v5litepod-8', 'v6e-256') or a libtpu topology string
  ('v4:2x2x1') -> `Topology`.

  Raises:
    UserError: a name that is neither, naming the forms that are.
  """
  if num_slices < 1:
    raise UserError(f'--num_slices={num_slices}: give 1 or more slices.')
  known = ', '.join(f'{g}-N' for g in chips.TPU_GENERATIONS)
  raw = re.fullmatch(r'(v\d\w*|tpu7x):(\d+(?:x\d+){1,2})', name)
  if raw:
    chip = chips.by_name(_GCLOUD_ALIASES.get(raw.group(1), raw.group(1)))
    if chip is None:
      raise UserError(f'--topology={name}: unknown TPU generation {raw.group(1)!r}; use {known} '
                      'or a libtpu topology such as v4:2x2x1.')
    return Topology(name, f'{chip.name}:{raw.group(2)}', chip, num_slices)
  match = re.fullmatch(r'(v\d\w*)-(\d+)', name)
  generation = match and _GCLOUD_ALIASES.get(match.group(1), match.group(1))
  if not match or generation not in chips.TPU_GENERATIONS:
    raise UserError(f'--topology={name}: not a TPU accelerator type; use {known} (as gcloud '
                    "names them, e.g. v3-32 or v5litepod-8) or a libtpu topology such as v4:2x2x1.")
  count = int(match.group(2))
  per_chip = 2 if generation in _COUNTS_CORES else 1
  num_chips = count // per_chip
  if count % per_chip or num_chips < 1 or num_chips & (num_chips - 1):
    raise UserError(f'--topology={name}: {generation} slices have a power-of-two number of '
                    f'{"TensorCores (2 per chip)" if per_chip == 2 else "chips"}, e.g. '
                    f'{generation}-{8 if per_chip == 2 else 4}.')
  grid = 'x'.join(str(d) for d in _chip_grid(num_chips, generation in _THREE_D))
  return Topology(name, f'{generation}:{grid}', chips.by_name(generation), num_slices)


def accelerator_type(devices: Sequence[jax.Device]) -> str | None:
  """gcloud's name for the TPU slice these (real) devices make up, e.g. 4 x 'TPU v4' -> 'v4-8';
  None off TPU or for an unknown chip."""
  chip = chips.of_device(devices[0])
  if devices[0].platform != 'tpu' or chip is None or chip.name not in chips.TPU_GENERATIONS:
    return None
  num_chips = len(devices) // chip.devices_per_chip
  return f'{chip.name}-{num_chips * (2 if chip.name in _COUNTS_CORES else 1)}'


def topology_devices(topology: Topology) -> list[jax.Device]:
  """The topology's devices from libtpu, on a host that need not have any TPU.

  Raises:
    UserError: libtpu is missing (the [tpu] extra) or does not know the topology.
  """
  os.environ.setdefault('TPU_SKIP_MDS_QUERY', '1')  # no metadata server off Cloud
  # Nothing runs on the chips, so the check may share libtpu with a training process.
  os.environ.setdefault('ALLOW_MULTIPLE_LIBTPU_LOAD', '1')
  try:
    from jax.experimental import topologies  # noqa: PLC0415
    description = topologies.get_topology_desc(topology_name=topology.libtpu_name,
                                               platform='tpu', num_slices=topology.num_slices)
  except (ImportError, RuntimeError, ValueError) as error:
    message = _first_line(error)
    if isinstance(error, ImportError) or re.search(r'not found|No module|Unknown backend|'
                                                   r'no (TPU )?plugin', message, re.I):
      raise UserError(f'cannot describe TPU {topology.name}: {message}. The compile check needs '
                      "libtpu: pip install 'electra-jax[tpu]'.") from None
    raise UserError(f'libtpu cannot describe {topology.libtpu_name} (--topology={topology.name}): '
                    f'{message}') from None
  return list(description.devices)


# ---- Compiling ------------------------------------------------------------------------------

@dataclasses.dataclass
class Compiled:
  """One compile of the train step (and the eval step) for a topology, with what XLA says."""
  config: ml_collections.ConfigDict
  mesh: Any
  train: Any  # jax.stages.Compiled
  eval: Any | None
  train_seconds: float
  eval_seconds: float


class DoesNotFit(Exception):
  """XLA refused the program for lack of HBM (it reports this at compile time on TPU)."""


def compile_steps(config: ml_collections.ConfigDict, devices: Sequence[jax.Device], *,
                  with_eval: bool = True) -> Compiled:
  """Lowers and compiles `train.build_program`'s steps for `devices` from abstract inputs.

  Raises:
    UserError: the config does not suit the devices (batch, mesh, ...).
    DoesNotFit: XLA ran out of HBM while compiling.
  """
  process_count = len({d.process_index for d in devices})
  mesh, rules = train.checked_mesh(config, list(devices), process_count)
  program = train.build_program(config, mesh, rules)
  try:
    with sharding.mesh_scope(mesh, rules):
      start = time.perf_counter()
      compiled_train = program.train_step.lower(program.abstract_state,
                                                program.abstract_batch).compile()
      train_seconds = time.perf_counter() - start
      compiled_eval, eval_seconds = None, 0.0
      if with_eval:
        start = time.perf_counter()
        compiled_eval = program.eval_step.lower(
            program.abstract_state.params, program.abstract_batch,
            jax.ShapeDtypeStruct((), jnp.int32)).compile()
        eval_seconds = time.perf_counter() - start
  except jax.errors.JaxRuntimeError as error:
    if 'RESOURCE_EXHAUSTED' in str(error) or 'out of memory' in str(error).lower():
      raise DoesNotFit(_first_line(error)) from None
    raise
  return Compiled(config, mesh, compiled_train, compiled_eval, train_seconds, eval_seconds)


def _first_line(error: BaseException) -> str:
  lines = [line.strip() for line in str(error).splitlines() if line.strip()]
  return lines[0] if lines else type(error).__name__


# ---- What the compiled program says ---------------------------------------------------------

def hbm_per_device(compiled) -> dict[str, float]:
  """Bytes per device: argument, output, temp, alias, code and `total` (in use at the peak)."""
  sizes = reporting.memory_per_device(compiled) or {}
  analysis = compiled.memory_analysis()
  sizes['code'] = float(getattr(analysis, 'generated_code_size_in_bytes', 0) or 0)
  sizes['total'] = sizes.get('peak', 0.0) + sizes['code']
  return sizes


def _cost(compiled) -> dict[str, float]:
  cost = compiled.cost_analysis()
  cost = cost[0] if isinstance(cost, (list, tuple)) else cost
  return {k: float(cost.get(k, 0.0)) for k in ('flops', 'bytes accessed', 'optimal_seconds')}


@dataclasses.dataclass
class Report:
  """Everything the table prints, as numbers (tests and benchmarks read these)."""
  topology: Topology
  num_devices: int
  num_hosts: int
  mesh: str
  hbm: dict[str, float]  # train step, bytes per device
  eval_hbm: dict[str, float] | None
  hbm_capacity: float  # bytes per device
  peak_flops: float  # per device
  analytic_flops: float  # per device per step
  compiled_flops: float
  bytes_accessed: float
  collectives: dict[str, list[int]]
  dcn: dict[str, list[int]]
  train_compile_seconds: float
  eval_compile_seconds: float
  compute_seconds: float
  memory_seconds: float
  xla_seconds: float
  tokens_per_step: int
  num_steps: int
  loop_factor: float = 1.0  # > 1: XLA counted loop bodies once; its FLOPs and bytes scaled by this

  @property
  def fits(self) -> bool:
    needed = max(self.hbm['total'], (self.eval_hbm or {}).get('total', 0.0))
    return needed <= self.hbm_capacity

  @property
  def step_seconds(self) -> float:
    return max(self.compute_seconds, self.memory_seconds)

  @property
  def tokens_per_second(self) -> float:
    return self.tokens_per_step / self.step_seconds

  @property
  def mfu(self) -> float:
    return self.analytic_flops / (self.step_seconds * self.peak_flops)

  @property
  def days(self) -> float:
    return self.step_seconds * self.num_steps / 86400


def analyse(compiled: Compiled, topology: Topology) -> Report:
  """The compile's figures against the chip: memory, FLOPs, collectives and the roofline."""
  config = compiled.config
  devices = list(compiled.mesh.devices.flat)
  num_devices = len(devices)
  # libtpu may expose each TensorCore as a device (v4 here: 8 devices for v4-8's 4 chips), so the
  # chip's figures are split over the devices the topology actually has.
  devices_per_chip = num_devices / topology.num_chips
  chip = topology.chip
  capacity = chip.hbm_gib * GIB / devices_per_chip
  peak = chip.peak_tflops * 1e12 / devices_per_chip
  bandwidth = chip.hbm_gbytes_per_s * 1e9 / devices_per_chip
  tokens = config.train.batch_size * config.data.max_seq_length
  analytic = objectives.train_flops_per_token(config) * tokens / num_devices
  cost = _cost(compiled.train)
  text = compiled.train.as_text()
  # XLA's cost analysis counts a loop body once (model.scan_layers, train.grad_accum_steps):
  # when its FLOPs fall short of the analytic count, both its FLOPs and bytes are scaled up by
  # the shortfall (the loop bodies, the layers, hold nearly all of both).
  loop_factor = analytic / cost['flops'] if 0 < cost['flops'] < 0.9 * analytic else 1.0
  # The chip executes the FLOPs XLA compiled (the analytic count leaves out softmax, norms and
  # the like); MFU counts only the analytic ones, as everywhere else in the project.
  work = max(analytic, cost['flops'] * loop_factor)
  return Report(
      topology=topology, num_devices=num_devices, num_hosts=len({d.process_index for d in devices}),
      mesh=' '.join(f'{a}={s}' for a, s in compiled.mesh.shape.items()),
      hbm=hbm_per_device(compiled.train),
      eval_hbm=hbm_per_device(compiled.eval) if compiled.eval is not None else None,
      hbm_capacity=capacity, peak_flops=peak, analytic_flops=analytic, compiled_flops=cost['flops'],
      bytes_accessed=cost['bytes accessed'], collectives=hlo.collectives(text),
      dcn=hlo.dcn_transfers(text), train_compile_seconds=compiled.train_seconds,
      eval_compile_seconds=compiled.eval_seconds, compute_seconds=work / peak,
      memory_seconds=cost['bytes accessed'] * loop_factor / bandwidth,
      xla_seconds=cost['optimal_seconds'] if loop_factor == 1.0 else 0.0, loop_factor=loop_factor,
      tokens_per_step=tokens, num_steps=config.train.num_steps)


def _gib(value: float) -> str:
  return f'{value / GIB:.2f} GiB' if value >= 0.1 * GIB else f'{value / 1024**2:.1f} MiB'


def _bytes(value: float) -> str:
  for unit, size in (('GiB', GIB), ('MiB', 1024**2), ('KiB', 1024)):
    if value >= size:
      return f'{value / size:.1f} {unit}'
  return f'{int(value)} B'


def _ms(seconds: float) -> str:
  return f'{seconds * 1e3:.1f} ms'


def format_report(report: Report, config: ml_collections.ConfigDict, config_name: str) -> str:
  """The one readable table."""
  t, m = report.topology, config.model
  per_device = config.train.batch_size // max(1, report.num_devices)
  hbm, capacity = report.hbm, report.hbm_capacity
  verdict = 'fits' if report.fits else 'DOES NOT FIT'
  rows = [
      ('topology', f'{t.name} = libtpu {t.libtpu_name}' + (f' x {t.num_slices} slices'
                                                             if t.num_slices > 1 else '')
       + f': {report.num_devices} devices on {t.num_chips} {t.chip.name} chips, '
       f'{report.num_hosts} host(s)'),
      ('mesh', report.mesh),
      ('batch', f'{config.train.batch_size} x {config.data.max_seq_length} ({per_device} per '
                f'device), grad_accum_steps {config.train.grad_accum_steps}, dtype {m.dtype}, '
                f'remat {m.remat}, scan_layers {m.scan_layers}'),
      ('HBM per device', f'arguments {_gib(hbm["argument"])} + temporaries {_gib(hbm["temp"])} '
                         f'+ outputs {_gib(hbm["output"])} - donated {_gib(hbm["alias"])} '
                         f'+ code {_gib(hbm["code"])}'),
      ('', f'= {_gib(hbm["total"])} of {_gib(capacity)} '
           f'({hbm["total"] / capacity:.0%}): {verdict}'),
  ]
  if report.eval_hbm is not None:
    rows.append(('eval step HBM', f'{_gib(report.eval_hbm["total"])} of {_gib(capacity)}'))
  ratio = report.compiled_flops / report.analytic_flops if report.analytic_flops else float('nan')
  rows.append(('FLOPs per device', f'compiled {report.compiled_flops / 1e9:,.1f} G / analytic '
                                   f'{report.analytic_flops / 1e9:,.1f} G = {ratio:.3f}'))
  if report.loop_factor != 1.0:
    rows.append(('', f"XLA counts a loop body once (scan_layers, grad_accum_steps): its FLOPs and "
                     f"bytes are scaled by {report.loop_factor:.2f} below"))
  within = [f'{kind} {len(sizes)} ({_bytes(sum(sizes))})'
            for kind, sizes in report.collectives.items() if sizes]
  rows.append(('collectives', ', '.join(within) or 'none'))
  if t.num_slices > 1:
    across = [f'{kind.lower().replace("_", "-")} {len(sizes)} ({_bytes(sum(sizes))} per step)'
              for kind, sizes in report.dcn.items()]
    rows.append(('across slices (DCN)', ', '.join(across) or 'none'))
  rows.append(('compile time', f'train step {report.train_compile_seconds:.0f} s'
               + (f', eval step {report.eval_compile_seconds:.0f} s'
                  if report.eval_hbm is not None else '')))
  bound = 'compute' if report.compute_seconds >= report.memory_seconds else 'HBM bandwidth'
  rows.append(('roofline step', f'{_ms(report.step_seconds)} = max(FLOPs/peak '
                                f'{_ms(report.compute_seconds)}, bytes/HBM bandwidth '
                                f'{_ms(report.memory_seconds)}): {bound}-bound'))
  rows.append(('estimate', f'{report.tokens_per_second:,.0f} tokens/s, MFU {report.mfu:.0%}, '
                           f'{report.num_steps:,} steps in {report.days:.2f} days'))
  if report.xla_seconds > 0:
    rows.append(("XLA's estimate", f'{_ms(report.xla_seconds)} per step (optimal_seconds)'))
  width = max(len(name) for name, _ in rows)
  lines = [f'Compile check: {config_name} on {t.name}']
  lines += [f'  {name:<{width}}  {value}' for name, value in rows]
  return '\n'.join(lines)


def estimate(config: ml_collections.ConfigDict, topology: str,
             num_slices: int = 1) -> dict[str, float]:
  """The roofline estimate for `benchmarks/accelerator_check.py`: step_seconds,
  tokens_per_second, mfu, and the fit (hbm_total_gib, hbm_capacity_gib)."""
  parsed = parse_topology(topology, num_slices)
  report = analyse(compile_steps(config, topology_devices(parsed), with_eval=False), parsed)
  return {'step_seconds': report.step_seconds, 'tokens_per_second': report.tokens_per_second,
          'mfu': report.mfu, 'hbm_total_gib': report.hbm['total'] / GIB,
          'hbm_capacity_gib': report.hbm_capacity / GIB}


# ---- What would make it fit -----------------------------------------------------------------

@dataclasses.dataclass(frozen=True)
class Shortfall:
  """What a step that does not fit needs per device, as far as it is known (bytes)."""
  state: float  # arguments: parameters, optimizer state, batch
  temp: float  # activations and other temporaries
  capacity: float

  @classmethod
  def of_report(cls, report: Report) -> Shortfall:
    return cls(report.hbm['argument'], report.hbm['temp'], report.hbm_capacity)

  @classmethod
  def of_xla_error(cls, message: str) -> Shortfall:
    """From XLA's refusal, e.g. '... required for HLO temporaries (15.71G) exceeds available HBM
    (15.25G)'; unknown parts are 0."""
    def size(pattern):
      match = re.search(pattern + r'\s*\(?([\d.]+)([KMGT])', message)
      return float(match.group(1)) * 1024**'KMGT'.index(match.group(2)) * 1024 if match else 0.0
    return cls(size(r'arguments'), size(r'temporaries'), size(r'available HBM') or float('inf'))


def _candidates(config: ml_collections.ConfigDict, need: Shortfall,
                num_devices: int) -> list[dict[str, Any]]:
  """Overrides to try, cheapest in step time first, keeping those a first-order model says may
  fit: fsdp divides the state (arguments); accumulation divides the activations (temporaries)
  but adds a gradient buffer; remat trades compute for activations (no model: always tried)."""
  candidates: list[dict[str, Any]] = []
  fsdp_sizes = [f for f in (2, 4, 8, 16, 32, 64) if f <= num_devices and not num_devices % f
                and f > config.mesh.fsdp]
  for fsdp in fsdp_sizes:
    if need.state / fsdp + need.temp <= need.capacity:
      candidates.append({'mesh.fsdp': fsdp})
  per_device = config.train.batch_size // num_devices
  for accum in (2, 4, 8, 16, 32, 64):
    if accum <= config.train.grad_accum_steps or per_device % accum:
      continue
    if need.state * 4 / 3 + need.temp / accum <= need.capacity:  # + a gradient buffer
      candidates.append({'train.grad_accum_steps': accum})
  for remat in ('dots', 'full'):
    if config.model.remat == 'none' or (config.model.remat == 'dots' and remat == 'full'):
      candidates.append({'model.remat': remat})
  # Everything at once, as the last resort.
  if fsdp_sizes:
    biggest = {'mesh.fsdp': fsdp_sizes[-1], 'model.remat': 'full'}
    for accum in (4, 16):
      if not per_device % accum and accum > config.train.grad_accum_steps:
        candidates.append({**biggest, 'train.grad_accum_steps': accum})
  return candidates


def _with(config: ml_collections.ConfigDict,
          overrides: dict[str, Any]) -> ml_collections.ConfigDict:
  """A copy of `config` with the dotted `overrides` (a new fsdp size takes data=-1)."""
  changed = ml_collections.ConfigDict(config.to_dict())
  for path, value in overrides.items():
    section, field = path.split('.')
    changed[section][field] = value
    if path == 'mesh.fsdp':
      changed.mesh.data = -1
  return changed


def _flags(overrides: dict[str, Any]) -> str:
  return ' '.join(f'--config.{path}={value}' for path, value in overrides.items())


def suggest(config: ml_collections.ConfigDict, devices: Sequence[jax.Device], topology: Topology,
            need: Shortfall, max_compiles: int = 6) -> tuple[dict[str, Any], Report] | None:
  """The first candidate (see `_candidates`) whose compiled step fits, or None."""
  for overrides in _candidates(config, need, len(devices))[:max_compiles]:
    candidate = _with(config, overrides)
    print(f'  trying {_flags(overrides)} ...', flush=True)
    try:
      result = analyse(compile_steps(candidate, devices), topology)
    except (UserError, DoesNotFit) as error:
      print(f'    no: {error}', flush=True)
      continue
    print(f'    {_gib(result.hbm["total"])} of {_gib(result.hbm_capacity)}: '
          f'{"fits" if result.fits else "does not fit"}', flush=True)
    if result.fits:
      return overrides, result
  return None


# ---- Command line ---------------------------------------------------------------------------

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


def check(config: ml_collections.ConfigDict, config_name: str, topology_name: str,
          num_slices: int = 1, want_suggestion: bool = False, with_eval: bool = True) -> Report:
  """Compiles, prints the table; returns the report when it fits.

  Raises:
    UserError: bad input, or the step does not fit (one line, with the suggestion if asked).
  """
  topology = parse_topology(topology_name, num_slices)
  devices = topology_devices(topology)
  print(f'Compiling {config_name} for {topology.name} ({len(devices)} devices) ...', flush=True)
  try:
    compiled = compile_steps(config, devices, with_eval=with_eval)
  except DoesNotFit as error:
    message = str(error).removeprefix('RESOURCE_EXHAUSTED: ')
    need, refusal = Shortfall.of_xla_error(message), f'XLA: {message.rstrip(".")}'
  else:
    report = analyse(compiled, topology)
    print(format_report(report, config, config_name), flush=True)
    if report.fits:
      return report
    need = Shortfall.of_report(report)
    refusal = (f'{_gib(max(report.hbm["total"], (report.eval_hbm or {}).get("total", 0)))} per '
               f'device of {_gib(report.hbm_capacity)}')
  message = (f'{config_name} does not fit on {topology.name} ({refusal}), at batch '
             f'{config.train.batch_size} x {config.data.max_seq_length}.')
  if not want_suggestion:
    raise UserError(f'{message} Rerun with --suggest to find the cheapest setting that fits '
                    '(mesh.fsdp, train.grad_accum_steps, model.remat).')
  found = suggest(config, devices, topology, need)
  if found is None:
    raise UserError(f'{message} Nothing tried fits: use a larger topology or a smaller batch.')
  overrides, fitting = found
  raise UserError(f'{message} It fits with {_flags(overrides)} '
                  f'({_gib(fitting.hbm["total"])} per device, estimated '
                  f'{_ms(fitting.step_seconds)}/step, MFU {fitting.mfu:.0%}).')


def main(argv: Sequence[str]) -> None:
  startup.no_arguments(argv)
  # The TPU's devices are only described, never used: jax itself runs on the CPU, also on a TPU
  # VM whose chips may be busy training.
  jax.config.update('jax_platforms', 'cpu')
  config_name = os.path.basename(
      config_flags.get_config_filename(FLAGS['config'])).removesuffix('.py')
  check(FLAGS.config, config_name, FLAGS.topology, FLAGS.num_slices, FLAGS.suggest, FLAGS.eval)


def run() -> None:
  startup.run(main)


if __name__ == '__main__':
  run()

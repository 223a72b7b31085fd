"""The pre-training program compiled ahead of time for a TPU topology: HBM per device, FLOPs,
collectives and a roofline step time, and the cheapest change that makes a step fit.

The engine of `electra_jax.compile_check` (the CLI); compiled through `train.build_program`, the
same program training compiles."""

from __future__ import annotations

import dataclasses
import re
import time
from typing import Any, Sequence

import jax
import jax.numpy as jnp
import ml_collections

from electra_jax import reporting
from electra_jax.errors import UserError
from electra_jax.parallel import hlo
from electra_jax.parallel import sharding
from electra_jax.parallel.topologies import Topology, first_line, parse_topology, topology_devices
from electra_jax.pretraining import train
from electra_jax.spec import run as run_spec

GIB = 1024**3


# ---- Compiling ------------------------------------------------------------------------------

@dataclasses.dataclass
class Compiled:
  """One compile of the train step (and the eval step) for a topology, with what XLA says."""
  spec: run_spec.RunSpec
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
  spec, mesh = train.spec_and_mesh(config, list(devices), process_count)
  rules = spec.mesh.rules
  program = train.build_program(spec, mesh)
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
      raise DoesNotFit(first_line(error)) from None
    raise
  return Compiled(spec, mesh, compiled_train, compiled_eval, train_seconds, eval_seconds)


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
  fsdp: int = 1  # the mesh's fsdp size

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
  spec = compiled.spec
  devices = list(compiled.mesh.devices.flat)
  num_devices = len(devices)
  # libtpu may expose each TensorCore as a device (v4 here: 8 devices for v4-8's 4 chips), so the
  # chip's figures are split over the devices the topology actually has.
  devices_per_chip = num_devices / topology.num_chips
  chip = topology.chip
  capacity = chip.hbm_gib * GIB / devices_per_chip
  peak = chip.peak_tflops * 1e12 / devices_per_chip
  bandwidth = chip.hbm_gbytes_per_s * 1e9 / devices_per_chip
  tokens = spec.batch_size * spec.seq_length
  analytic = spec.train_flops_per_token() * tokens / num_devices
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
      tokens_per_step=tokens, num_steps=spec.config.train.num_steps,
      fsdp=compiled.mesh.shape.get('fsdp', 1))


def reduce_scatters_run_as_all_reduces(chip) -> bool:
  """Whether libtpu runs a reduce-scatter on `chip` as an all-reduce and a slice.

  Measured with libtpu 0.0.42.1: on v2, v3 and v4 its `reduce-scatter-decomposer` rewrites every
  reduce-scatter, even an explicit `psum_scatter`, so fsdp's gradients cross devices whole (about
  twice a reduce-scatter's traffic); v5e, v5p and v6e keep it (an all-reduce-scatter fusion).
  Pinned by `tests/pretraining/test_tpu_compile.py`.
  """
  return chip is not None and chip.name in ('v2', 'v3', 'v4')


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
  if report.fsdp > 1 and reduce_scatters_run_as_all_reduces(t.chip):
    rows.append(('', f"libtpu runs reduce-scatters as all-reduces on {t.chip.name}: fsdp's "
                     f"gradients cross devices whole, not as shards"))
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


# ---- The check, as the CLI runs it ---------------------------------------------------------

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

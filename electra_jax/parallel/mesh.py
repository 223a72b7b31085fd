"""Device mesh: `data`, `fsdp` and `tensor` axes built from `config.mesh`.

`-1` in an axis means "the devices left over". On multi-slice TPU pods (devices report a
`slice_index`) the mesh is hybrid: `data` is split into an outer, across-slice (DCN) part and an
inner, within-slice (ICI) part, so that only the gradient all-reduce crosses the slow network.
A CPU host is first split into XLA devices, one per core (`split_cpu_host`, `mesh.cpu_devices`).
"""

from __future__ import annotations

import dataclasses
import math
import os
from typing import Any, Sequence

from absl import logging
import jax
import ml_collections
import numpy as np
from jax.experimental import mesh_utils
from jax.sharding import Mesh

from electra_jax import startup
from electra_jax.errors import UserError, require

AXES = ('data', 'fsdp', 'tensor')


@dataclasses.dataclass(frozen=True)
class MeshShape:
  """The mesh `config.mesh` asks for on a known number of devices, resolved once.

  Attributes:
    data, fsdp, tensor: the axis sizes, `-1` ("the devices left over") filled in.
    dcn_data: how many of the `data` rows lie across slices (-1: one per slice).
    rules: the logical axis rules, as the tuples flax wants (never the lists a JSON round trip
      or a command-line override leaves).
  """
  data: int
  fsdp: int
  tensor: int
  dcn_data: int
  rules: tuple[tuple[str, Any], ...]

  @property
  def sizes(self) -> tuple[int, int, int]:
    return (self.data, self.fsdp, self.tensor)

  @property
  def data_parallel(self) -> int:
    """Devices a batch is split over (data x fsdp)."""
    return self.data * self.fsdp

  @classmethod
  def of(cls, mesh_config: ml_collections.ConfigDict, num_devices: int) -> 'MeshShape':
    """Raises UserError naming the field when the sizes cannot cover `num_devices`."""
    sizes = [int(mesh_config[name]) for name in AXES]
    for name, size in zip(AXES, sizes):
      require(size > 0 or size == -1,
              f'config.mesh.{name}={size}: use a positive size, or -1 for "the rest".')
    unknown = [name for name, size in zip(AXES, sizes) if size == -1]
    require(len(unknown) <= 1,
            f'config.mesh: only one axis may be -1, got {unknown}. Set all but one.')
    known = math.prod(s for s in sizes if s != -1)
    if unknown:
      require(num_devices % known == 0,
              f'config.mesh: the fixed axes multiply to {known}, which does not divide the '
              f'{num_devices} devices. Choose sizes whose product divides {num_devices}.')
      sizes[AXES.index(unknown[0])] = num_devices // known
    else:
      require(known == num_devices,
              f'config.mesh: data*fsdp*tensor = {known} but there are {num_devices} devices. '
              f'Make the product {num_devices}, or set one axis to -1.')
    rules = tuple((name, tuple(axes) if isinstance(axes, list) else axes)
                  for name, axes in mesh_config.logical_axis_rules)
    return cls(*sizes, dcn_data=int(mesh_config.dcn_data), rules=rules)


# `mesh.cpu_devices=0` (auto) splits a CPU host into at most this many devices: measured on 2
# cores only (issue 24); a cap, so that a many-core host keeps matmuls of a useful size.
AUTO_CPU_DEVICES_CAP = 8


def cpu_devices(config: ml_collections.ConfigDict, cores: int) -> int | None:
  """The XLA:CPU devices to split a host of `cores` cores into (`config.mesh.cpu_devices`), or
  None for jax's default of one device over every core.

  Auto (0) takes one device per core, at most AUTO_CPU_DEVICES_CAP, and as many as split the
  micro-batch evenly, only for the default mesh (all data parallel); a mesh set by hand keeps
  jax's default. A positive value is used as given (the mesh checks then name any misfit).
  """
  choice = config.mesh.cpu_devices
  require(isinstance(choice, int) and choice >= 0,
          f'config.mesh.cpu_devices={choice!r}: use 0 (auto) or a number of devices.')
  if choice:
    return choice
  m = config.mesh
  if (m.data, m.fsdp, m.tensor) != (-1, 1, 1):
    return None
  micro_batch = config.train.batch_size // max(config.train.grad_accum_steps, 1)
  count = max(n for n in range(1, max(min(cores, AUTO_CPU_DEVICES_CAP), 1) + 1)
              if micro_batch % n == 0)
  return count if count > 1 else None


def split_cpu_host(config: ml_collections.ConfigDict, coordinator_address: str = '') -> None:
  """Splits a CPU host into `config.mesh.cpu_devices` XLA devices (auto: `cpu_devices` above)
  before jax starts its backends; the CLI and the step benchmarks call it first thing.

  Leaves jax's default where the count is already chosen (XLA_FLAGS'
  --xla_force_host_platform_device_count, as the tests set, or jax_num_cpu_devices), and for
  auto on a multi-process run or a TPU VM. Accelerators compute as before: only jax's CPU
  backend is split, so this decides the mesh only when the CPU is what trains.
  """
  if ('xla_force_host_platform_device_count' in os.environ.get('XLA_FLAGS', '')
      or jax.config.jax_num_cpu_devices >= 0):
    return
  cores = len(os.sched_getaffinity(0)) if hasattr(os, 'sched_getaffinity') else os.cpu_count()
  count = cpu_devices(config, cores or 1)
  if count is None or (not config.mesh.cpu_devices and (
      coordinator_address or os.environ.get(startup.ENV_COORDINATOR)
      or startup.on_cloud_tpu_vm())):
    return
  jax.config.update('jax_num_cpu_devices', count)
  logging.info('CPU host split into %d XLA devices (config.mesh.cpu_devices=%d, %d cores).',
               count, config.mesh.cpu_devices, cores)


def _num_slices(devices: Sequence[jax.Device]) -> int:
  return len({getattr(d, 'slice_index', 0) for d in devices})


def make_mesh(shape: MeshShape, devices: Sequence[jax.Device] | None = None) -> Mesh:
  """Builds the (data, fsdp, tensor) mesh over `devices` (default: all devices)."""
  devices = list(jax.devices() if devices is None else devices)
  sizes = shape.sizes
  require(math.prod(sizes) == len(devices),
          f'the mesh {sizes} was resolved for {math.prod(sizes)} devices, not {len(devices)}.')
  num_slices = _num_slices(devices)
  if num_slices > 1:
    dcn_data = num_slices if shape.dcn_data == -1 else shape.dcn_data
    if dcn_data != num_slices or sizes[0] % dcn_data:
      raise UserError(
          f'config.mesh.dcn_data={dcn_data}: with {num_slices} slices it must equal the slice '
          f'count and divide mesh.data={sizes[0]}. Use -1.')
    ici = (sizes[0] // dcn_data, sizes[1], sizes[2])
    device_array = mesh_utils.create_hybrid_device_mesh(ici, (dcn_data, 1, 1), devices)
  else:
    try:
      device_array = mesh_utils.create_device_mesh(sizes, devices)
    except (AssertionError, NotImplementedError, ValueError):
      # create_device_mesh only knows physical layouts of TPU topologies; elsewhere any order works.
      device_array = np.asarray(devices).reshape(sizes)
  return Mesh(device_array, AXES)


def describe(mesh: Mesh) -> str:
  """One line for the log, e.g. 'data=2 fsdp=2 tensor=2 (8 devices, 1 process, cpu)'."""
  axes = ' '.join(f'{name}={mesh.shape[name]}' for name in mesh.axis_names)
  platform = mesh.devices.flat[0].platform
  return (f'{axes} ({mesh.devices.size} devices, {jax.process_count()} process(es), '
          f'{platform}, {_num_slices(list(mesh.devices.flat))} slice(s))')

"""TPU topologies by the names users type (gcloud's `v3-32`, `v5litepod-8`, or libtpu's `v4:2x2x1`),
and their devices described by libtpu on a host that has no TPU (`jax.experimental.topologies`)."""

from __future__ import annotations

import dataclasses
import math
import os
import re
from typing import Sequence

import jax

from electra_jax.errors import UserError
from electra_jax.parallel import chips

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
    message = first_line(error)
    if isinstance(error, ImportError) or re.search(r'not found|No module|Unknown backend|'
                                                   r'no (TPU )?plugin', message, re.I):
      raise UserError(f'cannot describe TPU {topology.name}: {message}. The compile check needs '
                      "libtpu: pip install 'electra-jax[tpu]'.") from None
    raise UserError(f'libtpu cannot describe {topology.libtpu_name} (--topology={topology.name}): '
                    f'{message}') from None
  return list(description.devices)


def first_line(error: BaseException) -> str:
  lines = [line.strip() for line in str(error).splitlines() if line.strip()]
  return lines[0] if lines else type(error).__name__

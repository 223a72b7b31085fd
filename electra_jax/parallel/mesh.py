"""Device mesh: `data`, `fsdp` and `tensor` axes built from `config.mesh`.

`-1` in an axis means "the devices left over". On multi-slice TPU pods (devices report a
`slice_index`) the mesh is hybrid: `data` is split into an outer, across-slice (DCN) part and an
inner, within-slice (ICI) part, so that only the gradient all-reduce crosses the slow network.
"""

from __future__ import annotations

from typing import Sequence

import jax
import ml_collections
import numpy as np
from jax.experimental import mesh_utils
from jax.sharding import Mesh

from electra_jax.errors import UserError
from electra_jax.spec import validate

AXES = validate.MESH_AXES


def _num_slices(devices: Sequence[jax.Device]) -> int:
  return len({getattr(d, 'slice_index', 0) for d in devices})


def make_mesh(mesh_config: ml_collections.ConfigDict,
              devices: Sequence[jax.Device] | None = None) -> Mesh:
  """Builds the (data, fsdp, tensor) mesh over `devices` (default: all devices)."""
  devices = list(jax.devices() if devices is None else devices)
  sizes = validate.resolve_axis_sizes(mesh_config, len(devices))
  num_slices = _num_slices(devices)
  if num_slices > 1:
    dcn_data = int(mesh_config.get('dcn_data', -1))
    dcn_data = num_slices if dcn_data == -1 else dcn_data
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

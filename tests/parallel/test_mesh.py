"""Mesh construction from config.mesh and its error messages."""

import jax
import ml_collections

from electra_jax.parallel import mesh as mesh_lib


def _mesh_config(data=-1, fsdp=1, tensor=1):
  return ml_collections.ConfigDict(dict(data=data, fsdp=fsdp, tensor=tensor, dcn_data=-1))


def test_mesh_over_eight_emulated_devices():
  mesh = mesh_lib.make_mesh(_mesh_config(2, 2, 2))
  assert dict(mesh.shape) == {'data': 2, 'fsdp': 2, 'tensor': 2}
  assert mesh.devices.size == jax.device_count() == 8
  assert 'data=2 fsdp=2 tensor=2' in mesh_lib.describe(mesh)

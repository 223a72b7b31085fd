"""Mesh construction from config.mesh and its error messages."""

import jax
import ml_collections
import pytest

from electra_jax import mesh as mesh_lib


def _mesh_config(data=-1, fsdp=1, tensor=1):
  return ml_collections.ConfigDict(dict(data=data, fsdp=fsdp, tensor=tensor, dcn_data=-1))


def test_minus_one_takes_the_remaining_devices():
  assert mesh_lib.resolve_axis_sizes(_mesh_config(-1, 2, 2), 8) == (2, 2, 2)
  assert mesh_lib.resolve_axis_sizes(_mesh_config(1, -1, 1), 8) == (1, 8, 1)


def test_mesh_over_eight_emulated_devices():
  mesh = mesh_lib.make_mesh(_mesh_config(2, 2, 2))
  assert dict(mesh.shape) == {'data': 2, 'fsdp': 2, 'tensor': 2}
  assert mesh.devices.size == jax.device_count() == 8
  assert 'data=2 fsdp=2 tensor=2' in mesh_lib.describe(mesh)


@pytest.mark.parametrize('sizes, message', [
    ((2, 2, 1), 'data\\*fsdp\\*tensor = 4 but there are 8 devices'),
    ((-1, -1, 1), 'only one axis may be -1'),
    ((-1, 3, 1), 'does not divide'),
    ((0, 1, 1), 'config.mesh.data=0'),
])
def test_bad_meshes_name_the_field_and_the_fix(sizes, message):
  with pytest.raises(ValueError, match=message):
    mesh_lib.resolve_axis_sizes(_mesh_config(*sizes), 8)

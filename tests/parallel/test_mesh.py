"""The mesh `config.mesh` asks for (`MeshShape`), its construction and its error messages."""

import jax
import ml_collections
import pytest

from electra_jax.configs import tiny
from electra_jax.parallel import mesh as mesh_lib


def _mesh_config(data=-1, fsdp=1, tensor=1):
  return ml_collections.ConfigDict(dict(data=data, fsdp=fsdp, tensor=tensor, dcn_data=-1,
                                        logical_axis_rules=[['batch', ['data', 'fsdp']]]))


def test_mesh_over_eight_emulated_devices():
  mesh = mesh_lib.make_mesh(mesh_lib.MeshShape.of(_mesh_config(2, 2, 2), jax.device_count()))
  assert dict(mesh.shape) == {'data': 2, 'fsdp': 2, 'tensor': 2}
  assert mesh.devices.size == jax.device_count() == 8
  assert 'data=2 fsdp=2 tensor=2' in mesh_lib.describe(mesh)


def test_minus_one_takes_the_remaining_devices():
  assert mesh_lib.MeshShape.of(_mesh_config(-1, 2, 2), 8).sizes == (2, 2, 2)
  assert mesh_lib.MeshShape.of(_mesh_config(1, -1, 1), 8).sizes == (1, 8, 1)


@pytest.mark.parametrize('sizes, message', [
    ((2, 2, 1), 'data\\*fsdp\\*tensor = 4 but there are 8 devices'),
    ((-1, -1, 1), 'only one axis may be -1'),
    ((-1, 3, 1), 'does not divide'),
    ((0, 1, 1), 'config.mesh.data=0'),
])
def test_bad_meshes_name_the_field_and_the_fix(sizes, message):
  with pytest.raises(ValueError, match=message):
    mesh_lib.MeshShape.of(_mesh_config(*sizes), 8)


def test_logical_axis_rules_become_tuples():
  config = tiny.get_config()
  config.mesh.logical_axis_rules = [['batch', ['data', 'fsdp']], ['length', None]]
  assert mesh_lib.MeshShape.of(config.mesh, 8).rules == (('batch', ('data', 'fsdp')),
                                                         ('length', None))


def test_a_shape_resolved_for_other_devices_is_refused():
  shape = mesh_lib.MeshShape.of(_mesh_config(2, 2, 1), 4)
  with pytest.raises(ValueError, match='resolved for 4 devices, not 8'):
    mesh_lib.make_mesh(shape)

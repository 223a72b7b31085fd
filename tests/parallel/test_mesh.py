"""The mesh `config.mesh` asks for (`MeshShape`), its construction and its error messages, and the
split of a CPU host into XLA devices (`cpu_devices`, `split_cpu_host`)."""

import os
import subprocess
import sys
import textwrap

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


# ---- mesh.cpu_devices: how many XLA devices a CPU host is split into --------------------------

def _cpu_config(cpu_devices=0, batch_size=32, grad_accum_steps=1, **mesh):
  config = tiny.get_config()
  config.mesh.cpu_devices = cpu_devices
  config.train.batch_size, config.train.grad_accum_steps = batch_size, grad_accum_steps
  config.mesh.update(mesh)
  return config


@pytest.mark.parametrize('cores, batch_size, grad_accum_steps, want', [
    (2, 32, 1, 2),  # one device per core
    (1, 32, 1, None),  # one core: jax's default
    (6, 32, 1, 4),  # the most devices that split the batch evenly
    (3, 33, 1, 3),
    (2, 33, 1, None),  # an odd batch stays on one device
    (64, 128, 1, mesh_lib.AUTO_CPU_DEVICES_CAP),
    (4, 32, 8, 4),  # micro-batches of 4
    (4, 24, 4, 3),  # micro-batches of 6: 3, not 4
])
def test_auto_splits_a_cpu_host_one_device_per_core_dividing_the_micro_batch(
    cores, batch_size, grad_accum_steps, want):
  assert mesh_lib.cpu_devices(_cpu_config(0, batch_size, grad_accum_steps), cores) == want


def test_auto_leaves_a_hand_set_mesh_alone_and_an_explicit_count_is_used_as_given():
  assert mesh_lib.cpu_devices(_cpu_config(0, fsdp=2), cores=8) is None
  assert mesh_lib.cpu_devices(_cpu_config(0, data=4), cores=8) is None
  assert mesh_lib.cpu_devices(_cpu_config(3), cores=2) == 3
  assert mesh_lib.cpu_devices(_cpu_config(1), cores=8) == 1


def test_a_negative_cpu_device_count_names_the_field():
  config = _cpu_config(-1)
  with pytest.raises(ValueError, match=r'config.mesh.cpu_devices=.*use 0 \(auto\)'):
    mesh_lib.cpu_devices(config, cores=2)


_SPLIT = textwrap.dedent('''
    import sys
    from electra_jax.parallel import mesh
    from electra_jax.configs import tiny
    config = tiny.get_config()
    config.mesh.cpu_devices = int(sys.argv[1])
    mesh.split_cpu_host(config)
    import jax
    print(jax.device_count(), jax.devices()[0].platform)
''')


@pytest.mark.parametrize('xla_flags, cpu_devices, want', [
    ('', 3, '3 cpu'),  # the config's count, before jax starts its backends
    ('--xla_force_host_platform_device_count=5', 3, '5 cpu'),  # a count set in XLA_FLAGS wins
])
def test_the_cpu_host_is_split_before_jax_starts(xla_flags, cpu_devices, want):
  env = {k: v for k, v in os.environ.items() if k != 'XLA_FLAGS'}
  env.update(XLA_FLAGS=xla_flags, JAX_PLATFORMS='cpu')
  result = subprocess.run([sys.executable, '-c', _SPLIT, str(cpu_devices)], capture_output=True,
                          text=True, timeout=300, env=env, check=False)
  assert result.returncode == 0, result.stderr[-2000:]
  assert result.stdout.split('\n')[-2] == want

"""The config rules (electra_jax/spec/validate.py): choices, derived values and pure checks."""

import subprocess
import sys

import ml_collections
import pytest

from electra_jax.configs import tiny
from electra_jax.spec import validate


def _mesh_config(data=-1, fsdp=1, tensor=1):
  return ml_collections.ConfigDict(dict(data=data, fsdp=fsdp, tensor=tensor, dcn_data=-1))


def test_minus_one_takes_the_remaining_devices():
  assert validate.resolve_axis_sizes(_mesh_config(-1, 2, 2), 8) == (2, 2, 2)
  assert validate.resolve_axis_sizes(_mesh_config(1, -1, 1), 8) == (1, 8, 1)


@pytest.mark.parametrize('sizes, message', [
    ((2, 2, 1), 'data\\*fsdp\\*tensor = 4 but there are 8 devices'),
    ((-1, -1, 1), 'only one axis may be -1'),
    ((-1, 3, 1), 'does not divide'),
    ((0, 1, 1), 'config.mesh.data=0'),
])
def test_bad_meshes_name_the_field_and_the_fix(sizes, message):
  with pytest.raises(ValueError, match=message):
    validate.resolve_axis_sizes(_mesh_config(*sizes), 8)


def test_max_predictions_matches_the_original_formula():
  assert validate.max_predictions_for(0.15, 128) == 19
  assert validate.max_predictions_for(0.15, 512) == 79
  assert validate.max_predictions_for(0.25, 512) == 130
  assert validate.max_predictions_for(0.15, 128, configured=20) == 20


def test_the_rules_module_imports_without_jax():
  code = ('import sys; import electra_jax.spec.validate; '
          "assert not any(m == 'jax' or m.startswith(('jax.', 'flax', 'tensorflow')) "
          'for m in sys.modules), sorted(sys.modules)')
  subprocess.run([sys.executable, '-c', code], check=True)


def test_float16_is_refused_up_front():
  config = tiny.get_config()
  config.model.dtype = 'float16'
  with pytest.raises(ValueError, match="config.model.dtype='float16'"):
    validate.validate_config(config, num_devices=8)


@pytest.mark.parametrize('configured', [0, -2])
def test_mask_slots_other_than_minus_one_are_taken_as_given_and_checked(configured):
  config = tiny.get_config()
  config.data.max_predictions_per_seq = configured
  assert validate.max_predictions(config) == configured
  for source in ('builtin', 'synthetic'):  # one rule, whatever the source
    config.data.source = source
    with pytest.raises(ValueError, match=f'max_predictions_per_seq={configured}'):
      validate.validate_config(config, num_devices=8)


def test_logical_axis_rules_become_tuples():
  config = tiny.get_config()
  config.mesh.logical_axis_rules = [['batch', ['data', 'fsdp']], ['length', None]]
  assert validate.logical_axis_rules(config.mesh) == (('batch', ('data', 'fsdp')),
                                                      ('length', None))


def test_generator_config_checks_its_inputs():
  model = tiny.get_config().model
  with pytest.raises(ValueError, match='generator_hidden_fraction=1.5'):
    validate.generator_config(model, 1.5)
  with pytest.raises(ValueError, match="embedding_sharing='tied'"):
    validate.generator_config(model, 0.25, 'tied')


def test_prng_impl_auto_is_threefry_until_a_platform_is_given_another(monkeypatch):
  train = ml_collections.ConfigDict(dict(prng_impl='auto'))
  assert validate.prng_impl(train, 'tpu') == 'threefry2x32'
  monkeypatch.setitem(validate.AUTO_PRNG_IMPL, 'tpu', 'rbg')
  assert validate.prng_impl(train, 'tpu') == 'rbg'
  assert validate.prng_impl(train, 'cpu') == 'threefry2x32'
  train.prng_impl = 'unsafe_rbg'
  assert validate.prng_impl(train, 'cpu') == 'unsafe_rbg'
  train.prng_impl = 'philox'
  with pytest.raises(ValueError, match='config.train.prng_impl'):
    validate.prng_impl(train, 'cpu')

"""The config rules (electra_jax/spec/validate.py): choices, derived values and pure checks."""

import subprocess
import sys

import pytest

from electra_jax.configs import tiny
from electra_jax.spec import validate


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
    validate.check_config(config)


@pytest.mark.parametrize('configured', [0, -2])
def test_mask_slots_other_than_minus_one_are_taken_as_given_and_checked(configured):
  config = tiny.get_config()
  config.data.max_predictions_per_seq = configured
  data = config.data
  assert validate.max_predictions_for(data.mask_prob, data.max_seq_length,
                                      data.max_predictions_per_seq) == configured
  for source in ('builtin', 'synthetic'):  # one rule, whatever the source
    config.data.source = source
    with pytest.raises(ValueError, match=f'max_predictions_per_seq={configured}'):
      validate.check_config(config)


def test_generator_config_checks_its_inputs():
  model = tiny.get_config().model
  with pytest.raises(ValueError, match='generator_hidden_fraction=1.5'):
    validate.generator_config(model, 1.5)
  with pytest.raises(ValueError, match="embedding_sharing='tied'"):
    validate.generator_config(model, 0.25, 'tied')


def test_prng_impl_auto_is_threefry_until_a_platform_is_given_another(monkeypatch):
  assert validate.prng_impl('auto', 'tpu') == 'threefry2x32'
  monkeypatch.setitem(validate.AUTO_PRNG_IMPL, 'tpu', 'rbg')
  assert validate.prng_impl('auto', 'tpu') == 'rbg'
  assert validate.prng_impl('auto', 'cpu') == 'threefry2x32'
  assert validate.prng_impl('unsafe_rbg', 'cpu') == 'unsafe_rbg'
  with pytest.raises(ValueError, match='config.train.prng_impl'):
    validate.prng_impl('philox', 'cpu')

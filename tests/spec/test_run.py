"""The run spec (electra_jax/spec/run.py): a config resolved and checked once, when it is loaded."""

import dataclasses
import pathlib
import re

import ml_collections
import pytest

import electra_jax
from electra_jax.configs import default
from electra_jax.configs import tiny
from electra_jax.core import objectives
from electra_jax.spec import run as run_spec
from electra_jax.spec import validate

PACKAGE = pathlib.Path(electra_jax.__file__).parent


def test_load_derives_the_networks_the_masking_and_the_batches():
  config = tiny.get_config()
  spec = run_spec.load(config, process_count=2)
  e = config.electra
  assert spec.config is config  # the raw config stays the one users edit and the loop saves
  assert spec.objective is objectives.named('electra')
  assert spec.discriminator.to_dict() == config.model.to_dict()
  assert spec.generator.to_dict() == validate.generator_config(
      config.model, e.generator_hidden_fraction, e.embedding_sharing).to_dict()
  assert spec.masking == run_spec.Masking(0.15, config.data.mask_token_prob,
                                          config.data.random_token_prob, 19)
  assert spec.max_predictions == 19 and spec.masked_fraction == 19 / 128
  assert (spec.batch_size, spec.host_batch_size, spec.seq_length) == (
      config.train.batch_size, config.train.batch_size // 2, 128)
  assert spec.mesh is None  # no device count given: a tool reading a run needs none


def test_the_spec_is_frozen():
  spec = run_spec.load(tiny.get_config())
  with pytest.raises(dataclasses.FrozenInstanceError):
    spec.batch_size = 1
  with pytest.raises((AttributeError, ValueError)):
    spec.discriminator.hidden_size = 1  # a FrozenConfigDict


def test_the_objective_decides_the_generator_and_the_masking():
  config = tiny.get_config()
  config.electra.objective = 'mlm'
  spec = run_spec.load(config)
  assert spec.generator is None
  assert (spec.masking.mask_token_prob, spec.masking.random_token_prob) == (0.8, 0.1)
  assert set(spec.objective.forward_flops_per_token(spec)) == {'discriminator'}


def test_with_devices_the_mesh_and_the_batch_fit_are_resolved():
  config = tiny.get_config()
  config.mesh.update(data=-1, fsdp=2, tensor=1)
  config.train.grad_accum_steps = 2
  spec = run_spec.load(config, num_devices=8)
  assert spec.mesh.sizes == (4, 2, 1) and spec.mesh.data_parallel == 8
  assert spec.micro_batch_size == config.train.batch_size // 2
  assert all(isinstance(axes, (str, tuple, type(None))) for _, axes in spec.mesh.rules)


@pytest.mark.parametrize('field, value, num_devices, message', [
    ('electra.objective', 'bert', None, "config.electra.objective='bert'"),
    ('electra.generator_hidden_fraction', 0.0, None, 'generator_hidden_fraction=0.0'),
    ('mesh.tensor', 3, 8, 'does not divide the 8 devices'),
    ('train.batch_size', 12, 8, 'not divisible by the 8 data-parallel devices'),
    ('model.num_heads', 3, None, 'does not divide config.model.hidden_size'),
])
def test_a_bad_config_is_refused_at_load_naming_the_field(field, value, num_devices, message):
  config = tiny.get_config()
  section, name = field.split('.')
  config[section][name] = value
  with pytest.raises(ValueError, match=re.escape(message)):
    run_spec.load(config, num_devices=num_devices)


def test_a_config_saved_before_newer_fields_is_upgraded_in_one_place():
  saved = tiny.get_config().to_dict()
  del saved['electra']['objective']  # saved before the objective switch
  del saved['train']['prng_impl'], saved['mesh']['dcn_data'], saved['data']['skip_batches']
  upgraded = run_spec.upgrade(saved)
  defaults = default.get_config()
  assert upgraded.electra.objective == defaults.electra.objective == 'electra'
  assert upgraded.train.prng_impl == defaults.train.prng_impl
  assert upgraded.mesh.dcn_data == defaults.mesh.dcn_data
  assert upgraded.model.to_dict() == tiny.get_config().model.to_dict()  # its own values kept
  spec = run_spec.load(saved)
  assert spec.objective.name == 'electra' and spec.config.data.skip_batches == 0


def test_a_current_config_is_not_copied():
  config = tiny.get_config()
  assert run_spec.upgrade(config) is config
  partial = ml_collections.ConfigDict({'electra': {'objective': 'mlm'}})
  assert run_spec.upgrade(partial) is not partial


def _calls(name: str) -> list[str]:
  """Package modules that call `name(`, outside its definition."""
  pattern = re.compile(rf'(?<!def )\b{name}\(')
  return sorted(str(p.relative_to(PACKAGE)) for p in PACKAGE.rglob('*.py')
                if pattern.search(p.read_text()))


def test_each_derived_value_is_derived_in_one_place():
  # The generator's size rule: the run spec derives a run's generator; export checks that a
  # given generator follows the rule (the rule itself, not a run's value).
  assert _calls('generator_config') == ['interop/export.py', 'spec/run.py']
  assert _calls('max_predictions_for') == ['spec/run.py', 'spec/validate.py']
  assert _calls('check_config') == ['spec/run.py']
  assert _calls('validate_model_config') == ['finetune/start.py', 'interop/hf.py',
                                             'spec/validate.py']


def test_the_config_rules_are_read_by_a_handful_of_modules():
  readers = sorted(str(p.relative_to(PACKAGE)) for p in PACKAGE.rglob('*.py')
                   if re.search(r'^\s*from electra_jax\.spec import validate\b', p.read_text(),
                                re.M))
  assert readers == ['data/pretraining.py', 'finetune/start.py', 'interop/export.py',
                     'interop/hf.py', 'spec/run.py']

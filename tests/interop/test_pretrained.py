"""Tests for electra_jax.interop.pretrained: telling checkpoint kinds apart, and `init_from`.

`detect_kind` on workdirs, Hugging Face directories, TF1 prefixes and anything else; what a
`Pretrained` says trained it; and `initial_params`, which places a checkpoint's weights in a
fresh run and refuses one whose shapes differ, naming the tensor. The checkpoints are Hugging
Face exports (`export.write_hf`) of freshly initialised tiny models: nothing is trained.
"""

import flax.linen as nn
import jax
import ml_collections
import numpy as np
import pytest

from electra_jax.configs import default as default_config
from electra_jax.core import model as model_lib
from electra_jax.core import objectives
from electra_jax.core import param_trees
from electra_jax.errors import UserError
from electra_jax.interop import export
from electra_jax.interop import pretrained as pretrained_lib
from electra_jax.spec import run as run_spec
from model_configs import tiny_model_config  # tests/model_configs.py

LENGTH, PREDICTIONS = 16, 4


def _run_config(objective='electra', sharing='shared', init_from='', **model):
  config = default_config.get_config()
  tiny = tiny_model_config(**model)
  config.model.update({k: tiny[k] for k in config.model})
  config.electra.update(objective=objective, embedding_sharing=sharing,
                        generator_hidden_fraction=0.5)
  config.data.max_seq_length = LENGTH
  config.init_from = init_from
  return config


def _fresh(spec, seed):
  model = spec.objective.build_model(spec)
  return nn.meta.unbox(model_lib.init_pretrainer_params(model, jax.random.key(seed), LENGTH,
                                                        PREDICTIONS))


def _export(dst, objective='electra', sharing='shared', seed=0, **model):
  """Writes a freshly initialised model as a Hugging Face export; returns its joint params."""
  spec = run_spec.load(_run_config(objective, sharing, **model))
  joint = jax.tree.map(np.asarray, _fresh(spec, seed))
  parts = spec.objective.split_params(joint, sharing)
  gen_config = None if spec.generator is None else ml_collections.ConfigDict(spec.generator)
  export.write_hf(pretrained_lib.Pretrained(
      ml_collections.ConfigDict(spec.discriminator), parts['discriminator'], gen_config,
      parts['generator'], objective=objective), str(dst))
  return joint


@pytest.fixture(scope='module')
def hf_export(tmp_path_factory):
  """(path, joint params) of an export of a tiny ELECTRA model (shared tables)."""
  dst = tmp_path_factory.mktemp('pretrained') / 'hf'
  return str(dst), _export(dst, seed=1)


# ---- detect_kind -----------------------------------------------------------------------------

def test_detect_kind_tells_the_checkpoint_kinds_apart(tmp_path, hf_export):
  assert pretrained_lib.detect_kind(hf_export[0]) == 'hf'
  assert pretrained_lib.detect_kind(f'{hf_export[0]}/discriminator') == 'hf'
  (tmp_path / 'workdir' / 'checkpoints').mkdir(parents=True)
  assert pretrained_lib.detect_kind(str(tmp_path / 'workdir')) == 'workdir'
  (tmp_path / 'masked' / 'masked_lm').mkdir(parents=True)
  (tmp_path / 'masked' / 'masked_lm' / 'config.json').write_text('{}')
  assert pretrained_lib.detect_kind(str(tmp_path / 'masked')) == 'hf'
  (tmp_path / 'model.ckpt-100.index').write_bytes(b'')
  assert pretrained_lib.detect_kind(str(tmp_path / 'model.ckpt-100')) == 'tf1'


@pytest.mark.parametrize('make,problem', [(False, 'does not exist'), (True, 'is not a checkpoint')])
def test_detect_kind_of_anything_else_is_a_one_line_user_error(tmp_path, make, problem):
  path = tmp_path / 'source'
  if make:
    path.mkdir()
    (path / 'weights.bin').write_bytes(b'')
  with pytest.raises(UserError) as raised:
    pretrained_lib.detect_kind(str(path))
  message = str(raised.value)
  assert message.startswith(f"'{path}' {problem}: expected a pre-training workdir")
  assert 'PREFIX.index' in message and '\n' not in message


def test_load_checkpoint_refuses_a_kind_other_than_the_one_asked_for(hf_export):
  with pytest.raises(UserError, match=r'--from=tf1 but .* looks like a hf source'):
    pretrained_lib.load_checkpoint(hf_export[0], kind='tf1')
  with pytest.raises(UserError, match='step=3 applies to workdirs only'):
    pretrained_lib.load_checkpoint(hf_export[0], step=3)


# ---- Pretrained -------------------------------------------------------------------------------

def test_pretrained_is_trained_by_electra_unless_it_says_otherwise():
  config = tiny_model_config()
  plain = pretrained_lib.Pretrained(config, {})
  assert plain.trained_by is objectives.named('electra')
  assert plain.trained_by.main_network is model_lib.Discriminator
  masked = pretrained_lib.Pretrained(config, {}, objective='mlm')
  assert masked.trained_by.name == 'mlm'
  assert masked.trained_by.main_network is model_lib.Generator
  with pytest.raises(UserError, match="config.electra.objective='bert'"):
    _ = pretrained_lib.Pretrained(config, {}, objective='bert').trained_by


def test_an_hf_export_loads_back_as_the_networks_it_was_written_from(hf_export):
  path, joint = hf_export
  loaded = pretrained_lib.load_checkpoint(path)
  parts = param_trees.split_params(joint, 'shared')
  jax.tree.map(np.testing.assert_array_equal, loaded.disc_params, parts['discriminator'])
  jax.tree.map(np.testing.assert_array_equal, loaded.gen_params, parts['generator'])
  assert (loaded.disc_config.hidden_size, loaded.gen_config.hidden_size) == (64, 32)
  assert loaded.objective == 'electra' and loaded.step is None and loaded.tokenizer is None


def test_a_masked_lm_export_loads_as_trained_by_a_masked_lm_objective(tmp_path):
  _export(tmp_path / 'hf', objective='mlm')
  loaded = pretrained_lib.load_checkpoint(str(tmp_path / 'hf'))
  assert loaded.trained_by.name == 'mlm' and loaded.gen_params is None
  assert 'generator_lm_head' in loaded.disc_params


# ---- initial_params --------------------------------------------------------------------------

def test_initial_params_are_the_checkpoints_weights_placed_as_the_fresh_ones(hf_export):
  path, joint = hf_export
  spec = run_spec.load(_run_config(init_from=path))
  fresh = _fresh(spec, seed=5)
  params = pretrained_lib.initial_params(spec, fresh)
  assert jax.tree.structure(params) == jax.tree.structure(joint)
  for got, want, reference in zip(jax.tree.leaves(params), jax.tree.leaves(joint),
                                  jax.tree.leaves(fresh)):
    np.testing.assert_array_equal(np.asarray(got), want)
    assert got.sharding == reference.sharding and got.dtype == reference.dtype


def test_initial_params_stack_the_layers_of_a_scanned_run(hf_export):
  path, joint = hf_export
  spec = run_spec.load(_run_config(init_from=path, scan_layers=True))
  params = pretrained_lib.initial_params(spec, _fresh(spec, seed=5))
  jax.tree.map(np.testing.assert_array_equal, param_trees.to_unscanned_layers(params), joint)


def test_a_source_without_a_generator_keeps_the_fresh_generator(hf_export):
  path, joint = hf_export
  spec = run_spec.load(_run_config(init_from=f'{path}/discriminator'))
  fresh = _fresh(spec, seed=5)
  params = pretrained_lib.initial_params(spec, fresh)
  jax.tree.map(np.testing.assert_array_equal, params['generator'], fresh['generator'])
  jax.tree.map(np.testing.assert_array_equal, params['discriminator'], joint['discriminator'])
  jax.tree.map(np.testing.assert_array_equal, params['shared_embeddings'],
               joint['shared_embeddings'])


def test_initial_params_refuse_a_different_shape_naming_the_tensor(hf_export):
  path, _ = hf_export
  spec = run_spec.load(_run_config(init_from=path, vocab_size=120))
  with pytest.raises(UserError, match=r'Tensor discriminator/embeddings/word_embeddings has '
                     r"shape \(100, 32\) in init_from='.*hf' but \(120, 32\) in the configured "
                     r'model \(config.model / config.electra\)'):
    pretrained_lib.initial_params(spec, _fresh(spec, seed=5))


def test_initial_params_name_a_tensor_the_checkpoint_lacks_or_has_extra(hf_export, tmp_path):
  loaded = pretrained_lib.load_checkpoint(hf_export[0])
  del loaded.disc_params['discriminator_predictions']['dense_prediction']
  spec = run_spec.load(_run_config(init_from='partial'))
  with pytest.raises(UserError, match=r"init_from='partial' has no tensor "
                     r'discriminator/discriminator_predictions/dense_prediction/bias '
                     r'\(shape \(1,\)\), which the configured model needs'):
    pretrained_lib.initial_params(spec, _fresh(spec, seed=5), loaded)
  # Three layers into a two-layer run: the third would be dropped.
  _export(tmp_path / 'deeper', num_layers=3)
  spec = run_spec.load(_run_config(init_from=str(tmp_path / 'deeper')))
  with pytest.raises(UserError, match=r"has tensors the configured model lacks: "
                     r"\['discriminator/encoder/layer_2/"):
    pretrained_lib.initial_params(spec, _fresh(spec, seed=5))


def test_initial_params_refuse_a_main_network_the_run_cannot_continue(tmp_path):
  _export(tmp_path / 'mlm', objective='mlm')
  spec = run_spec.load(_run_config(init_from=str(tmp_path / 'mlm')))
  with pytest.raises(UserError, match=r"trained by 'mlm'.*--config.electra.objective=mlm"):
    pretrained_lib.initial_params(spec, _fresh(spec, seed=5))


def test_initial_params_refuse_generator_tables_of_another_sharing(tmp_path):
  """An untied generator's tables are H_gen (32) wide; a shared run's are E (16) wide."""
  _export(tmp_path / 'untied', sharing='none', embedding_size=16)
  spec = run_spec.load(_run_config(init_from=str(tmp_path / 'untied'), embedding_size=16))
  with pytest.raises(UserError, match=r'Tensor generator/embeddings/LayerNorm/bias has shape '
                     r'\(32,\) in .* but \(16,\) in the configured model'):
    pretrained_lib.initial_params(spec, _fresh(spec, seed=5))

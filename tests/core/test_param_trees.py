"""Tests for electra_jax.core.param_trees: split/merge of the joint tree, scanned layers, names.

The joint tree is what the pretrainer trains; the standalone trees are what every export holds.
These tests pin the conversions between them for each `embedding_sharing`, the scanned <->
per-layer layouts, the path names errors print, and the one walk over a network's weights.
"""

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np
import pytest

from electra_jax.core import model as model_lib
from electra_jax.core import param_trees
from electra_jax.core import schema
from electra_jax.errors import UserError
from electra_jax.spec import validate
from model_configs import tiny_model_config  # tests/model_configs.py

LENGTH, PREDICTIONS = 16, 4


def _pretrainer(sharing, **model_overrides):
  config = tiny_model_config(**model_overrides)
  gen_config = validate.generator_config(config, 0.5, sharing)
  return model_lib.ElectraPretrainer(config, gen_config, sharing)


def _joint(sharing, seed=0, **model_overrides):
  model = _pretrainer(sharing, **model_overrides)
  boxed = model_lib.init_pretrainer_params(model, jax.random.key(seed), LENGTH, PREDICTIONS)
  joint = jax.tree.map(np.asarray, nn.meta.unbox(boxed))
  if sharing == 'gdes':  # a trained (non-zero) delta, so that split has to add it
    joint['embeddings_delta'] = jax.tree.map(lambda x: x + 0.25, joint['embeddings_delta'])
  return joint


def _standalone(cls, config):
  """The params `cls(config)` creates on its own (the tree an export holds)."""
  ids = jnp.zeros((1, LENGTH), jnp.int32)
  args = (ids, ids, ids, jnp.zeros((1, PREDICTIONS), jnp.int32))
  args = args if cls is model_lib.Generator else args[:3]
  return nn.meta.unbox(cls(config).init(jax.random.key(0), *args)['params'])


def _shapes(tree):
  return jax.tree.map(np.shape, tree)


def _assert_trees_equal(a, b):
  assert jax.tree.structure(a) == jax.tree.structure(b)
  jax.tree.map(np.testing.assert_array_equal, a, b)


# ---- split / merge -------------------------------------------------------------------------

@pytest.mark.parametrize('sharing', schema.EMBEDDING_SHARING)
def test_split_gives_trees_shaped_like_the_standalone_networks(sharing):
  model = _pretrainer(sharing)
  parts = param_trees.split_params(_joint(sharing), sharing)
  assert sorted(parts) == ['discriminator', 'generator']
  assert _shapes(parts['discriminator']) == _shapes(
      _standalone(model_lib.Discriminator, model.disc_config))
  assert _shapes(parts['generator']) == _shapes(
      _standalone(model_lib.Generator, model.gen_config))


def test_shared_split_gives_both_networks_the_same_tables():
  joint = _joint('shared')
  parts = param_trees.split_params(joint, 'shared')
  _assert_trees_equal(parts['discriminator']['embeddings'], joint['shared_embeddings'])
  _assert_trees_equal(parts['generator']['embeddings'], joint['shared_embeddings'])


def test_gdes_split_gives_the_discriminator_shared_plus_delta():
  joint = _joint('gdes')
  parts = param_trees.split_params(joint, 'gdes')
  _assert_trees_equal(parts['generator']['embeddings'], joint['shared_embeddings'])
  want = jax.tree.map(np.add, joint['shared_embeddings'], joint['embeddings_delta'])
  got = parts['discriminator']['embeddings']
  assert jax.tree.structure(got) == jax.tree.structure(want)
  jax.tree.map(lambda g, w: np.testing.assert_allclose(g, w, rtol=0, atol=1e-7), got, want)
  assert not np.array_equal(got['word_embeddings'],
                            joint['shared_embeddings']['word_embeddings'])


def test_untied_split_keeps_each_networks_own_tables():
  joint = _joint('none')
  parts = param_trees.split_params(joint, 'none')
  _assert_trees_equal(parts['discriminator'], joint['discriminator'])
  _assert_trees_equal(parts['generator'], joint['generator'])
  # The generator's own tables are as wide as its hidden size (no projection).
  assert parts['generator']['embeddings']['word_embeddings'].shape == (100, 32)
  assert parts['discriminator']['embeddings']['word_embeddings'].shape == (100, 32)


@pytest.mark.parametrize('sharing', ['shared', 'none'])
def test_merge_of_a_split_gives_back_the_joint_tree(sharing):
  joint = _joint(sharing)
  parts = param_trees.split_params(joint, sharing)
  _assert_trees_equal(param_trees.merge_params(parts['discriminator'], parts['generator'],
                                               sharing), joint)


def test_gdes_merge_starts_the_delta_at_zero_and_keeps_the_networks():
  joint = _joint('gdes')
  parts = param_trees.split_params(joint, 'gdes')
  merged = param_trees.merge_params(parts['discriminator'], parts['generator'], 'gdes')
  assert jax.tree.structure(merged) == jax.tree.structure(joint)
  assert all(not np.any(x) for x in jax.tree.leaves(merged['embeddings_delta']))
  # The shared tables are the discriminator's, so the discriminator computes as before.
  again = param_trees.split_params(merged, 'gdes')
  _assert_trees_equal(again['discriminator'], parts['discriminator'])


def test_split_accepts_boxed_params_and_returns_plain_arrays():
  model = _pretrainer('shared')
  boxed = model_lib.init_pretrainer_params(model, jax.random.key(0), LENGTH, PREDICTIONS)
  assert any(isinstance(x, nn.Partitioned)
             for x in jax.tree.leaves(boxed, is_leaf=lambda x: isinstance(x, nn.Partitioned)))
  parts = param_trees.split_params(boxed, 'shared')
  leaves = jax.tree.leaves(parts, is_leaf=lambda x: isinstance(x, nn.Partitioned))
  assert leaves and not any(isinstance(x, nn.Partitioned) for x in leaves)


def test_split_does_not_change_the_joint_tree():
  joint = _joint('gdes')
  keys = {k: sorted(v) for k, v in joint.items()}
  param_trees.split_params(joint, 'gdes')
  assert {k: sorted(v) for k, v in joint.items()} == keys
  assert 'embeddings' not in joint['discriminator'] and 'embeddings' not in joint['generator']


def test_merge_refuses_to_share_tables_of_different_shapes():
  parts = param_trees.split_params(_joint('none'), 'none')
  generator = dict(parts['generator'])
  generator['embeddings'] = dict(generator['embeddings'],
                                 word_embeddings=np.zeros((100, 16), np.float32))
  with pytest.raises(UserError, match="cannot share embeddings.*embedding_sharing='none'"):
    param_trees.merge_params(parts['discriminator'], generator, 'shared')


@pytest.mark.parametrize('convert', ['split', 'merge'])
def test_an_unknown_sharing_name_is_refused_naming_the_field(convert):
  parts = param_trees.split_params(_joint('shared'), 'shared')
  with pytest.raises(ValueError, match=r"embedding_sharing='tied': use one of \('shared', "):
    if convert == 'split':
      param_trees.split_params(_joint('shared'), 'tied')
    else:
      param_trees.merge_params(parts['discriminator'], parts['generator'], 'tied')


# ---- scanned <-> per-layer layers ----------------------------------------------------------

def test_scanned_layout_matches_a_scan_layers_model_and_round_trips():
  joint = _joint('shared', num_layers=3)
  scanned = param_trees.to_scanned_layers(joint)
  for network in ('discriminator', 'generator'):
    assert list(scanned[network]['encoder']) == ['layers']
    for i in range(3):  # layer i is row i of every stacked leaf
      jax.tree.map(lambda s, x, i=i: np.testing.assert_array_equal(s[i], x),
                   scanned[network]['encoder']['layers'], joint[network]['encoder'][f'layer_{i}'])
  scan_model = _pretrainer('shared', num_layers=3, scan_layers=True)
  want = jax.eval_shape(lambda: nn.meta.unbox(model_lib.init_pretrainer_params(
      scan_model, jax.random.key(0), LENGTH, PREDICTIONS)))
  assert _shapes(scanned) == jax.tree.map(lambda x: x.shape, want)
  _assert_trees_equal(param_trees.to_unscanned_layers(scanned), joint)


def test_layer_conversions_leave_trees_already_in_their_layout_alone():
  joint = _joint('none')
  _assert_trees_equal(param_trees.to_unscanned_layers(joint), joint)
  scanned = param_trees.to_scanned_layers(joint)
  _assert_trees_equal(param_trees.to_scanned_layers(scanned), scanned)


def test_layers_are_ordered_by_number_not_by_name():
  """Twelve layers: 'layer_10' sorts before 'layer_2' as a string, not as a layer."""
  encoder = {f'layer_{i}': {'w': np.full((2,), i, np.float32)} for i in range(12)}
  scanned = param_trees.to_scanned_layers({'encoder': encoder})
  np.testing.assert_array_equal(scanned['encoder']['layers']['w'][:, 0], np.arange(12))
  back = param_trees.to_unscanned_layers(scanned)
  assert back['encoder']['layer_10']['w'][0] == 10


# ---- names -----------------------------------------------------------------------------------

def test_path_name_joins_the_dict_keys_of_a_param_path():
  tree = {'encoder': {'layer_0': {'attention': {'query': {'kernel': np.zeros(2)}}}},
          'embeddings': {'word_embeddings': np.zeros(3)}}
  names = [param_trees.path_name(p) for p, _ in jax.tree_util.tree_leaves_with_path(tree)]
  assert names == ['embeddings/word_embeddings', 'encoder/layer_0/attention/query/kernel']
  assert param_trees.path_key(jax.tree_util.DictKey('bias')) == 'bias'


@pytest.mark.parametrize('architecture,cls', [('discriminator', model_lib.Discriminator),
                                              ('generator', model_lib.Generator)])
@pytest.mark.parametrize('embedding_size', [32, 64])
def test_network_layout_lists_every_weight_of_a_standalone_network(architecture, cls,
                                                                   embedding_size):
  config = tiny_model_config(embedding_size=embedding_size)
  params = _standalone(cls, config)
  n, d = config.num_heads, config.hidden_size // config.num_heads
  listed = {}
  for weight in param_trees.network_layout(config, architecture):
    if weight.kind in ('table', 'bias'):
      listed['/'.join(weight.path)] = weight.shape
      continue
    first, second = ('kernel', 'bias') if weight.kind == 'dense' else ('scale', 'bias')
    kernel_shape = {'out': (weight.shape[0], n, d), 'in': (n, d, weight.shape[1]),
                    None: weight.shape}[weight.heads] if weight.kind == 'dense' else weight.shape
    bias_shape = {'out': (n, d)}.get(weight.heads, (weight.shape[-1],))
    listed['/'.join(weight.path + (first,))] = kernel_shape
    listed['/'.join(weight.path + (second,))] = bias_shape
  actual = {param_trees.path_name(p): np.shape(x)
            for p, x in jax.tree_util.tree_leaves_with_path(params)}
  assert listed == actual
  has_projection = any(w.scope == 'embeddings_project'
                       for w in param_trees.network_layout(config, architecture))
  assert has_projection == (embedding_size != config.hidden_size)

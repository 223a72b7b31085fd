"""Tests for electra_jax.interop.tf1: reading an original google-research/electra TF1 checkpoint.

Each test writes a tiny checkpoint with TF1 variables named as the original's graph names them
(listed by hand below, from the original's layout, not from the code under test), then checks
the sizes read from it, where every tensor lands in our standalone param trees, and that
checkpoints that are not ELECTRA's, or are incomplete, are refused with the tensor named.
"""

import flax.linen as nn
import jax
import ml_collections
import numpy as np
import pytest
import tensorflow as tf

from electra_jax.configs import default as default_config
from electra_jax.core import model as model_lib
from electra_jax.core import param_trees
from electra_jax.errors import UserError
from electra_jax.interop import tf1

V, E, P, T = 50, 32, 24, 2  # vocab, embedding width, positions, token types
H, F, LAYERS = 128, 256, 2  # discriminator: 2 heads of 64 by the reference rule
H_GEN, F_GEN = 64, 256  # generator: 1 head


def _encoder_names(scope, hidden, ffn, layers):
  """The original's names and [in, out] shapes of one encoder's layers."""
  names = {}
  for i in range(layers):
    layer = f'{scope}/encoder/layer_{i}'
    for part in ('query', 'key', 'value'):
      names[f'{layer}/attention/self/{part}/kernel'] = (hidden, hidden)
      names[f'{layer}/attention/self/{part}/bias'] = (hidden,)
    names[f'{layer}/attention/output/dense/kernel'] = (hidden, hidden)
    names[f'{layer}/attention/output/dense/bias'] = (hidden,)
    names[f'{layer}/intermediate/dense/kernel'] = (hidden, ffn)
    names[f'{layer}/intermediate/dense/bias'] = (ffn,)
    names[f'{layer}/output/dense/kernel'] = (ffn, hidden)
    names[f'{layer}/output/dense/bias'] = (hidden,)
    for norm in ('attention/output/LayerNorm', 'output/LayerNorm'):
      names[f'{layer}/{norm}/gamma'] = (hidden,)
      names[f'{layer}/{norm}/beta'] = (hidden,)
  return names


def _tables(scope, width):
  return {f'{scope}/embeddings/word_embeddings': (V, width),
          f'{scope}/embeddings/position_embeddings': (P, width),
          f'{scope}/embeddings/token_type_embeddings': (T, width),
          f'{scope}/embeddings/LayerNorm/gamma': (width,),
          f'{scope}/embeddings/LayerNorm/beta': (width,)}


def original_names(generator=True, untied=False):
  """Variable name -> shape of an original ELECTRA pre-training checkpoint."""
  names = _tables('electra', E)
  names.update({'electra/embeddings_project/kernel': (E, H),
                'electra/embeddings_project/bias': (H,)})
  names.update(_encoder_names('electra', H, F, LAYERS))
  names.update({'discriminator_predictions/dense/kernel': (H, H),
                'discriminator_predictions/dense/bias': (H,),
                'discriminator_predictions/dense_1/kernel': (H, 1),
                'discriminator_predictions/dense_1/bias': (1,)})
  if generator:
    width = H_GEN if untied else E
    if untied:  # untied_generator_embeddings: its own tables, H_gen wide, no projection
      names.update(_tables('generator', H_GEN))
    else:
      names.update({'generator/embeddings_project/kernel': (E, H_GEN),
                    'generator/embeddings_project/bias': (H_GEN,)})
    names.update(_encoder_names('generator', H_GEN, F_GEN, LAYERS))
    names.update({'generator_predictions/dense/kernel': (H_GEN, width),
                  'generator_predictions/dense/bias': (width,),
                  'generator_predictions/LayerNorm/gamma': (width,),
                  'generator_predictions/LayerNorm/beta': (width,),
                  'generator_predictions/output_bias': (V,)})
  return names


def random_tensors(names, seed=0):
  rng = np.random.default_rng(seed)
  return {name: rng.normal(size=shape).astype(np.float32) for name, shape in names.items()}


def write_tf1_checkpoint(prefix, tensors):
  """Saves `tensors` as TF1 variables of those names (a `tf.compat.v1.train.Saver` checkpoint)."""
  graph = tf.Graph()
  with graph.as_default():
    variables = [tf.compat.v1.get_variable(name, initializer=tf.constant(value))
                 for name, value in tensors.items()]
    with tf.compat.v1.Session(graph=graph) as session:
      session.run(tf.compat.v1.global_variables_initializer())
      tf.compat.v1.train.Saver(variables).save(session, str(prefix), write_meta_graph=False)
  return str(prefix)


def with_optimizer_slots(tensors):
  """The tensors plus what the original's optimizer adds: Adam slots and the global step."""
  out = dict(tensors)
  for name, value in tensors.items():
    out[f'{name}/adam_m'] = np.full_like(value, 3.0)
    out[f'{name}/adam_v'] = np.full_like(value, 5.0)
  out['global_step'] = np.int64(1000)
  return out


def read(prefix, **kwargs):
  return tf1.read_tf1_checkpoint(prefix, default_config.get_config().model, **kwargs)


def at(tree, path):
  for key in path.split('/'):
    tree = tree[key]
  return tree


@pytest.fixture(scope='module')
def original(tmp_path_factory):
  """(prefix, tensors): a discriminator + generator with shared tables, and Adam slots."""
  tensors = random_tensors(original_names())
  prefix = tmp_path_factory.mktemp('tf1') / 'model.ckpt-1000'
  return write_tf1_checkpoint(prefix, with_optimizer_slots(tensors)), tensors


# ---- Sizes -----------------------------------------------------------------------------------

def test_sizes_are_read_from_the_tensor_shapes(original):
  prefix, _ = original
  disc_config, _, gen_config, _ = read(prefix)
  for config, hidden, ffn, heads in ((disc_config, H, F, 2), (gen_config, H_GEN, F_GEN, 1)):
    assert (config.vocab_size, config.embedding_size, config.max_position_embeddings,
            config.type_vocab_size) == (V, E, P, T)
    assert (config.hidden_size, config.intermediate_size, config.num_layers) == (
        hidden, ffn, LAYERS)
    assert config.num_heads == heads  # the reference head size, 64
    assert (config.dtype, config.scan_layers) == ('float32', False)


def test_a_given_head_count_replaces_the_reference_rule(original):
  prefix, tensors = original
  disc_config, disc_params, gen_config, _ = read(prefix, num_heads=4, generator_num_heads=2)
  assert (disc_config.num_heads, gen_config.num_heads) == (4, 2)
  query = disc_params['encoder']['layer_0']['attention']['query']['kernel']
  assert query.shape == (H, 4, H // 4)
  np.testing.assert_array_equal(
      query.reshape(H, H), tensors['electra/encoder/layer_0/attention/self/query/kernel'])


def test_a_head_count_that_does_not_divide_the_width_is_refused(original):
  prefix, _ = original
  with pytest.raises(UserError, match='hidden size 128 is not divisible by 3 heads.*--num_heads'):
    read(prefix, num_heads=3)


# ---- Where each tensor lands -----------------------------------------------------------------

def _our_paths(network, scope):
  """The original's name -> (our path, how ours reshapes it), for one network of `original`."""
  hidden = H if network == 'discriminator' else H_GEN
  heads = 2 if network == 'discriminator' else 1
  d = hidden // heads
  mapping = {}
  for name in original_names():
    ours = None
    if name.startswith('electra/embeddings/'):
      ours = name[len('electra/'):]
    elif name.startswith(f'{scope}/'):
      ours = name[len(scope) + 1:]
    elif name.startswith(f'{network}_predictions/'):
      ours = name
    if ours is None:
      continue
    shape = None
    ours = ours.replace('/gamma', '/scale').replace('/beta', '/bias')
    ours = ours.replace('attention/self/', 'attention/')
    ours = ours.replace('attention/output/dense', 'attention/output')
    ours = ours.replace('attention/output/LayerNorm', 'attention_LayerNorm')
    ours = ours.replace('intermediate/dense', 'intermediate')
    ours = ours.replace('output/dense', 'output').replace('output/LayerNorm', 'output_LayerNorm')
    ours = ours.replace('dense_1/', 'dense_prediction/')
    ours = ours.replace('generator_predictions/output_bias', 'generator_lm_head/bias')
    if any(f'attention/{p}/' in ours for p in ('query', 'key', 'value')):
      shape = (hidden, heads, d) if ours.endswith('kernel') else (heads, d)
    elif '/attention/output/kernel' in ours:
      shape = (heads, d, hidden)
    mapping[name] = (ours, shape)
  return mapping


@pytest.mark.parametrize('network', ['discriminator', 'generator'])
def test_every_original_tensor_lands_at_our_path_with_its_values(original, network):
  prefix, tensors = original
  disc_config, disc_params, gen_config, gen_params = read(prefix)
  params = disc_params if network == 'discriminator' else gen_params
  mapping = _our_paths(network, 'electra' if network == 'discriminator' else 'generator')
  for name, (path, shape) in mapping.items():
    value = at(params, path)
    assert value.dtype == np.float32, name
    want = tensors[name] if shape is None else tensors[name].reshape(shape)
    np.testing.assert_array_equal(value, want, err_msg=f'{name} -> {path}')
  # Nothing else: the tree holds exactly those tensors, and it is what our network applies.
  names = {param_trees.path_name(p) for p, _ in jax.tree_util.tree_leaves_with_path(params)}
  assert names == {path for path, _ in mapping.values()}
  cls, config = ((model_lib.Discriminator, disc_config) if network == 'discriminator'
                 else (model_lib.Generator, gen_config))
  ids = np.zeros((1, 8), np.int32)
  args = (ids, ids, ids) + ((np.zeros((1, 2), np.int32),) if cls is model_lib.Generator else ())
  fresh = jax.eval_shape(
      lambda: nn.meta.unbox(cls(config).init(jax.random.key(0), *args)['params']))
  assert jax.tree.map(np.shape, params) == jax.tree.map(lambda x: x.shape, fresh)


def test_the_generator_shares_the_discriminators_tables(original):
  prefix, tensors = original
  _, disc_params, _, gen_params = read(prefix)
  for table in ('word_embeddings', 'position_embeddings', 'token_type_embeddings'):
    want = tensors[f'electra/embeddings/{table}']
    np.testing.assert_array_equal(disc_params['embeddings'][table], want)
    np.testing.assert_array_equal(gen_params['embeddings'][table], want)


def test_an_untied_generator_reads_its_own_tables(tmp_path):
  tensors = random_tensors(original_names(untied=True), seed=1)
  prefix = write_tf1_checkpoint(tmp_path / 'model.ckpt', tensors)
  _, disc_params, gen_config, gen_params = read(prefix)
  assert gen_config.embedding_size == H_GEN
  assert 'embeddings_project' not in gen_params
  np.testing.assert_array_equal(gen_params['embeddings']['word_embeddings'],
                                tensors['generator/embeddings/word_embeddings'])
  np.testing.assert_array_equal(disc_params['embeddings']['word_embeddings'],
                                tensors['electra/embeddings/word_embeddings'])


def test_a_discriminator_alone_has_no_generator(tmp_path):
  prefix = write_tf1_checkpoint(tmp_path / 'disc.ckpt',
                                random_tensors(original_names(generator=False)))
  disc_config, disc_params, gen_config, gen_params = read(prefix)
  assert gen_config is None and gen_params is None
  assert disc_config.hidden_size == H and 'discriminator_predictions' in disc_params


def test_tensors_outside_the_networks_are_ignored(tmp_path):
  tensors = random_tensors(original_names(generator=False))
  tensors['some_other_model/dense/kernel'] = np.ones((2, 2), np.float32)
  prefix = write_tf1_checkpoint(tmp_path / 'extra.ckpt', tensors)
  _, disc_params, _, _ = read(prefix)
  assert 'some_other_model' not in disc_params


# ---- Refusals --------------------------------------------------------------------------------

def test_a_checkpoint_that_is_not_electras_is_refused(tmp_path):
  prefix = write_tf1_checkpoint(tmp_path / 'bert.ckpt', {
      'bert/embeddings/word_embeddings': np.zeros((V, E), np.float32),
      'bert/encoder/layer_0/attention/self/query/kernel': np.zeros((E, E), np.float32)})
  with pytest.raises(UserError, match=r'is not an ELECTRA TF1 checkpoint: it has no '
                     r'electra/embeddings/word_embeddings \(it has e\.g\. \[.bert/'):
    read(prefix)
  assert not tf1.is_tf1_checkpoint(str(tmp_path / 'nothing'))
  assert tf1.is_tf1_checkpoint(prefix)


def test_an_electra_checkpoint_without_layers_is_refused(tmp_path):
  prefix = write_tf1_checkpoint(tmp_path / 'tables.ckpt', random_tensors(_tables('electra', E)))
  with pytest.raises(UserError, match='No electra/encoder/layer_0/... tensors'):
    read(prefix)


def test_a_missing_tensor_is_named(tmp_path):
  tensors = random_tensors(original_names())
  del tensors['generator_predictions/output_bias']
  prefix = write_tf1_checkpoint(tmp_path / 'partial.ckpt', tensors)
  with pytest.raises(UserError, match=r'no tensor generator_predictions/output_bias '
                     r'\(shape \(50,\) expected\)'):
    read(prefix)


def test_a_tensor_of_the_wrong_shape_is_named(tmp_path):
  tensors = random_tensors(original_names(generator=False))
  tensors['electra/encoder/layer_1/output/dense/bias'] = np.zeros((H + 1,), np.float32)
  prefix = write_tf1_checkpoint(tmp_path / 'shape.ckpt', tensors)
  with pytest.raises(UserError, match=r'Tensor electra/encoder/layer_1/output/dense/bias has '
                     r'shape \(129,\) .* imply \(128,\)'):
    read(prefix)


def test_an_unknown_electra_tensor_is_refused_rather_than_lost(tmp_path):
  tensors = random_tensors(original_names(generator=False))
  tensors['electra/encoder/layer_0/attention/self/rel_bias'] = np.zeros((H,), np.float32)
  prefix = write_tf1_checkpoint(tmp_path / 'unknown.ckpt', tensors)
  with pytest.raises(UserError, match=r"would be lost: \['electra/encoder/layer_0/attention/self/"
                     r"rel_bias'\]"):
    read(prefix)


def test_a_missing_or_damaged_checkpoint_is_named(tmp_path):
  with pytest.raises(UserError, match=r'nothing\.index does not exist: give the TF1 checkpoint '
                     'prefix'):
    read(str(tmp_path / 'nothing'))
  (tmp_path / 'broken.index').write_bytes(b'not an index')
  with pytest.raises(UserError, match='broken cannot be read as a TF1 checkpoint'):
    read(str(tmp_path / 'broken'))


def test_base_config_fields_that_are_not_sizes_are_kept(original):
  prefix, _ = original
  base = default_config.get_config().model
  base.layer_norm_eps = 1e-5
  base.hidden_dropout_prob = 0.0
  disc_config, _, _, _ = tf1.read_tf1_checkpoint(prefix, base)
  assert (disc_config.layer_norm_eps, disc_config.hidden_dropout_prob) == (1e-5, 0.0)
  assert isinstance(disc_config, ml_collections.ConfigDict)
  assert base.hidden_size == 256  # the caller's config is not changed

"""Tests for electra_jax.core.model: shapes, sharding, scan/remat, dtypes, sharing, split/merge."""

import functools

import flax.linen as nn
import jax
import jax.numpy as jnp
import ml_collections
import numpy as np
import pytest
from jax.sharding import Mesh

from electra_jax.core import model as model_lib
from electra_jax.core import param_trees
from electra_jax.core import schema
from electra_jax.parallel import sharding
from electra_jax.spec import validate
from model_configs import tiny_model_config  # tests/model_configs.py

VOCAB, LENGTH, PREDICTIONS = 100, 16, 4
PARAM_AXES = {'vocab', 'embed', 'mlp', 'heads', 'kv', 'layers', None}
RULES = (('batch', ('data', 'fsdp')), ('length', None), ('act_embed', None),
         ('act_heads', 'tensor'), ('act_mlp', 'tensor'), ('act_vocab', None), ('embed', 'fsdp'),
         ('heads', 'tensor'), ('mlp', 'tensor'), ('kv', None), ('vocab', None))


def tiny_config(embedding_size=32, hidden_size=64, **overrides):
  return tiny_model_config(**{'vocab_size': VOCAB, 'embedding_size': embedding_size,
                              'hidden_size': hidden_size, **overrides})


def make_inputs(batch=2, seed=0):
  rng = np.random.default_rng(seed)
  input_ids = rng.integers(1, VOCAB, (batch, LENGTH)).astype(np.int32)
  token_type_ids = (np.arange(LENGTH) >= LENGTH // 2).astype(np.int32)[None].repeat(batch, 0)
  attention_mask = np.ones((batch, LENGTH), np.int32)
  attention_mask[0, LENGTH - 5:] = 0  # padding in the first example
  input_ids[attention_mask == 0] = 0
  positions = np.stack([rng.choice(np.arange(1, LENGTH - 5), PREDICTIONS, replace=False)
                        for _ in range(batch)]).astype(np.int32)
  return (jnp.asarray(input_ids), jnp.asarray(token_type_ids), jnp.asarray(attention_mask),
          jnp.asarray(positions))


def init_network(cls, config, seed=0):
  ids, types, mask, positions = make_inputs()
  args = (ids, types, mask, positions) if cls is model_lib.Generator else (ids, types, mask)
  return cls(config).init({'params': jax.random.key(seed)}, *args)['params']


def test_generator_config_follows_the_reference_rule():
  small = validate.generator_config(tiny_config(128, 256, num_heads=4, intermediate_size=1024),
                                     0.25)
  assert (small.hidden_size, small.num_heads, small.intermediate_size) == (64, 1, 256)
  base = validate.generator_config(tiny_config(768, 768, num_heads=12), 1 / 3)
  assert (base.hidden_size, base.num_heads, base.intermediate_size) == (256, 4, 1024)
  assert base.embedding_size == 768 and base.num_layers == 2 and base.vocab_size == VOCAB


def original_generator_config(bert_config, generator_hidden_size, generator_layers=1.0):
  """`get_generator_config` of the original's `run_pretraining.py`, on plain dicts."""
  gen_config = dict(bert_config)
  gen_config['hidden_size'] = int(round(bert_config['hidden_size'] * generator_hidden_size))
  gen_config['num_hidden_layers'] = int(round(bert_config['num_hidden_layers'] *
                                              generator_layers))
  gen_config['intermediate_size'] = 4 * gen_config['hidden_size']
  gen_config['num_attention_heads'] = max(1, gen_config['hidden_size'] // 64)
  return gen_config


@pytest.mark.parametrize('hidden, fraction', [(256, 0.25), (768, 1 / 3), (768, 0.33333),
                                              (1024, 0.25), (448, 61 / 448), (100, 0.335)])
def test_generator_size_is_the_originals(hidden, fraction):
  """int(round(H * fraction)): the original's own 0.33333 gives base 256, not int()'s 255."""
  config = tiny_config(128, hidden, num_heads=hidden // 64 if hidden % 64 == 0 else 1)
  expected = original_generator_config(
      {'hidden_size': hidden, 'num_hidden_layers': 2, 'intermediate_size': 4 * hidden,
       'num_attention_heads': config.num_heads}, fraction)
  for sharing in schema.EMBEDDING_SHARING:
    gen = validate.generator_config(config, fraction, sharing)
    assert (gen.hidden_size, gen.num_layers, gen.intermediate_size, gen.num_heads) == (
        expected['hidden_size'], expected['num_hidden_layers'], expected['intermediate_size'],
        expected['num_attention_heads'])
    # Untied ('none', the original's untied_generator_embeddings: embedding_size=None) tables
    # are the generator's own width; shared tables keep the discriminator's E.
    assert gen.embedding_size == (gen.hidden_size if sharing == 'none' else 128)


def test_untied_generator_has_its_own_tables_of_its_own_width_and_no_projection():
  config = tiny_config(embedding_size=32, hidden_size=64)
  gen_config = validate.generator_config(config, 0.75, 'none')
  model = model_lib.ElectraPretrainer(config, gen_config, 'none')
  joint = nn.meta.unbox(jax.eval_shape(
      lambda: model_lib.init_pretrainer_params(model, jax.random.key(0), LENGTH, PREDICTIONS)))
  assert 'shared_embeddings' not in joint
  generator, discriminator = joint['generator'], joint['discriminator']
  assert generator['embeddings']['word_embeddings'].shape == (VOCAB, 48)
  assert generator['embeddings']['position_embeddings'].shape == (32, 48)
  assert 'embeddings_project' not in generator
  assert generator['generator_predictions']['dense']['kernel'].shape == (48, 48)
  assert discriminator['embeddings']['word_embeddings'].shape == (VOCAB, 32)
  assert discriminator['embeddings_project']['kernel'].shape == (32, 64)


def test_invalid_configs_are_rejected_with_the_field_name():
  # Checked where a model config enters (the run spec, the HF loader, fine-tuning's start), not
  # inside the traced model: the rules are `spec.validate`'s.
  with pytest.raises(ValueError, match='num_heads'):
    validate.validate_model_config(tiny_config(num_heads=3))
  with pytest.raises(ValueError, match='dtype'):
    validate.validate_model_config(tiny_config(dtype='float16'))
  with pytest.raises(ValueError, match='embedding_sharing'):
    validate.generator_config(tiny_config(), 0.5, 'tied')


@pytest.mark.parametrize('embedding_size,has_project', [(32, True), (64, False)])
def test_embeddings_project_exists_only_when_sizes_differ(embedding_size, has_project):
  params = init_network(model_lib.Discriminator, tiny_config(embedding_size))
  assert ('embeddings_project' in params) == has_project
  ids, types, mask, _ = make_inputs()
  logits = model_lib.Discriminator(tiny_config(embedding_size)).apply(
      {'params': params}, ids, types, mask)
  assert logits.shape == (2, LENGTH) and logits.dtype == jnp.float32


def tf_glorot_uniform_limit(fan_in, fan_out):
  """`tf.glorot_uniform_initializer` (TF's default for `tf.layers.dense`): U(-limit, limit)."""
  return np.sqrt(6.0 / (fan_in + fan_out))


def test_initialisers_are_the_originals():
  """`embeddings_project` and the discriminator's final dense(1) are built by the original with
  `tf.layers.dense` and no initializer (Glorot-uniform); every other weight is
  `truncated_normal(0.02)`, which never leaves +-2 sigma. Biases and the LN shift are 0."""
  params = jax.tree.map(np.asarray, nn.meta.unbox(init_network(
      model_lib.Discriminator, tiny_config(embedding_size=32, hidden_size=128, num_heads=2))))
  glorot = {('embeddings_project', 'kernel'): (32, 128),
            ('discriminator_predictions', 'dense_prediction', 'kernel'): (128, 1)}
  for path, leaf in jax.tree_util.tree_flatten_with_path(params)[0]:
    name = tuple(str(getattr(k, 'key', k)) for k in path)
    if name in glorot:
      assert leaf.shape == glorot[name]
      limit = tf_glorot_uniform_limit(*leaf.shape)
      assert np.abs(leaf).max() <= limit, name
      assert np.abs(leaf).max() > 0.9 * limit, name  # spread over the whole range
      np.testing.assert_allclose(leaf.std(), limit / np.sqrt(3), rtol=0.25, err_msg=str(name))
    elif name[-1] == 'bias':
      assert not leaf.any(), name
    elif name[-1] == 'scale':
      assert (leaf == 1).all(), name
    else:
      assert np.abs(leaf).max() <= 2 * 0.02 + 1e-7, name
      assert leaf.std() > 0.01, name


def test_every_param_has_logical_axes_and_is_float32():
  config = tiny_config(scan_layers=True)
  model = model_lib.ElectraPretrainer(config, validate.generator_config(config, 0.5), 'gdes')
  boxed = jax.eval_shape(
      lambda: model_lib.init_pretrainer_params(model, jax.random.key(0), LENGTH, PREDICTIONS))
  leaves = jax.tree.leaves(boxed, is_leaf=lambda x: isinstance(x, nn.Partitioned))
  assert leaves and all(isinstance(leaf, nn.Partitioned) for leaf in leaves)
  for leaf in leaves:
    assert set(leaf.names) <= PARAM_AXES, leaf.names
    assert len(leaf.names) == leaf.value.ndim and leaf.value.dtype == jnp.float32


def test_sharded_init_and_forward_on_a_mesh():
  """Params created sharded via logical rules; activation constraints hold on a 2x2x2 mesh."""
  config = tiny_config()
  model = model_lib.ElectraPretrainer(config, validate.generator_config(config, 0.5), 'shared')
  mesh = Mesh(np.array(jax.devices()[:8]).reshape(2, 2, 2), ('data', 'fsdp', 'tensor'))
  init = lambda: model_lib.init_pretrainer_params(model, jax.random.key(0), LENGTH, PREDICTIONS)
  # The generator has one head: a tensor axis of 2 cannot split it, so it must be replicated.
  shardings = sharding.param_shardings(jax.eval_shape(init), mesh, RULES)
  with sharding.mesh_scope(mesh, RULES):
    params = jax.jit(init, out_shardings=shardings)()
    ids, types, mask, _ = make_inputs(batch=4)
    logits = jax.jit(lambda p: model.apply({'params': p}, ids, types, mask,
                                           method=model.discriminator_logits))(params)
  kernel = params['discriminator']['encoder']['layer_0']['intermediate']['kernel'].value
  assert kernel.sharding.spec == jax.sharding.PartitionSpec('fsdp', 'tensor')
  query = params['generator']['encoder']['layer_0']['attention']['query']['kernel'].value
  assert query.shape[1] == 1
  assert query.sharding.spec == jax.sharding.PartitionSpec('fsdp', None, None)
  unsharded = model.apply({'params': jax.device_get(params)}, ids, types, mask,
                          method=model.discriminator_logits)
  np.testing.assert_allclose(logits, unsharded, atol=1e-5)


def test_generator_projects_to_the_vocabulary_only_at_masked_positions():
  config = tiny_config()
  params = init_network(model_lib.Generator, config)
  ids, types, mask, positions = make_inputs()
  apply = lambda p, pos: model_lib.Generator(config).apply({'params': p}, ids, types, mask, pos)
  logits = apply(params, positions)
  assert logits.shape == (2, PREDICTIONS, VOCAB) and logits.dtype == jnp.float32
  # Same numbers as projecting every position and gathering afterwards.
  all_positions = jnp.broadcast_to(jnp.arange(LENGTH, dtype=jnp.int32), (2, LENGTH))
  full = apply(params, all_positions)
  np.testing.assert_allclose(logits, jnp.take_along_axis(full, positions[..., None], axis=1),
                             atol=1e-6)
  # No [batch, length, vocab] array is ever built.
  jaxpr = jax.make_jaxpr(apply)(params, positions)
  shapes = {tuple(v.aval.shape) for eqn in jaxpr.jaxpr.eqns for v in eqn.outvars}
  assert (2, LENGTH, VOCAB) not in shapes and (2, PREDICTIONS, VOCAB) in shapes


def test_padding_tokens_do_not_change_real_positions():
  config = tiny_config()
  params = init_network(model_lib.Discriminator, config)
  ids, types, mask, _ = make_inputs()
  apply = lambda i: model_lib.Discriminator(config).apply({'params': params}, i, types, mask)
  garbage = jnp.where(mask == 0, 7, ids)
  real = mask == 1
  np.testing.assert_allclose(apply(ids)[real], apply(garbage)[real], atol=1e-6)


def test_scan_layers_and_remat_give_the_same_logits_and_gradients():
  ids, types, mask, _ = make_inputs()
  params = nn.meta.unbox(init_network(model_lib.Discriminator, tiny_config(), seed=1))

  def logits_and_grads(p, scan, remat):
    disc = model_lib.Discriminator(tiny_config(scan_layers=scan, remat=remat))
    logits = lambda q: disc.apply({'params': q}, ids, types, mask)
    return logits(p), jax.grad(lambda q: jnp.sum(jnp.sin(logits(q))))(p)

  logits_and_grads = jax.jit(logits_and_grads, static_argnums=(1, 2))
  reference, reference_grads = logits_and_grads(params, False, 'none')
  for scan, remat in [(True, 'none'), (True, 'dots'), (False, 'full')]:
    p = param_trees.to_scanned_layers(params) if scan else params
    logits, grads = logits_and_grads(p, scan, remat)
    np.testing.assert_allclose(logits, reference, atol=1e-5)
    jax.tree.map(lambda g, r: np.testing.assert_allclose(g, r, atol=1e-5),
                 param_trees.to_unscanned_layers(grads), reference_grads)
  stacked = param_trees.to_scanned_layers(params)['encoder']['layers']
  assert stacked['intermediate']['kernel'].shape == (2, 64, 128)
  roundtrip = param_trees.to_unscanned_layers(param_trees.to_scanned_layers(params))
  jax.tree.map(np.testing.assert_array_equal, roundtrip, params)


@pytest.mark.parametrize('dtype', ['float32', 'bfloat16'])
def test_the_tied_projection_has_autodiffs_gradients(dtype):
  # tied_output_logits writes its own backward pass (for XLA:CPU); it must be autodiff's.
  keys = jax.random.split(jax.random.key(0), 4)
  hidden = jax.random.normal(keys[0], (3, 5, 32))
  tables = {'word_embeddings': jax.random.normal(keys[1], (101, 32))}
  bias = jax.random.normal(keys[2], (101,))
  cotangent = jax.random.normal(keys[3], (3, 5, 101))
  config = ml_collections.ConfigDict({'dtype': dtype})

  def autodiff(hidden, tables, bias):
    compute = model_lib.compute_dtype(dtype)
    return jnp.einsum('bpe,ve->bpv', hidden.astype(compute),
                      tables['word_embeddings'].astype(compute),
                      preferred_element_type=jnp.float32) + bias

  ours = functools.partial(model_lib.tied_output_logits, config)
  got_logits, got_vjp = jax.vjp(ours, hidden, tables, bias)
  want_logits, want_vjp = jax.vjp(autodiff, hidden, tables, bias)
  np.testing.assert_array_equal(got_logits, want_logits)
  tolerance = 1e-5 if dtype == 'float32' else 2e-2
  for got, want in zip(jax.tree.leaves(got_vjp(cotangent)), jax.tree.leaves(want_vjp(cotangent))):
    assert got.dtype == want.dtype and got.shape == want.shape
    np.testing.assert_allclose(got, want, rtol=tolerance, atol=tolerance * np.abs(want).max())


def test_bfloat16_compute_keeps_float32_params_and_outputs():
  ids, types, mask, positions = make_inputs()
  params = init_network(model_lib.Generator, tiny_config())
  f32 = model_lib.Generator(tiny_config()).apply({'params': params}, ids, types, mask, positions)
  bf16 = model_lib.Generator(tiny_config(dtype='bfloat16')).apply(
      {'params': params}, ids, types, mask, positions)
  assert bf16.dtype == jnp.float32 and bool(jnp.all(jnp.isfinite(bf16)))
  assert 0 < float(jnp.max(jnp.abs(bf16 - f32))) < 0.1
  disc_params = init_network(model_lib.Discriminator, tiny_config(dtype='bfloat16'))
  assert all(x.dtype == jnp.float32 for x in jax.tree.leaves(nn.meta.unbox(disc_params)))


def test_dropout_is_active_only_when_not_deterministic():
  config = tiny_config()
  params = init_network(model_lib.Discriminator, config)
  ids, types, mask, _ = make_inputs()
  disc = model_lib.Discriminator(config)
  a = disc.apply({'params': params}, ids, types, mask, False, rngs={'dropout': jax.random.key(1)})
  b = disc.apply({'params': params}, ids, types, mask, False, rngs={'dropout': jax.random.key(2)})
  c = disc.apply({'params': params}, ids, types, mask)
  assert not np.allclose(a, b) and not np.allclose(a, c)
  np.testing.assert_array_equal(c, disc.apply({'params': params}, ids, types, mask))


def test_micro_batches_give_the_same_logits_as_the_full_batch():
  config = tiny_config()
  params = init_network(model_lib.Discriminator, config)
  ids, types, mask, _ = make_inputs(batch=4)
  apply = lambda s: model_lib.Discriminator(config).apply(
      {'params': params}, ids[s], types[s], mask[s])
  np.testing.assert_allclose(jnp.concatenate([apply(slice(0, 2)), apply(slice(2, 4))]),
                             apply(slice(0, 4)), atol=1e-6)


@pytest.mark.parametrize('sharing', schema.EMBEDDING_SHARING)
def test_split_gives_standalone_networks_and_merge_inverts_it(sharing):
  config = tiny_config()
  gen_config = validate.generator_config(config, 0.5, sharing)
  model = model_lib.ElectraPretrainer(config, gen_config, sharing)
  joint = nn.meta.unbox(
      model_lib.init_pretrainer_params(model, jax.random.key(2), LENGTH, PREDICTIONS))
  if sharing == 'gdes':  # a trained delta, so that split really has to add it
    joint['embeddings_delta'] = jax.tree.map(lambda x: x + 0.01, joint['embeddings_delta'])
  ids, types, mask, positions = make_inputs()
  parts = param_trees.split_params(joint, sharing)
  np.testing.assert_allclose(
      model_lib.Discriminator(config).apply({'params': parts['discriminator']}, ids, types, mask),
      model.apply({'params': joint}, ids, types, mask, method=model.discriminator_logits),
      atol=1e-6)
  np.testing.assert_allclose(
      model_lib.Generator(gen_config).apply({'params': parts['generator']}, ids, types, mask,
                                            positions),
      model.apply({'params': joint}, ids, types, mask, positions, method=model.generator_logits),
      atol=1e-6)
  merged = param_trees.merge_params(parts['discriminator'], parts['generator'], sharing)
  assert jax.tree.structure(merged) == jax.tree.structure(joint)
  resplit = param_trees.split_params(merged, sharing)
  jax.tree.map(np.testing.assert_array_equal, resplit['discriminator'], parts['discriminator'])
  if sharing == 'gdes':
    assert all(float(jnp.abs(x).max()) == 0 for x in jax.tree.leaves(merged['embeddings_delta']))

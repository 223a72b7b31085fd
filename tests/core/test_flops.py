"""Tests for electra_jax.core.flops: counts match the Flax model; FLOPs match XLA's own count."""

import math

import flax.linen as nn
import jax
import jax.numpy as jnp
import pytest

from electra_jax import startup
from electra_jax.core import flops
from electra_jax.core import model as model_lib
from electra_jax.core import objective
from electra_jax.core import param_trees
from electra_jax.core import schema
from electra_jax.spec import run as run_spec


def load_config(repo_root, name):
  return startup.load_config_file(repo_root / 'configs' / f'{name}.py')


def small_test_config(repo_root, embedding_size=64, sharing='shared'):
  config = load_config(repo_root, 'default')
  m = config.model
  m.vocab_size, m.embedding_size, m.hidden_size = 1000, embedding_size, 128
  m.num_layers, m.num_heads, m.intermediate_size, m.max_position_embeddings = 2, 2, 512, 64
  config.electra.generator_hidden_fraction = 0.5
  config.electra.embedding_sharing = sharing
  config.data.max_seq_length = 64
  return config


def param_counts(spec):
  return flops.param_counts(spec.discriminator, spec.generator, spec.embedding_sharing)


def count(tree):
  return sum(math.prod(x.shape) for x in jax.tree.leaves(tree))


@pytest.mark.parametrize('embedding_size', [64, 128])
@pytest.mark.parametrize('sharing', schema.EMBEDDING_SHARING)
def test_param_counts_match_the_model(repo_root, embedding_size, sharing):
  config = small_test_config(repo_root, embedding_size, sharing)
  spec = run_spec.load(config)
  model = spec.objective.build_model(spec)
  joint = nn.meta.unbox(jax.eval_shape(
      lambda: model_lib.init_pretrainer_params(model, jax.random.key(0), 64, 9)))
  counts = param_counts(spec)
  assert counts['total'] == count(joint)
  parts = jax.eval_shape(lambda j: param_trees.split_params(j, sharing), joint)
  assert counts['discriminator'] == count(parts['discriminator'])
  assert counts['generator'] == count(parts['generator'])
  assert counts['shared'] == (0 if sharing == 'none' else count(joint['shared_embeddings']))


def test_reference_sizes(repo_root):
  expected = {'small': 14e6, 'base': 110e6, 'large': 335e6}
  for name, reference in expected.items():
    disc = param_counts(run_spec.load(load_config(repo_root, name)))['discriminator']
    assert abs(disc - reference) / reference < 0.04, (name, disc)


def test_train_flops_agree_with_xla_cost_analysis(repo_root):
  config = small_test_config(repo_root)
  spec = run_spec.load(config)
  model = spec.objective.build_model(spec)
  length, predictions, batch_size = 64, spec.max_predictions, 4
  assert predictions == 9  # int((0.15 + 0.005) * 64)
  params = nn.meta.unbox(jax.eval_shape(
      lambda: model_lib.init_pretrainer_params(model, jax.random.key(0), length, predictions)))
  ones = jnp.ones((batch_size, length), jnp.int32)
  slots = jnp.zeros((batch_size, predictions), jnp.int32)
  batch = dict(input_ids=ones, attention_mask=ones, token_type_ids=ones * 0,
               masked_input_ids=ones, masked_lm_positions=slots, masked_lm_ids=slots,
               masked_lm_weights=jnp.ones((batch_size, predictions)))
  loss = lambda p: objective.pretraining_loss(
      model, p, batch, sample_rng=jax.random.split(jax.random.key(0), batch_size),
      dropout_rng=None, deterministic=True, electra_config=config.electra, compute_auc=False)[0]
  cost = jax.jit(jax.grad(loss)).lower(params).compile().cost_analysis()
  xla_per_token = cost['flops'] / (batch_size * length)
  # XLA also counts elementwise work (softmax, GELU, LayerNorm, sampling), which we leave out.
  ratio = spec.train_flops_per_token() / xla_per_token
  assert 0.88 < ratio <= 1.0, ratio

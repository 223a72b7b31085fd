"""Fine-tuning heads against the original's code: layouts, initialisers and the math, in numpy.

References (google-research/electra): `finetune/classification/classification_tasks.py`
(`ClassificationTask` / `RegressionTask.get_prediction_module`) and `finetune/qa/qa_tasks.py`
(`QATask.get_prediction_module`). Their dense layers have no `kernel_initializer`, so TF gives
them Glorot-uniform: U(-limit, limit), limit = sqrt(6 / (fan_in + fan_out)).
"""

import flax.linen as nn
import jax
import jax.numpy as jnp
import ml_collections
import numpy as np
import pytest

from electra_jax.finetune import model as task_model_lib

H, LENGTH = 64, 12


def encoder_config(**overrides):
  return ml_collections.ConfigDict(dict(
      vocab_size=50, embedding_size=32, hidden_size=H, num_layers=2, num_heads=2,
      intermediate_size=128, max_position_embeddings=32, type_vocab_size=2,
      hidden_dropout_prob=0.1, attention_dropout_prob=0.1, initializer_range=0.02,
      layer_norm_eps=1e-12, dtype='float32', param_dtype='float32', scan_layers=False,
      remat='none') | overrides)


def inputs(batch=3, seed=0):
  rng = np.random.default_rng(seed)
  ids = rng.integers(5, 50, (batch, LENGTH)).astype(np.int32)
  types = (np.arange(LENGTH) >= 5).astype(np.int32)[None].repeat(batch, 0)
  mask = np.ones((batch, LENGTH), np.int32)
  mask[0, -3:] = 0
  types[0, -3:] = 0
  return ids, types, mask


def init_and_apply(model, seed=0, **kwargs):
  """(numpy params, outputs, final encoder hidden states [batch, length, H])."""
  ids, types, mask = inputs()
  params = model.init({'params': jax.random.key(seed)}, ids, types, mask)['params']
  outputs, state = model.apply({'params': params}, ids, types, mask, capture_intermediates=(
      lambda module, _: module.name == 'encoder'), **kwargs)
  hidden = np.asarray(state['intermediates']['encoder']['__call__'][0])
  return jax.tree.map(np.asarray, nn.meta.unbox(params)), outputs, hidden


def tf_glorot_limit(kernel):
  return np.sqrt(6.0 / (kernel.shape[0] + kernel.shape[1]))


def assert_glorot(kernel, name):
  limit = tf_glorot_limit(kernel)
  assert np.abs(kernel).max() <= limit, name
  assert np.abs(kernel).max() > 0.5 * limit, name  # not a 0.02 truncated normal (max 0.04)


# ---- GLUE ---------------------------------------------------------------------------------------

@pytest.mark.parametrize('num_labels', [3, 1])
def test_default_classifier_is_the_originals_linear_head(num_labels):
  """`reprs = get_pooled_output()` (h[:, 0]); dropout; `tf.layers.dense(reprs, num_labels)`."""
  model = task_model_lib.TaskModel(encoder_config(), 'classification', num_labels)
  params, outputs, hidden = init_and_apply(model)
  head = params['classifier']
  assert set(head) == {'kernel', 'bias'}
  assert head['kernel'].shape == (H, num_labels) and head['bias'].shape == (num_labels,)
  assert_glorot(head['kernel'], 'classifier')
  assert not head['bias'].any()
  expected = hidden[:, 0] @ head['kernel'] + head['bias']  # eval: no dropout
  np.testing.assert_allclose(outputs['logits'], expected, rtol=1e-5, atol=1e-6)


def test_hf_classifier_head_is_the_switch():
  model = task_model_lib.TaskModel(encoder_config(), 'classification', 2, classifier_head='hf')
  params, outputs, hidden = init_and_apply(model)
  head = params['classifier']
  assert head['dense']['kernel'].shape == (H, H) and head['out_proj']['kernel'].shape == (H, 2)
  assert np.abs(head['dense']['kernel']).max() <= 0.04 + 1e-7  # the HF port's init
  inner = jax.nn.gelu(hidden[:, 0] @ head['dense']['kernel'] + head['dense']['bias'],
                      approximate=False)
  np.testing.assert_allclose(outputs['logits'],
                             inner @ head['out_proj']['kernel'] + head['out_proj']['bias'],
                             rtol=1e-5, atol=1e-6)
  with pytest.raises(ValueError, match='classifier_head'):
    init_and_apply(task_model_lib.TaskModel(encoder_config(), 'classification', 2,
                                            classifier_head='pooler'))

"""Fine-tuning heads against the original's code: layouts, initialisers and the math, in numpy.

References (google-research/electra): `finetune/classification/classification_tasks.py`
(`ClassificationTask` / `RegressionTask.get_prediction_module`) and `finetune/qa/qa_tasks.py`
(`QATask.get_prediction_module`). Their dense layers have no `kernel_initializer`, so TF gives
them Glorot-uniform: U(-limit, limit), limit = sqrt(6 / (fan_in + fan_out)).
"""

import flax.linen as nn
import jax
import numpy as np
import pytest

from electra_jax.finetune import model as task_model_lib
from model_configs import tiny_model_config  # tests/model_configs.py

H, LENGTH = 64, 12


def encoder_config(**overrides):
  return tiny_model_config(**{'vocab_size': 50, 'hidden_size': H, **overrides})


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


# ---- SQuAD: the original's joint head ------------------------------------------------------------

def original_qa_head(hidden, input_mask, segment_ids, p, beam_size, start_positions=None):
  """`QATask.get_prediction_module` (joint_prediction, answerable_classifier,
  answerable_uses_start_logits) in numpy, with the tile-and-concat of the original."""
  def log_softmax(x):
    x = x - x.max(-1, keepdims=True)
    return x - np.log(np.exp(x).sum(-1, keepdims=True))

  def gelu(x):
    return np.asarray(jax.nn.gelu(x, approximate=False))

  def top_k(x, k):  # tf.nn.top_k: descending, ties to the lower index
    index = np.argsort(-x, axis=-1, kind='stable')[..., :k]
    return np.take_along_axis(x, index, -1), index

  batch_size, seq_length, _ = hidden.shape
  answer_mask = input_mask.astype(np.float64) * segment_ids
  answer_mask = answer_mask + np.eye(seq_length)[0]
  start_logits = (hidden @ p['start']['kernel'] + p['start']['bias'])[..., 0]
  start_logits = start_logits + 1000.0 * (answer_mask - 1)
  start_log_probs = log_softmax(start_logits)
  start_top_log_probs, start_top_index = top_k(start_log_probs, beam_size)
  out = {}
  if start_positions is None:
    end_features = np.repeat(hidden[:, None], beam_size, axis=1)  # batch, beam, length, hidden
    start_index = np.eye(seq_length)[start_top_index]  # batch, beam, length
    start_features = (hidden[:, None] * start_index[..., None]).sum(-2)  # batch, beam, hidden
    start_features = np.repeat(start_features[:, :, None], seq_length, axis=2)
  else:
    start_index = np.eye(seq_length)[start_positions]
    start_features = (start_index[..., None] * hidden).sum(1)
    start_features = np.repeat(start_features[:, None], seq_length, axis=1)
    end_features = hidden
  final_repr = np.concatenate([start_features, end_features], -1)
  final_repr = gelu(final_repr @ p['end_hidden']['kernel'] + p['end_hidden']['bias'])
  end_logits = (final_repr @ p['end']['kernel'] + p['end']['bias'])[..., 0]
  if start_positions is not None:
    out['end_logits'] = end_logits + 1000.0 * (answer_mask - 1)
    out['start_logits'] = start_logits
  else:
    end_logits = end_logits + (1000.0 * (answer_mask - 1))[:, None]
    out['end_top_log_probs'], out['end_top_index'] = top_k(log_softmax(end_logits), beam_size)
    out['start_top_log_probs'], out['start_top_index'] = start_top_log_probs, start_top_index
  final_repr = hidden[:, 0]
  start_p = np.exp(log_softmax(start_logits))
  start_feature = (start_p[..., None] * hidden).sum(1)
  final_repr = np.concatenate([final_repr, start_feature], -1)
  final_repr = gelu(final_repr @ p['answerable_hidden']['kernel'] + p['answerable_hidden']['bias'])
  out['answerable_logits'] = (final_repr @ p['answerable']['kernel']
                              + p['answerable']['bias'])[:, 0]
  return out


def squad_model(beam_size=4, **overrides):
  return task_model_lib.TaskModel(encoder_config(**overrides), 'span', answerability=True,
                                  beam_size=beam_size)


def test_joint_head_layout_and_initialisers():
  params, _, _ = init_and_apply(squad_model())
  head = params['squad_head']
  shapes = {name: layer['kernel'].shape for name, layer in head.items()}
  assert shapes == {'start': (H, 1), 'end_hidden': (2 * H, 512), 'end': (512, 1),
                    'answerable_hidden': (2 * H, 512), 'answerable': (512, 1)}
  for name, layer in head.items():
    assert_glorot(layer['kernel'], name)
    assert not layer['bias'].any()
  assert not {'span_head', 'answerability_head'} & set(params)


def test_joint_head_beam_and_null_logit_are_the_originals():
  model = squad_model(beam_size=4)
  params, outputs, hidden = init_and_apply(model, seed=1)
  # Untrained heads give near-uniform logits: scale the head so the beam has clear winners.
  for layer in ('start', 'end'):
    params['squad_head'][layer]['kernel'] = params['squad_head'][layer]['kernel'] * 20
  ids, types, mask = inputs()
  outputs = jax.tree.map(np.asarray, model.apply({'params': params}, ids, types, mask))
  expected = original_qa_head(hidden.astype(np.float64), mask, types, params['squad_head'], 4)
  np.testing.assert_array_equal(outputs['start_top_index'], expected['start_top_index'])
  np.testing.assert_array_equal(outputs['end_top_index'], expected['end_top_index'])
  for key in ('start_top_log_probs', 'end_top_log_probs', 'answerable_logits'):
    np.testing.assert_allclose(outputs[key], expected[key], rtol=1e-4, atol=1e-4, err_msg=key)
  # Only [CLS] and the context (segment 1, not padding) can be chosen: the question is masked.
  allowed = (types * mask).astype(bool)
  allowed[:, 0] = True
  for row in range(3):
    assert allowed[row, outputs['start_top_index'][row]].all()
    assert allowed[row, outputs['end_top_index'][row]].all()

  # Training: the end logits come from the gold start's representation.
  gold = np.array([6, 0, 8], np.int32)
  trained = jax.tree.map(np.asarray, model.apply({'params': params}, ids, types, mask,
                                                 start_positions=gold))
  expected = original_qa_head(hidden.astype(np.float64), mask, types, params['squad_head'], 4,
                              start_positions=gold)
  real = (types * mask).astype(bool) | (np.arange(LENGTH) == 0)
  for key in ('start_logits', 'end_logits'):
    np.testing.assert_allclose(trained[key][real], expected[key][real], rtol=1e-4, atol=1e-3,
                               err_msg=key)
    assert (trained[key][~real] < -900).all()
  np.testing.assert_allclose(trained['answerable_logits'], expected['answerable_logits'],
                             rtol=1e-4, atol=1e-4)


def test_independent_head_is_the_switch():
  model = task_model_lib.TaskModel(encoder_config(), 'span', answerability=True,
                                   qa_head='independent')
  params, outputs, _ = init_and_apply(model)
  assert {'span_head', 'answerability_head'} <= set(params) and 'squad_head' not in params
  assert outputs['start_logits'].shape == (3, LENGTH)
  assert np.asarray(outputs['start_logits'])[0, 1] > -1e8  # only padding is masked here
  with pytest.raises(ValueError, match='qa_head'):
    init_and_apply(task_model_lib.TaskModel(encoder_config(), 'span', qa_head='xlnet'))

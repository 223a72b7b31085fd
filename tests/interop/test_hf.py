"""Equivalence with Hugging Face `transformers` (PyTorch, CPU) in both directions."""

import json
import os
import sys

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from electra_jax.core import model as model_lib
from electra_jax.core import param_trees
from electra_jax.interop import hf

torch = pytest.importorskip('torch')
transformers = pytest.importorskip('transformers')

VOCAB, LENGTH, PREDICTIONS = 100, 12, 3
SIZES = {'e_ne_h': dict(embedding_size=32, hidden_size=64),
         'e_eq_h': dict(embedding_size=48, hidden_size=48)}


def hf_config(embedding_size, hidden_size):
  return transformers.ElectraConfig(
      vocab_size=VOCAB, embedding_size=embedding_size, hidden_size=hidden_size,
      num_hidden_layers=2, num_attention_heads=2, intermediate_size=2 * hidden_size,
      max_position_embeddings=16, type_vocab_size=2)


def make_inputs():
  rng = np.random.default_rng(0)
  input_ids = rng.integers(1, VOCAB, (2, LENGTH)).astype(np.int64)
  token_type_ids = np.zeros((2, LENGTH), np.int64)
  token_type_ids[:, 6:] = 1
  attention_mask = np.ones((2, LENGTH), np.int64)
  attention_mask[1, 8:] = 0
  input_ids[attention_mask == 0] = 0
  positions = np.array([[1, 4, 9], [2, 3, 7]], np.int64)
  return input_ids, token_type_ids, attention_mask, positions


def hf_outputs(model, architecture):
  input_ids, token_type_ids, attention_mask, positions = make_inputs()
  with torch.no_grad():
    logits = model(input_ids=torch.from_numpy(input_ids),
                   token_type_ids=torch.from_numpy(token_type_ids),
                   attention_mask=torch.from_numpy(attention_mask)).logits.numpy()
  if architecture == 'generator':
    logits = np.take_along_axis(logits, positions[..., None], axis=1)
  return logits


def our_outputs(config, params, architecture):
  inputs = [jnp.asarray(x, jnp.int32) for x in make_inputs()]
  if architecture == 'discriminator':
    return np.asarray(model_lib.Discriminator(config).apply({'params': params}, *inputs[:3]))
  return np.asarray(model_lib.Generator(config).apply({'params': params}, *inputs))


def random_hf_model(architecture, sizes, seed=0):
  torch.manual_seed(seed)
  cls = (transformers.ElectraForPreTraining if architecture == 'discriminator'
         else transformers.ElectraForMaskedLM)
  model = cls(hf_config(**sizes)).eval()
  with torch.no_grad():  # perturb everything, so LayerNorm and bias mix-ups cannot hide
    for param in model.parameters():
      param.add_(0.05 * torch.randn_like(param))
  return model


def assert_close(ours, theirs, architecture):
  mask = make_inputs()[2].astype(bool)
  if architecture == 'discriminator':  # padded positions are undefined in both
    ours, theirs = ours[mask], theirs[mask]
  np.testing.assert_allclose(ours, theirs, atol=1e-4, rtol=1e-4)


@pytest.mark.parametrize('sizes', SIZES.values(), ids=SIZES.keys())
@pytest.mark.parametrize('architecture', ['discriminator', 'generator'])
def test_load_hf_checkpoint_gives_the_same_logits(tmp_path, architecture, sizes):
  hf_model = random_hf_model(architecture, sizes)
  hf_model.save_pretrained(tmp_path)
  assert (tmp_path / 'model.safetensors').exists()
  config, params = hf.load_pretrained(str(tmp_path))
  assert config.architecture == architecture
  assert config.embedding_size == sizes['embedding_size']
  assert ('embeddings_project' in params) == (sizes['embedding_size'] != sizes['hidden_size'])
  assert_close(our_outputs(config, params, architecture), hf_outputs(hf_model, architecture),
               architecture)


@pytest.mark.parametrize('sizes', SIZES.values(), ids=SIZES.keys())
@pytest.mark.parametrize('architecture', ['discriminator', 'generator'])
def test_saved_params_load_in_hf_with_the_same_logits(tmp_path, architecture, sizes):
  config = hf.model_config_from_hf(hf_config(**sizes).to_dict() | {
      'architectures': [hf._HF_NAMES[architecture]]})
  config.scan_layers = True  # save_pretrained must unstack scanned layers
  inputs = [jnp.asarray(x, jnp.int32) for x in make_inputs()]
  module = (model_lib.Discriminator(config) if architecture == 'discriminator'
            else model_lib.Generator(config))
  params = module.init(jax.random.key(0), *(inputs[:3] if architecture == 'discriminator'
                                            else inputs))['params']
  leaves, treedef = jax.tree.flatten(jax.tree.map(lambda x: x, params))
  keys = jax.random.split(jax.random.key(1), len(leaves))
  params = jax.tree.unflatten(treedef, [  # non-trivial biases and LayerNorms
      x + 0.05 * jax.random.normal(k, x.shape) for x, k in zip(leaves, keys)])
  ours = our_outputs(config, params, architecture)
  hf.save_pretrained(str(tmp_path), config, params)
  with open(tmp_path / 'config.json') as f:
    written = json.load(f)
  assert written['model_type'] == 'electra' and written['hidden_act'] == 'gelu'
  cls = (transformers.ElectraForPreTraining if architecture == 'discriminator'
         else transformers.ElectraForMaskedLM)
  hf_model, info = cls.from_pretrained(str(tmp_path), output_loading_info=True)
  assert not info['missing_keys'] and not info['unexpected_keys'], info
  assert_close(ours, hf_outputs(hf_model.eval(), architecture), architecture)
  # And back again, bit for bit.
  _, reloaded = hf.load_pretrained(str(tmp_path))
  jax.tree.map(np.testing.assert_array_equal, reloaded, param_trees.to_unscanned_layers(params))


def test_loading_needs_no_torch_for_safetensors(tmp_path, monkeypatch):
  random_hf_model('discriminator', SIZES['e_ne_h']).save_pretrained(tmp_path)
  monkeypatch.setitem(sys.modules, 'torch', None)  # any `import torch` now fails
  config, params = hf.load_pretrained(str(tmp_path))
  assert config.architecture == 'discriminator' and 'encoder' in params


def test_pytorch_bin_checkpoints_load_through_torch(tmp_path):
  hf_model = random_hf_model('generator', SIZES['e_ne_h'])
  state = {k: v.contiguous() for k, v in hf_model.state_dict().items()}  # tied head included
  torch.save(state, tmp_path / 'pytorch_model.bin')
  hf_model.config.architectures = ['ElectraForMaskedLM']
  hf_model.config.save_pretrained(tmp_path)
  config, params = hf.load_pretrained(str(tmp_path))
  assert_close(our_outputs(config, params, 'generator'), hf_outputs(hf_model, 'generator'),
               'generator')


def test_mismatched_shapes_name_the_tensor_and_both_shapes(tmp_path):
  random_hf_model('discriminator', SIZES['e_ne_h']).save_pretrained(tmp_path)
  with open(tmp_path / 'config.json') as f:
    config = json.load(f)
  config['intermediate_size'] = 96
  with open(tmp_path / 'config.json', 'w') as f:
    json.dump(config, f)
  with pytest.raises(ValueError, match=r'electra\.encoder\.layer\.0\.intermediate\.dense\.weight.*'
                     r'\(128, 64\).*\(96, 64\)'):
    hf.load_pretrained(str(tmp_path))


def test_architecture_must_be_known(tmp_path):
  random_hf_model('discriminator', SIZES['e_ne_h']).save_pretrained(tmp_path)
  with open(tmp_path / 'config.json') as f:
    config = json.load(f)
  config['architectures'] = ['ElectraModel']
  with open(tmp_path / 'config.json', 'w') as f:
    json.dump(config, f)
  with pytest.raises(ValueError, match='ElectraForPreTraining'):
    hf.load_pretrained(str(tmp_path))
  assert os.path.exists(tmp_path / 'model.safetensors')

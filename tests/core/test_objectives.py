"""The objectives (`electra_jax.core.objectives`, `electra.objective`): losses from the paper's
definitions in numpy, metrics, FLOPs, validation, and training on a 2x2x2 mesh with exact
resume."""

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np
import pytest

from electra_jax.configs import default
from electra_jax.core import model as model_lib
from electra_jax.core import objectives
from electra_jax.errors import UserError
from electra_jax.interop import export
from electra_jax.interop import pretrained as pretrained_lib
from electra_jax.pretraining import train
from electra_jax.spec import run as run_spec
from hf_reference import torch_logits  # tests/hf_reference.py
from small_run import read_metrics, small_config  # tests/small_run.py

VOCAB = 6
# One example of 6 positions: [CLS] a b c [SEP] pad. Slots: positions 1 and 3 used, one unused.
INPUT_IDS = np.array([[2, 5, 1, 4, 3, 0]], np.int32)
ATTENTION = np.array([[1, 1, 1, 1, 1, 0]], np.int32)
POSITIONS = np.array([[1, 3, 0]], np.int32)
SLOT_WEIGHTS = np.array([[1.0, 1.0, 0.0]], np.float32)
# The generator is (nearly) certain: slot 0 samples 0 (a replacement of 5), slot 1 samples 4
# (the original token, so it counts as original), the unused slot would sample 1.
SAMPLES = np.array([[0, 4, 1]], np.int32)
CORRUPTED = np.array([[2, 0, 1, 4, 3, 0]], np.int32)


def _batch():
  masked = INPUT_IDS.copy()
  masked[0, [1, 3]] = 1  # [MASK], say
  return {'input_ids': jnp.asarray(INPUT_IDS), 'attention_mask': jnp.asarray(ATTENTION),
          'token_type_ids': jnp.zeros_like(jnp.asarray(INPUT_IDS)),
          'masked_input_ids': jnp.asarray(masked), 'masked_lm_positions': jnp.asarray(POSITIONS),
          'masked_lm_ids': jnp.asarray(np.take_along_axis(INPUT_IDS, POSITIONS, 1)),
          'masked_lm_weights': jnp.asarray(SLOT_WEIGHTS)}


class FakeModel:
  """Stands in for a pretrainer: returns fixed outputs per method, records the inputs it saw."""
  generator_logits, discriminator_logits, main_outputs = 'generator', 'discriminator', 'main'

  def __init__(self, outputs):
    self.outputs, self.seen = outputs, {}

  def apply(self, variables, input_ids, *args, method, rngs=None):
    del variables, args, rngs
    self.seen[method] = np.asarray(input_ids)
    return self.outputs[method]


rng = np.random.default_rng(0)
GEN_LOGITS = rng.normal(size=(1, 3, VOCAB)).astype(np.float32)
GEN_LOGITS[0, np.arange(3), SAMPLES[0]] += 60.0  # sampling is then certain
DISC_LOGITS = rng.normal(size=(1, 6)).astype(np.float32)
MAIN_SLOT_LOGITS = rng.normal(size=(1, 3, VOCAB)).astype(np.float32)
MAIN_ALL_LOGITS = rng.normal(size=(1, 6, VOCAB)).astype(np.float32)
GATE_LOGITS = rng.normal(size=(1, 6)).astype(np.float32)


def _log_softmax(x):
  x = x - x.max(-1, keepdims=True)
  return x - np.log(np.exp(x).sum(-1, keepdims=True))


def _slot_nll(logits):
  """Mean cross-entropy over the used slots."""
  targets = np.take_along_axis(INPUT_IDS, POSITIONS, 1)
  nll = -np.take_along_axis(_log_softmax(logits), targets[..., None], -1)[..., 0]
  return (nll * SLOT_WEIGHTS).sum() / SLOT_WEIGHTS.sum()


def _loss(name, **electra):
  config = default.get_config().electra
  config.objective = name
  config.update(electra)
  model = FakeModel({'generator': jnp.asarray(GEN_LOGITS), 'discriminator': jnp.asarray(
      DISC_LOGITS), 'main': (jnp.asarray(MAIN_ALL_LOGITS), jnp.asarray(GATE_LOGITS))
      if name == 'all_tokens_mlm' else jnp.asarray(MAIN_SLOT_LOGITS)})
  loss, stats = objectives.named(name).loss(
      model, {}, _batch(), sample_rng=jax.random.split(jax.random.key(0), 1), dropout_rng=None,
      deterministic=True, electra_config=config)
  return float(loss), objectives.named(name).summarize(stats), model


def test_mlm_is_cross_entropy_on_the_used_slots_of_one_network():
  # The BERT baseline: the main network reads the masked input, no generator runs.
  loss, metrics, model = _loss('mlm')
  np.testing.assert_allclose(loss, _slot_nll(MAIN_SLOT_LOGITS), rtol=1e-6)
  assert set(model.seen) == {'main'}
  assert model.seen['main'][0, 1] == 1  # it saw the [MASK]ed input
  np.testing.assert_allclose(float(metrics['masked_lm_loss']), loss, rtol=1e-6)
  assert 'disc_auc' not in metrics


def test_electra_15_restricts_the_discriminator_loss_to_the_masked_positions():
  loss, metrics, model = _loss('electra_15')
  np.testing.assert_array_equal(model.seen['discriminator'], CORRUPTED)
  masked = np.array([[0, 1, 0, 1, 0, 0]], np.float32)  # used slots only: not the unused one at 0
  labels = (CORRUPTED != INPUT_IDS).astype(np.float32)  # position 1; position 3 was guessed
  z = DISC_LOGITS
  bce = np.maximum(z, 0) - z * labels + np.log1p(np.exp(-np.abs(z)))
  disc = (bce * masked).sum() / masked.sum()
  np.testing.assert_allclose(loss, _slot_nll(GEN_LOGITS) + 50.0 * disc, rtol=1e-5)
  np.testing.assert_allclose(float(metrics['disc_loss']), disc, rtol=1e-5)
  np.testing.assert_allclose(float(metrics['replaced_fraction']), 0.5)  # 1 of 2 masked


def test_replace_mlm_trains_the_main_network_on_generator_samples():
  loss, metrics, model = _loss('replace_mlm')
  np.testing.assert_array_equal(model.seen['main'], CORRUPTED)  # samples, not [MASK]
  np.testing.assert_allclose(loss, _slot_nll(GEN_LOGITS) + _slot_nll(MAIN_SLOT_LOGITS),
                             rtol=1e-5)
  np.testing.assert_allclose(float(metrics['main_mlm_loss']), _slot_nll(MAIN_SLOT_LOGITS),
                             rtol=1e-5)


def test_all_tokens_mlm_uses_the_copy_mechanism_on_every_real_token():
  loss, metrics, model = _loss('all_tokens_mlm')
  np.testing.assert_array_equal(model.seen['main'], CORRUPTED)
  copy = 1.0 / (1.0 + np.exp(-GATE_LOGITS))  # D(x~, t)
  softmax = np.exp(_log_softmax(MAIN_ALL_LOGITS))
  p_true = np.take_along_axis(softmax, INPUT_IDS[..., None], -1)[..., 0]
  p = copy * (CORRUPTED == INPUT_IDS) + (1 - copy) * p_true  # the paper's output distribution
  real = ATTENTION.astype(np.float32)
  main = (-np.log(p) * real).sum() / real.sum()
  np.testing.assert_allclose(loss, _slot_nll(GEN_LOGITS) + main, rtol=1e-5)
  np.testing.assert_allclose(float(metrics['main_mlm_loss']), main, rtol=1e-5)
  # The gate ranks tokens as a detector: the one replaced token against the 4 real originals.
  replaced_score = -GATE_LOGITS[0, 1]
  originals = -GATE_LOGITS[0, [0, 2, 3, 4]]
  np.testing.assert_allclose(float(metrics['disc_auc']), np.mean(replaced_score > originals),
                             atol=1e-3)


def test_gen_weight_scales_the_generator_of_the_mlm_ablations():
  light, _, _ = _loss('replace_mlm', gen_weight=0.5)
  np.testing.assert_allclose(light, 0.5 * _slot_nll(GEN_LOGITS) + _slot_nll(MAIN_SLOT_LOGITS),
                             rtol=1e-5)


def test_unknown_objective_is_refused_naming_the_field():
  config = default.get_config()
  config.electra.objective = 'bert'
  with pytest.raises(UserError, match=r'config\.electra\.objective=.bert.*electra'):
    train.spec_and_mesh(config, jax.devices()[:1], 1)


def test_flops_per_objective():
  config = default.get_config()
  per = {}
  for name in objectives.NAMES:
    config.electra.objective = name
    per[name] = run_spec.load(config).train_flops_per_token()
  assert per['electra_15'] == per['electra']  # same networks, restricted loss
  assert per['mlm'] < per['replace_mlm'] < per['all_tokens_mlm']
  # BERT and ELECTRA's discriminator are the same encoder; ELECTRA adds the small generator.
  config.electra.objective = 'mlm'
  spec = run_spec.load(config)
  assert spec.generator is None
  assert set(spec.objective.forward_flops_per_token(spec)) == {'discriminator'}


# ---- Training: 2x2x2 mesh == one device, and resume is exact ---------------------------------

def _objective_config(repo_root, name, **mesh):
  config = small_config(repo_root, **mesh)
  config.electra.objective = name
  config.train.checkpoint_every = 2
  return config


@pytest.mark.slow
@pytest.mark.parametrize('name', ['mlm', 'electra_15', 'replace_mlm', 'all_tokens_mlm'])
def test_objective_trains_the_same_on_a_mesh_and_resumes_exactly(repo_root, tmp_path, name):
  mesh_dir, one_dir = tmp_path / 'mesh', tmp_path / 'one'
  train.train_and_evaluate(_objective_config(repo_root, name, data=2, fsdp=2, tensor=2),
                           str(mesh_dir))
  # One device, stopped after 2 steps and resumed: the uninterrupted mesh run's losses.
  one_device = jax.devices()[:1]
  train.train_and_evaluate(_objective_config(repo_root, name), str(one_dir), devices=one_device,
                           stop_after=2)
  assert not (one_dir / 'COMPLETED').exists()
  train.train_and_evaluate(_objective_config(repo_root, name), str(one_dir), devices=one_device)
  mesh, one = read_metrics(mesh_dir), read_metrics(one_dir)
  assert [r['step'] for r in one] == [1, 2, 3]
  np.testing.assert_allclose([r['loss'] for r in one], [r['loss'] for r in mesh], rtol=2e-5)
  np.testing.assert_allclose([r['grad_norm'] for r in one], [r['grad_norm'] for r in mesh],
                             rtol=1e-4)
  assert np.isfinite([r['loss'] for r in mesh]).all()
  assert 'masked_lm_accuracy' in mesh[-1] and 'pflops' in mesh[-1]
  assert ('disc_auc' in mesh[-1]) == (name in ('electra_15', 'all_tokens_mlm'))
  assert ('main_mlm_accuracy' in mesh[-1]) == (name in ('replace_mlm', 'all_tokens_mlm'))
  # The checkpoint exports as the objective's classes: a masked LM as ElectraForMaskedLM.
  written = export.write_hf(pretrained_lib.load_checkpoint(str(mesh_dir)), str(tmp_path / 'hf'))
  expected = {'mlm': ['masked_lm'], 'electra_15': ['discriminator', 'generator']}.get(
      name, ['masked_lm', 'generator'])
  assert [p.rsplit('/', 1)[1] for p in written] == expected
  spec = run_spec.load(_objective_config(repo_root, name))
  expected_pflops = 3 * spec.train_flops_per_token() * 16 * 32
  np.testing.assert_allclose(mesh[-1]['pflops'], expected_pflops / 1e15, rtol=1e-6)


def test_a_run_saved_before_the_switch_resumes_as_electra():
  saved = {k: v for k, v in default.get_config().electra.to_dict().items() if k != 'objective'}
  config = default.get_config()
  train._check_same_run({'electra': saved}, config, '/tmp/x')  # noqa: SLF001 - no refusal
  config.electra.objective = 'mlm'
  with pytest.raises(UserError, match='objective'):
    train._check_same_run({'electra': saved}, config, '/tmp/x')  # noqa: SLF001


# ---- Hugging Face export: the matching class, our logits -------------------------------------

@pytest.mark.parametrize('name', ['mlm', 'all_tokens_mlm'])
def test_masked_lm_main_network_exports_as_electra_for_masked_lm(repo_root, tmp_path, name):
  import transformers  # noqa: PLC0415
  config = small_config(repo_root)
  config.electra.objective = name
  spec = run_spec.load(config)
  model = spec.objective.build_model(spec)
  joint = nn.meta.unbox(model_lib.init_pretrainer_params(model, jax.random.key(3), 32, 4))
  networks = jax.tree.map(np.asarray, spec.objective.split_params(joint, spec.embedding_sharing))
  gen_config = None if name == 'mlm' else model.gen_config
  written = export.write_hf(pretrained_lib.Pretrained(
      config.model, networks['discriminator'], gen_config, networks['generator'],
      source_config=config.to_dict(), objective=name), str(tmp_path / 'hf'))
  assert [p.rsplit('/', 1)[1] for p in written] == (
      ['masked_lm'] if name == 'mlm' else ['masked_lm', 'generator'])
  mlm, info = transformers.ElectraForMaskedLM.from_pretrained(tmp_path / 'hf' / 'masked_lm',
                                                              output_loading_info=True)
  assert not any(info[k] for k in ('missing_keys', 'unexpected_keys', 'mismatched_keys')), info
  _, info = transformers.ElectraModel.from_pretrained(tmp_path / 'hf' / 'masked_lm',
                                                      output_loading_info=True)
  assert not info['missing_keys'], info
  ids = np.random.default_rng(0).integers(5, 256, (2, 16)).astype(np.int32)
  types, mask = np.zeros_like(ids), np.ones_like(ids)
  positions = np.array([[1, 3, 5, 7], [2, 4, 6, 8]], np.int32)
  ours = model.apply({'params': joint}, ids, types, mask, positions,
                     method=model_lib.ElectraPretrainer.main_outputs)
  theirs = torch_logits(mlm, ids, types, mask)
  if name == 'all_tokens_mlm':  # the softmax part of the copy mechanism, at every position
    np.testing.assert_allclose(np.asarray(ours[0]), theirs, atol=1e-4)
  else:
    at_positions = np.take_along_axis(theirs, positions[..., None], 1)
    np.testing.assert_allclose(np.asarray(ours), at_positions, atol=1e-4)

"""Checkpoint conversion: workdir <-> Hugging Face <-> TF1, and continued pre-training.

One tiny pre-training run (module fixture) feeds the export, round-trip and init_from tests; the
TF1 test builds an original-format checkpoint from random `transformers` models.
"""

import itertools
import json
import os
import re
import subprocess
import sys

import flax.linen as nn
import jax
import ml_collections
import numpy as np
import pytest
import safetensors.numpy
import tensorflow as tf

from electra_jax import startup
from electra_jax.core import model as model_lib
from electra_jax.core import optimizer as optimizer_lib
from electra_jax.core import param_trees
from electra_jax.data import corpus
from electra_jax.data import tokenizers
from electra_jax.interop import checkpoint as checkpoint_lib
from electra_jax.interop import export
from electra_jax.interop import pretrained as pretrained_lib
from electra_jax.parallel import sharding
from electra_jax.pretraining import steps
from electra_jax.pretraining import train
from electra_jax.spec import run as run_spec
from electra_jax.spec import validate
from hf_reference import torch_logits  # tests/hf_reference.py
from saved_params import restore_params  # tests/saved_params.py

torch = pytest.importorskip('torch')
transformers = pytest.importorskip('transformers')

SAMPLE_TEXTS = ['The quick brown fox jumps over the lazy dog.', 'A second sentence, with commas!',
                '  Extra   spaces\tand a tab ', 'Numbers 3.14 and 42; ÜNÏCÖDÉ ½ ﬁ 中文']


def tiny_config(repo_root) -> ml_collections.ConfigDict:
  config = startup.load_config_file(repo_root / 'configs' / 'tiny.py')
  m = config.model
  m.vocab_size, m.embedding_size, m.hidden_size, m.num_heads = 256, 32, 64, 2
  m.intermediate_size, m.num_layers, m.max_position_embeddings = 128, 2, 48
  config.electra.generator_hidden_fraction = 0.5  # generator: hidden 32, 1 head, FFN 128
  config.electra.embedding_sharing = 'shared'  # the original's tied tables (tiny.py unties them)
  config.data.max_seq_length = 32
  config.train.batch_size = 8
  config.train.num_steps = 2
  config.train.warmup_steps = 1
  config.train.log_every = 1
  config.train.eval_every = 0
  config.train.checkpoint_every = 1000
  config.mesh.data = -1
  return config


@pytest.fixture(scope='module')
def run(repo_root, tmp_path_factory):
  """Two pre-training steps of a tiny model on text files with a SentencePiece model."""
  root = tmp_path_factory.mktemp('run')
  lines = list(itertools.islice(
      (line for shard in range(2) for line in corpus.builtin_corpus().shard_lines(shard)), 4000))
  (root / 'corpus.txt').write_text('\n'.join(lines), encoding='utf-8')
  sp_path = tokenizers.train_sentencepiece(lines, str(root / 'sp'), 256,
                                           allow_smaller_vocab=True)
  config = tiny_config(repo_root)
  config.data.source, config.data.train_files = 'files', str(root / 'corpus.txt')
  config.tokenizer.path = sp_path
  workdir = root / 'workdir'
  train.train_and_evaluate(config, str(workdir))
  return ml_collections.ConfigDict(dict(workdir=str(workdir), config=config, sp_path=sp_path))


@pytest.fixture(scope='module')
def hf_export(run, tmp_path_factory):
  dst = tmp_path_factory.mktemp('export') / 'hf'
  export.write_hf(pretrained_lib.load_checkpoint(run.workdir), str(dst))
  return dst


def _padded_pair_batch(tokenizer, length):
  """Two [CLS] A [SEP] B [SEP] rows, the second padded: ids, token types, mask [2, length]."""
  ids, types = np.zeros((2, length), np.int32), np.zeros((2, length), np.int32)
  for row, (a, b) in enumerate([(SAMPLE_TEXTS[0], SAMPLE_TEXTS[1]), (SAMPLE_TEXTS[3], 'Short.')]):
    first = [tokenizer.cls_id] + tokenizer.encode(a)[:10] + [tokenizer.sep_id]
    second = tokenizer.encode(b)[:8] + [tokenizer.sep_id]
    ids[row, :len(first) + len(second)] = first + second
    types[row, len(first):len(first) + len(second)] = 1
  return ids, types, (ids != tokenizer.pad_id).astype(np.int32)


def test_export_loads_in_transformers_with_our_logits(run, hf_export):
  disc, info = transformers.ElectraForPreTraining.from_pretrained(
      hf_export / 'discriminator', output_loading_info=True)
  assert not any(info[k] for k in ('missing_keys', 'unexpected_keys', 'mismatched_keys')), info
  gen, info = transformers.ElectraForMaskedLM.from_pretrained(
      hf_export / 'generator', output_loading_info=True)
  assert not any(info[k] for k in ('missing_keys', 'unexpected_keys', 'mismatched_keys')), info
  _, info = transformers.ElectraModel.from_pretrained(hf_export / 'discriminator',
                                                      output_loading_info=True)
  assert not info['missing_keys'], info

  ours_tokenizer = tokenizers.SentencePieceTokenizer(run.sp_path)
  theirs_tokenizer = transformers.AutoTokenizer.from_pretrained(hf_export / 'discriminator')
  for text in SAMPLE_TEXTS:
    assert theirs_tokenizer(text, add_special_tokens=False)['input_ids'] == (
        ours_tokenizer.encode(text)), text
  pair = theirs_tokenizer(SAMPLE_TEXTS[0], SAMPLE_TEXTS[1])
  first, second = ours_tokenizer.encode(SAMPLE_TEXTS[0]), ours_tokenizer.encode(SAMPLE_TEXTS[1])
  assert pair['input_ids'] == [2] + first + [3] + second + [3]
  assert pair['token_type_ids'] == [0] * (len(first) + 2) + [1] * (len(second) + 1)

  # Our logits come from the trained joint params, straight from the workdir.
  spec = run_spec.load(run.config)
  model = spec.objective.build_model(spec)
  params = restore_params(run.workdir, run.config.train.num_steps)
  ids, types, mask = _padded_pair_batch(ours_tokenizer, 24)
  positions = np.array([[1, 3, 5, 20], [2, 4, 6, 8]], np.int32)
  ours_disc = model.apply({'params': params}, ids, types, mask,
                          method=model_lib.ElectraPretrainer.discriminator_logits)
  ours_gen = model.apply({'params': params}, ids, types, mask, positions,
                         method=model_lib.ElectraPretrainer.generator_logits)
  as_torch = lambda x: torch.tensor(x, dtype=torch.long)
  with torch.no_grad():
    theirs_disc = disc(input_ids=as_torch(ids), attention_mask=as_torch(mask),
                       token_type_ids=as_torch(types)).logits.numpy()
    theirs_gen = gen(input_ids=as_torch(ids), attention_mask=as_torch(mask),
                     token_type_ids=as_torch(types)).logits.numpy()
  real = mask.astype(bool)
  np.testing.assert_allclose(np.asarray(ours_disc)[real], theirs_disc[real], atol=1e-4)
  gathered = np.take_along_axis(theirs_gen, positions[..., None], axis=1)
  np.testing.assert_allclose(np.asarray(ours_gen), gathered, atol=1e-4)
  assert np.abs(theirs_disc).max() > 1e-3  # not trivially equal


def _tensors(directory):
  return safetensors.numpy.load_file(os.path.join(directory, 'model.safetensors'))


def test_round_trip_workdir_hf_workdir_hf_is_bit_identical(run, hf_export, tmp_path):
  workdir = tmp_path / 'workdir'
  config = export.write_workdir(pretrained_lib.load_checkpoint(str(hf_export)), str(workdir),
                                startup.load_config_file('default'))
  again = tmp_path / 'hf_again'
  export.write_hf(pretrained_lib.load_checkpoint(str(workdir)), str(again))
  for network in ('discriminator', 'generator'):
    first, second = _tensors(hf_export / network), _tensors(again / network)
    assert sorted(first) == sorted(second)
    for name in first:
      assert first[name].dtype == second[name].dtype and np.array_equal(first[name],
                                                                      second[name]), name
    for name in ('config.json', 'spiece.model', 'tokenizer.json', 'tokenizer_config.json'):
      assert (hf_export / network / name).read_bytes() == (again / network / name).read_bytes()
  # The converted workdir holds the original run's parameters and sizes exactly.
  original, converted = restore_params(run.workdir, 2), restore_params(workdir, 0)
  assert jax.tree.structure(original) == jax.tree.structure(converted)
  for a, b in zip(jax.tree.leaves(original), jax.tree.leaves(converted)):
    assert np.array_equal(a, b)
  for field in export.SIZE_FIELDS:
    assert config.model[field] == run.config.model[field], field
  spec = run_spec.load(config, num_devices=1)  # the converted config is a valid run
  assert spec.generator.hidden_size == 32
  assert config.tokenizer.path == str(workdir / 'tokenizer' / 'spiece.model')
  assert config.data.max_seq_length == 48  # clamped to the model's positions
  # The converted workdir resumes the way train.py resumes a run: step 0, the same params.
  tx = optimizer_lib.make_optimizer(config.train)
  init_fn = steps.make_init_fn(spec.objective.build_model(spec), tx, spec.seq_length, 4)
  mesh = jax.sharding.Mesh(np.array(jax.devices()[:1]).reshape(1, 1, 1), ('data', 'fsdp', 'tensor'))
  abstract, _ = sharding.state_shardings(init_fn, jax.random.key(0), mesh, ())
  checkpointer = checkpoint_lib.Checkpointer(str(workdir), save_every=1, keep=1, keep_period=0)
  step, state = checkpointer.restore_latest(abstract)
  checkpointer.close()
  assert step == 0 and int(state.step) == 0
  for a, b in zip(jax.tree.leaves(original), jax.tree.leaves(state.params)):
    assert np.array_equal(a, np.asarray(b))
  # A scanned-layers config stores stacked layers; loading unstacks them again.
  scanned_config = startup.load_config_file('default')
  scanned_config.model.scan_layers = True
  scanned = tmp_path / 'scanned'
  export.write_workdir(pretrained_lib.load_checkpoint(str(workdir)), str(scanned), scanned_config)
  assert 'layers' in restore_params(scanned, 0)['discriminator']['encoder']
  loaded = pretrained_lib.load_checkpoint(str(scanned))
  for a, b in zip(jax.tree.leaves(loaded.disc_params),
                  jax.tree.leaves(pretrained_lib.load_checkpoint(str(workdir)).disc_params)):
    assert np.array_equal(a, b)
  # Nothing is overwritten without asking.
  with pytest.raises(ValueError, match='already exists; pass --overwrite'):
    export.write_hf(pretrained_lib.load_checkpoint(str(workdir)), str(again))
  assert not [p for p in os.listdir(tmp_path) if '.tmp-' in p]


def test_initial_params_places_the_checkpoint_like_the_fresh_params(run, hf_export):
  config = ml_collections.ConfigDict(run.config.to_dict())
  config.mesh.update(data=2, fsdp=2, tensor=2)
  config.init_from = str(hf_export)
  mesh = jax.sharding.Mesh(np.array(jax.devices()).reshape(2, 2, 2), ('data', 'fsdp', 'tensor'))
  spec = run_spec.load(config, num_devices=8)
  rules = spec.mesh.rules
  model = spec.objective.build_model(spec)
  fresh, _, _ = sharding.create_sharded_state(
      lambda rng: model_lib.init_pretrainer_params(model, rng, 32, 4), jax.random.key(0), mesh,
      rules)
  params = pretrained_lib.initial_params(spec, fresh)
  expected = restore_params(run.workdir, 2)
  assert jax.tree.structure(params) == jax.tree.structure(expected)
  for got, want, reference in zip(jax.tree.leaves(params), jax.tree.leaves(expected),
                                  jax.tree.leaves(fresh)):
    assert np.array_equal(np.asarray(got), want)
    assert got.sharding == reference.sharding

  # Only a discriminator: the fresh generator stays.
  config.init_from = str(hf_export / 'discriminator')
  params = pretrained_lib.initial_params(run_spec.load(config), fresh)
  for got, want in zip(jax.tree.leaves(params['generator']), jax.tree.leaves(fresh['generator'])):
    assert np.array_equal(np.asarray(got), np.asarray(want))
  assert np.array_equal(np.asarray(params['shared_embeddings']['word_embeddings']),
                        expected['shared_embeddings']['word_embeddings'])

  # Sizes that differ from the checkpoint's: the error names the tensor and both shapes.
  config.model.vocab_size = 300
  spec = run_spec.load(config)
  other = jax.eval_shape(lambda: nn.meta.unbox(model_lib.init_pretrainer_params(
      spec.objective.build_model(spec), jax.random.key(0), 32, 4)))
  with pytest.raises(ValueError, match=r'Tensor discriminator/embeddings/word_embeddings has '
                     r'shape \(256, 32\) in .* but \(300, 32\) in the configured model'):
    pretrained_lib.initial_params(spec, other)


def test_continued_pretraining_from_an_hf_export(run, hf_export, tmp_path):
  config = ml_collections.ConfigDict(run.config.to_dict())
  config.init_from = str(hf_export)
  config.tokenizer.path = ''  # the export's tokenizer reads the data
  config.train.learning_rate = 1e-9  # so the end state must still be the loaded weights
  metrics = train.train_and_evaluate(config, str(tmp_path / 'continued'))
  assert np.isfinite(metrics['loss'])
  continued = restore_params(tmp_path / 'continued', 2)
  source = restore_params(run.workdir, 2)
  assert jax.tree.structure(continued) == jax.tree.structure(source)
  for got, want in zip(jax.tree.leaves(continued), jax.tree.leaves(source)):
    np.testing.assert_allclose(got, want, rtol=0, atol=1e-6)
  checkpointer = checkpoint_lib.Checkpointer(str(tmp_path / 'continued'), save_every=1, keep=1,
                                             keep_period=0, read_only=True)
  saved = checkpointer.restore_config(2)
  checkpointer.close()
  assert saved['tokenizer']['path'] == str(hf_export / 'discriminator' / 'spiece.model')
  assert saved['init_from'] == str(hf_export)


def test_untied_generator_converts_to_hf_and_back_to_a_workdir(repo_root, tmp_path):
  """embedding_sharing='none' (the original's untied_generator_embeddings): the generator's own
  H_gen-wide tables, no projection, survive workdir tree -> HF -> workdir, and transformers
  computes our logits."""
  config = tiny_config(repo_root)
  config.electra.update(embedding_sharing='none', generator_hidden_fraction=0.75)  # H_gen 48
  spec = run_spec.load(config)
  model = spec.objective.build_model(spec)
  joint = nn.meta.unbox(model_lib.init_pretrainer_params(model, jax.random.key(3), 32, 4))
  parts = jax.tree.map(np.asarray, param_trees.split_params(joint, 'none'))
  gen_config = model.gen_config
  assert (gen_config.hidden_size, gen_config.embedding_size) == (48, 48)
  assert 'embeddings_project' not in parts['generator']
  export.write_hf(pretrained_lib.Pretrained(config.model, parts['discriminator'], gen_config,
                                            parts['generator']), str(tmp_path / 'hf'))

  gen, info = transformers.ElectraForMaskedLM.from_pretrained(tmp_path / 'hf' / 'generator',
                                                              output_loading_info=True)
  assert not any(info[k] for k in ('missing_keys', 'unexpected_keys', 'mismatched_keys')), info
  assert gen.config.embedding_size == gen.config.hidden_size == 48
  rng = np.random.default_rng(0)
  ids = rng.integers(5, 256, (2, 16)).astype(np.int32)
  types, mask = np.zeros_like(ids), np.ones_like(ids)
  positions = np.array([[1, 3, 5, 7], [2, 4, 6, 8]], np.int32)
  ours = model.apply({'params': joint}, ids, types, mask, positions,
                     method=model_lib.ElectraPretrainer.generator_logits)
  theirs = torch_logits(gen, ids, types, mask)
  np.testing.assert_allclose(np.asarray(ours), np.take_along_axis(theirs, positions[..., None], 1),
                             atol=1e-4)

  pretrained = pretrained_lib.load_checkpoint(str(tmp_path / 'hf'))
  base = tiny_config(repo_root)
  with pytest.raises(ValueError, match="embedding_sharing='shared'"):
    export.write_workdir(pretrained, str(tmp_path / 'shared'), base)  # a tied generator is E wide
  base.electra.embedding_sharing = 'none'
  written = export.write_workdir(pretrained, str(tmp_path / 'workdir'), base)
  assert written.electra.generator_hidden_fraction == pytest.approx(0.75)
  restored = restore_params(tmp_path / 'workdir', 0)
  jax.tree.map(np.testing.assert_array_equal, restored['generator'], parts['generator'])


def test_generator_fraction_rebuilds_the_generator_or_says_why_not():
  base = startup.load_config_file('default').model
  base.update(hidden_size=448, num_heads=7, intermediate_size=1792)
  gen = ml_collections.ConfigDict(base.to_dict())
  gen.update(hidden_size=61, num_heads=1, intermediate_size=244)
  assert int(448 * (61 / 448)) == 60  # the plain ratio rounds down
  fraction = export.generator_fraction(base, gen)
  assert validate.generator_config(base, fraction).to_dict() == gen.to_dict()
  gen.num_heads = 8
  with pytest.raises(ValueError, match=r'reference size rule.*num_heads 8 \(the rule gives 1\)'):
    export.generator_fraction(base, gen)


# ---- TF1 ---------------------------------------------------------------------------------------

def _tf1_name(hf_name: str, scope: str) -> str | None:
  """HF tensor name -> the original TF1 variable name (None: tied or shared, not stored)."""
  if hf_name == 'generator_lm_head.weight' or (scope == 'generator' and '.embeddings.' in hf_name):
    return None
  if hf_name == 'generator_lm_head.bias':
    return 'generator_predictions/output_bias'
  name = hf_name.replace('discriminator_predictions.dense_prediction',
                         'discriminator_predictions.dense_1')
  name = re.sub(r'layer\.(\d+)', r'layer_\1', name).replace('.', '/')
  if name.startswith('electra/') and '/embeddings/' not in name:
    name = scope + name[len('electra'):]
  if 'LayerNorm' in name:
    return name.replace('/weight', '/gamma').replace('/bias', '/beta')
  if name.endswith('_embeddings/weight'):
    return name[:-len('/weight')]
  return name.replace('/weight', '/kernel')


def _write_tf1_checkpoint(prefix, tensors):
  graph = tf.Graph()
  with graph.as_default():
    variables = [tf.compat.v1.Variable(value, name=name) for name, value in tensors.items()]
    saver = tf.compat.v1.train.Saver(variables)
    with tf.compat.v1.Session(graph=graph) as session:
      session.run(tf.compat.v1.global_variables_initializer())
      saver.save(session, prefix, write_meta_graph=False)


@pytest.fixture(scope='module')
def tf1_checkpoint(tmp_path_factory):
  """Random HF discriminator + generator (shared embeddings) written as an original checkpoint."""
  torch.manual_seed(0)
  common = dict(vocab_size=99, embedding_size=32, num_hidden_layers=2, max_position_embeddings=40,
                hidden_dropout_prob=0.0, attention_probs_dropout_prob=0.0)
  disc = transformers.ElectraForPreTraining(transformers.ElectraConfig(
      hidden_size=128, num_attention_heads=2, intermediate_size=256, **common)).eval()
  gen = transformers.ElectraForMaskedLM(transformers.ElectraConfig(
      hidden_size=64, num_attention_heads=1, intermediate_size=256, **common)).eval()
  with torch.no_grad():
    for model in (disc, gen):  # perturb every tensor, LayerNorms and biases included
      for param in model.parameters():
        param.add_(0.05 * torch.randn_like(param))
    gen.electra.embeddings.load_state_dict(disc.electra.embeddings.state_dict())
  tensors = {}
  for model, scope in ((disc, 'electra'), (gen, 'generator')):
    for hf_name, value in model.state_dict().items():
      name = _tf1_name(hf_name, scope)
      if name is None or 'position_ids' in hf_name:
        continue
      value = value.numpy()
      tensors[name] = value.T if name.endswith('/kernel') else value  # TF1 kernels are [in, out]
  for name, value in list(tensors.items()):  # optimizer slots and the step, to be ignored
    tensors[f'{name}/adam_m'] = np.full_like(value, 7.0)
    tensors[f'{name}/adam_v'] = np.full_like(value, 9.0)
  tensors['global_step'] = np.int64(1_000_000)
  directory = tmp_path_factory.mktemp('tf1')
  prefix = str(directory / 'model.ckpt-1000000')
  _write_tf1_checkpoint(prefix, tensors)
  words = [f'word{i}' for i in range(99 - 5)]
  (directory / 'vocab.txt').write_text(
      '\n'.join(tokenizers.SPECIAL_PIECES + tuple(words)) + '\n')
  return prefix, disc, gen


def _hf_logits(disc, gen, ids, types, mask):
  as_torch = lambda x: torch.tensor(np.asarray(x), dtype=torch.long)
  with torch.no_grad():
    kwargs = dict(input_ids=as_torch(ids), token_type_ids=as_torch(types),
                  attention_mask=as_torch(mask))
    return disc(**kwargs).logits.numpy(), gen(**kwargs).logits.numpy()


def _random_batch(vocab_size, length=16):
  rng = np.random.default_rng(1)
  ids = rng.integers(5, vocab_size, size=(2, length)).astype(np.int32)
  types = np.zeros_like(ids)
  types[:, length // 2:] = 1
  mask = np.ones_like(ids)
  mask[1, -5:] = 0
  ids[1, -5:] = 0
  return ids, types, mask


def test_tf1_to_hf_cli_and_to_workdir_match_the_original_model(tf1_checkpoint, tmp_path):
  prefix, disc, gen = tf1_checkpoint
  ids, types, mask = _random_batch(99)
  want_disc, want_gen = _hf_logits(disc, gen, ids, types, mask)
  real = mask.astype(bool)

  # tf1 -> hf, through the CLI.
  out = tmp_path / 'hf'
  env = dict(os.environ, JAX_PLATFORMS='cpu', XLA_FLAGS='')
  result = subprocess.run(
      [sys.executable, '-m', 'electra_jax.convert', '--from=tf1', '--to=hf', f'--src={prefix}',
       f'--dst={out}'], capture_output=True, text=True, env=env, check=False)
  assert result.returncode == 0, result.stderr[-3000:]
  loaded_disc = transformers.ElectraForPreTraining.from_pretrained(out / 'discriminator').eval()
  loaded_gen = transformers.ElectraForMaskedLM.from_pretrained(out / 'generator').eval()
  got_disc, got_gen = _hf_logits(loaded_disc, loaded_gen, ids, types, mask)
  np.testing.assert_allclose(got_disc[real], want_disc[real], atol=1e-4)
  np.testing.assert_allclose(got_gen[real], want_gen[real], atol=1e-4)
  hf_config = json.loads((out / 'discriminator' / 'config.json').read_text())
  assert (hf_config['num_attention_heads'], hf_config['hidden_size']) == (2, 128)  # H // 64
  tokenizer = transformers.AutoTokenizer.from_pretrained(out / 'discriminator')
  assert tokenizer('word3 word17 unknown')['input_ids'] == [2, 8, 22, 1, 3]

  # tf1 -> workdir, then our own networks from it.
  workdir = tmp_path / 'workdir'
  config = export.write_workdir(pretrained_lib.load_checkpoint(prefix), str(workdir),
                                startup.load_config_file('default'))
  assert config.model.num_heads == 2 and config.electra.generator_hidden_fraction == 0.5
  assert config.tokenizer.type == 'wordpiece'
  pretrained = pretrained_lib.load_checkpoint(str(workdir))
  ours_disc = model_lib.Discriminator(pretrained.disc_config).apply(
      {'params': pretrained.disc_params}, ids, types, mask)
  positions = np.tile(np.arange(16, dtype=np.int32), (2, 1))
  ours_gen = model_lib.Generator(pretrained.gen_config).apply(
      {'params': pretrained.gen_params}, ids, types, mask, positions)
  np.testing.assert_allclose(np.asarray(ours_disc)[real], want_disc[real], atol=1e-4)
  np.testing.assert_allclose(np.asarray(ours_gen)[real], want_gen[real], atol=1e-4)
  assert pretrained.tokenizer.encode('word3 word17') == [8, 22]


def test_tf1_errors_name_the_problem(tf1_checkpoint, tmp_path):
  prefix, _, _ = tf1_checkpoint
  with pytest.raises(ValueError, match='not divisible by 3 heads'):
    pretrained_lib.load_checkpoint(prefix, num_heads=3)
  with pytest.raises(ValueError, match='--from=hf but .* looks like a tf1 source'):
    pretrained_lib.load_checkpoint(prefix, kind='hf')
  with pytest.raises(ValueError, match='nothing.* does not exist'):
    pretrained_lib.load_checkpoint(str(tmp_path / 'nothing'))
  with pytest.raises(ValueError, match='is not a checkpoint'):
    pretrained_lib.load_checkpoint(str(tmp_path))
  other = str(tmp_path / 'other.ckpt')
  _write_tf1_checkpoint(other, {'bert/embeddings/word_embeddings': np.zeros((4, 2), np.float32)})
  with pytest.raises(ValueError, match='not an ELECTRA TF1 checkpoint'):
    pretrained_lib.load_checkpoint(other)



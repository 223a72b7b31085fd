"""The shared fine-tuning loop: layer-wise rates, hyperparameters, init_from, seeds, results."""

import json

import jax
import jax.numpy as jnp
import numpy as np
import orbax.checkpoint as ocp
import pytest

from electra_jax import startup
from electra_jax.core import model as model_lib
from electra_jax.core import param_trees
from electra_jax.data import tokenizers
from electra_jax.finetune import __main__ as finetune_cli
from electra_jax.finetune import glue
from electra_jax.finetune import layerwise
from electra_jax.finetune import metrics as metrics_lib
from electra_jax.finetune import model as task_model_lib
from electra_jax.finetune import seeds as seeds_lib
from electra_jax.finetune import start as start_lib
from electra_jax.finetune import train
from electra_jax.interop import export
from electra_jax.interop import pretrained as pretrained_lib

DECAY = 0.8


def load_config(repo_root, arg='sst2'):
  return startup.load_config_file(repo_root / 'configs' / 'finetune' / 'glue.py', arg)


def tiny_model_config(repo_root, **overrides):
  m = load_config(repo_root).model
  m.update(dict(vocab_size=64, embedding_size=16, hidden_size=32, num_heads=2, num_layers=2,
                intermediate_size=64, max_position_embeddings=32, initializer_range=0.1))
  m.update(overrides)
  return m


def task_params(model_config, head='classification'):
  """Zero-filled parameters of the task model (only their layout matters here)."""
  model = task_model_lib.TaskModel(model_config, head, num_labels=3,
                                   answerability=head == 'span')
  ids = jnp.ones((1, 8), jnp.int32)
  shapes = jax.eval_shape(lambda: model.init({'params': jax.random.key(0)}, ids, ids * 0, ids))
  return jax.tree.map(lambda s: np.zeros(s.shape, s.dtype),
                      model_lib.nn.meta.unbox(shapes['params']))


def original_layer_lrs(learning_rate, layer_decay, n_layers):
  """`_get_layer_lrs` of the original's `model/optimization.py`, in plain Python."""
  key_to_depths = {'/embeddings/': 0, '/embeddings_project/': 0, 'task_specific/': n_layers + 2}
  for layer in range(n_layers):
    key_to_depths['encoder/layer_' + str(layer) + '/'] = layer + 1
  return {key: learning_rate * layer_decay ** (n_layers + 2 - depth)
          for key, depth in key_to_depths.items()}


def original_rate(path, learning_rate=1.0, decay=DECAY, n_layers=2):
  """The rate the original gives the variable our parameter `path` corresponds to: encoder
  variables live under `electra/`, task heads under `task_specific/<task>/`, and each variable
  takes the rate of the key its name contains (`AdamWeightDecayOptimizer.apply_gradients`)."""
  prefix = 'electra/' if path[0] in task_model_lib.ENCODER_NAMES else 'task_specific/task/'
  name = prefix + '/'.join(path)
  rates = [rate for key, rate in original_layer_lrs(learning_rate, decay, n_layers).items()
           if key in name]
  assert len(rates) == 1, name
  return rates[0]


def _paths(tree):
  return [(tuple(str(getattr(k, 'key', k)) for k in path), leaf)
          for path, leaf in jax.tree_util.tree_flatten_with_path(tree)[0]]


# ---- Layer-wise learning-rate decay -------------------------------------------------------------

@pytest.mark.parametrize('head', ['classification', 'span'])
def test_layerwise_scales_are_the_originals(repo_root, head):
  params = task_params(tiny_model_config(repo_root), head)
  scales = layerwise.layerwise_lr_scales(params, num_layers=2, decay=DECAY)
  seen = set()
  for path, scale in _paths(scales):
    assert scale.dtype == np.float32
    assert scale == np.float32(original_rate(path)), path
    seen.add((path[0], round(float(scale), 6)))
  # Embeddings and their projection decay four times (L + 2), layer 0 three times, the top
  # layer twice, every head parameter not at all.
  assert {('embeddings', 0.4096), ('embeddings_project', 0.4096), ('encoder', 0.512),
          ('encoder', 0.64)} <= seen
  heads = {name for name, scale in seen if scale == 1.0}
  assert heads == ({'classifier'} if head == 'classification' else {'squad_head'})
  # The switch: the head one step above the top layer, every exponent one smaller.
  no_gap = layerwise.layerwise_lr_scales(params, num_layers=2, decay=DECAY, rule='no_gap')
  for (path, scale), (_, original) in zip(_paths(no_gap), _paths(scales)):
    np.testing.assert_allclose(scale, min(1.0, original / DECAY), rtol=1e-6, err_msg=str(path))


@pytest.mark.parametrize('scan_layers', [False, True])
def test_one_update_moves_each_parameter_at_the_originals_rate(repo_root, scan_layers):
  """The per-parameter learning rates of a 2-layer model, read off one AdamW step: with g = 1
  everywhere, the first (uncorrected) Adam step is the same for every entry."""
  config = load_config(repo_root)
  params = task_params(tiny_model_config(repo_root, scan_layers=scan_layers))
  hparams = start_lib.resolve_hparams(config, tiny_model_config(repo_root), default_epochs=3)
  hparams.update(warmup_fraction=0.0, weight_decay=0.0, grad_clip_norm=0.0)
  tx, schedule = layerwise.make_optimizer(hparams, params, num_layers=2, num_steps=10)
  assert float(schedule(0)) == pytest.approx(1e-4)  # small model: the reference rate
  grads = jax.tree.map(np.ones_like, params)
  updates, _ = tx.update(grads, tx.init(params), params)
  # The original's uncorrected Adam: m = (1 - b1) g, v = (1 - b2) g^2.
  adam_factor = (1 - hparams.adam_b1) / (np.sqrt(1 - hparams.adam_b2) + hparams.adam_eps)
  for path, update in _paths(updates):
    rates = -np.asarray(update) / adam_factor
    if scan_layers and path[:2] == ('encoder', 'layers'):
      for layer in range(2):  # each slice of a stacked parameter is one layer
        unscanned = ('encoder', f'layer_{layer}') + path[2:]
        np.testing.assert_allclose(rates[layer], original_rate(unscanned, 1e-4), rtol=1e-5,
                                   err_msg=str(path))
    else:
      np.testing.assert_allclose(rates, original_rate(path, 1e-4), rtol=1e-5, err_msg=str(path))


def test_depths_reject_parameters_of_no_known_part():
  with pytest.raises(ValueError, match='neither the encoder nor'):
    layerwise.layer_depths({'mystery': {'kernel': np.zeros((2, 2))}}, num_layers=2)


# ---- Hyperparameters and validation ------------------------------------------------------------

def test_reference_hyperparameters_per_size_and_task(repo_root):
  config = load_config(repo_root, 'rte')
  small = tiny_model_config(repo_root, hidden_size=256)
  large = tiny_model_config(repo_root, hidden_size=1024)
  hparams = start_lib.resolve_hparams(config, small, default_epochs=10)
  assert (hparams.model_size, hparams.learning_rate, hparams.layerwise_lr_decay,
          hparams.num_epochs) == ('small', 1e-4, 0.8, 10)
  hparams = start_lib.resolve_hparams(config, large, default_epochs=3)
  assert (hparams.model_size, hparams.learning_rate, hparams.layerwise_lr_decay) == (
      'large', 5e-5, 0.9)
  assert start_lib.model_size(config, tiny_model_config(repo_root, hidden_size=768)) == 'base'
  config.model_size, config.train.learning_rate = 'large', 3e-5
  hparams = start_lib.resolve_hparams(config, small, default_epochs=3)
  assert (hparams.learning_rate, hparams.layerwise_lr_decay) == (3e-5, 0.9)
  assert (config.train.batch_size, config.train.warmup_fraction,
          config.train.weight_decay, config.train.dropout_prob) == (32, 0.1, 0.01, 0.1)
  config.model_size = 'huge'
  with pytest.raises(ValueError, match='model_size'):
    start_lib.model_size(config, small)


@pytest.mark.parametrize('field, value, match', [
    ('train.batch_size', 30, 'batch_size=30'),
    ('train.eval_batch_size', 4, 'eval_batch_size=4'),
    ('train.layerwise_lr_decay', 1.5, 'layerwise_lr_decay'),
    ('train.layerwise_lr_rule', 'tidy', 'layerwise_lr_rule'),
    ('train.warmup_fraction', 2.0, 'warmup_fraction'),
    ('seeds', (), 'seeds is empty'),
    ('seeds', (1, 1), 'repeats'),
    ('mesh.data', 3, 'mesh'),
])
def test_bad_configs_are_rejected_with_the_field_named(repo_root, field, value, match):
  config = load_config(repo_root)
  section, _, name = field.rpartition('.')
  (config[section] if section else config)[name] = value
  with pytest.raises(ValueError, match=match):
    start_lib.validate_finetune_config(config, num_devices=8)


# ---- Starting from a pre-trained discriminator ---------------------------------------------

@pytest.mark.slow
def test_init_from_an_hf_export_loads_the_encoder(repo_root, tmp_path):
  """The discriminator's encoder is what fine-tuning starts from (into scanned layers too); its
  replaced-token head is dropped. With a vanishing learning rate the best checkpoint still holds
  exactly the pre-trained encoder."""
  rng = np.random.default_rng(0)
  words = 'good bad movie film plot the a was very'.split()
  texts = [' '.join(rng.choice(words, size=6)) for _ in range(100)]
  sp_path = tokenizers.train_sentencepiece(texts, str(tmp_path / 'sp'), 24,
                                           allow_smaller_vocab=True, num_threads=1)
  tokenizer = tokenizers.SentencePieceTokenizer(sp_path)
  disc_config = tiny_model_config(repo_root)
  ids = jnp.ones((1, 8), jnp.int32)
  disc_params = jax.tree.map(np.asarray, model_lib.nn.meta.unbox(model_lib.Discriminator(
      disc_config).init({'params': jax.random.key(7)}, ids, ids * 0, ids)['params']))
  export.write_hf(pretrained_lib.Pretrained(disc_config, disc_params, tokenizer=tokenizer,
                                            tokenizer_files=tokenizer.files()),
                  str(tmp_path / 'hf'))
  data_dir = tmp_path / 'SST-2'
  data_dir.mkdir()
  for split in ('train', 'dev'):
    rows = ''.join(f'{text}\t{int("good" in text)}\n' for text in texts[:64])
    (data_dir / f'{split}.tsv').write_text('sentence\tlabel\n' + rows)

  config = load_config(repo_root)
  config.init_from = str(tmp_path / 'hf')
  config.model.scan_layers = True  # a compute setting: applied to the loaded architecture
  config.data.update(source='tsv', data_dir=str(data_dir), max_seq_length=16)
  config.task.predict_test = False
  config.train.update(num_epochs=1, learning_rate=1e-30, eval_batch_size=64)
  start = start_lib.load_starting_point(config)
  assert start.tokenizer.encode(texts[0]) == tokenizer.encode(texts[0])  # the export's own
  assert start.model_config.hidden_dropout_prob == 0.1 and start.model_config.scan_layers
  glue.run(config, str(tmp_path / 'work'), start)

  checkpoints = tmp_path / 'work' / 'sst2' / 'seed_0' / 'checkpoints'
  with ocp.CheckpointManager(str(checkpoints)) as manager:
    restored = manager.restore(1, args=ocp.args.Composite(params=ocp.args.StandardRestore()))
  params = param_trees.to_unscanned_layers(restored['params'])
  assert set(params) == {'embeddings', 'embeddings_project', 'encoder', 'classifier'}
  for (path, loaded), (_, original) in zip(
      _paths({k: params[k] for k in task_model_lib.ENCODER_NAMES}),
      _paths({k: disc_params[k] for k in task_model_lib.ENCODER_NAMES})):
    np.testing.assert_allclose(loaded, original, atol=1e-7, err_msg=str(path))


def test_a_mismatched_encoder_is_refused(repo_root):
  config = tiny_model_config(repo_root)
  params = task_params(config)
  wrong = task_params(tiny_model_config(repo_root, hidden_size=64, intermediate_size=128))
  with pytest.raises(ValueError, match='does not fit'):
    train._merge_encoder(params, wrong, config, shardings=None)


# ---- Evaluation protocol -------------------------------------------------------------------

@pytest.mark.parametrize('select_best', [False, True])
def test_reported_epoch_is_the_last_unless_best_is_selected(repo_root, tmp_path, select_best):
  """The original evaluates once, after training; select_best_epoch keeps the best dev epoch
  (here epoch 2 of 3 by a scripted score) and predicts with its parameters."""
  config = load_config(repo_root)
  config.train.update(num_epochs=3, batch_size=8, eval_batch_size=8, learning_rate=1e-2,
                      select_best_epoch=select_best)
  model_config = tiny_model_config(repo_root)
  rng = np.random.default_rng(0)
  ids = rng.integers(5, 64, (16, 8)).astype(np.int32)
  arrays = {'input_ids': ids, 'token_type_ids': np.zeros_like(ids),
            'attention_mask': np.ones_like(ids), 'label': rng.integers(0, 3, 16).astype(np.int32)}
  scores, seen = iter([0.5, 0.9, 0.7] if select_best else [0.6]), []

  def evaluate(predict):
    seen.append(predict({k: arrays[k] for k in train.INPUT_KEYS})['logits'])
    return {'score': next(scores)}

  task = train.FineTuneTask(
      name='toy', model=task_model_lib.TaskModel(model_config, 'classification', 3),
      loss_fn=glue.classification_loss, train_arrays=arrays, evaluate=evaluate,
      selection_metric='score', num_epochs=3)
  start = start_lib.StartingPoint(model_config, None, None, [], 'scratch')
  result = train.fine_tune(config, task, start, seed=0, workdir=str(tmp_path))
  assert [r['epoch'] for r in result.history] == [1, 2, 3]
  final_logits = result.predict({k: arrays[k] for k in train.INPUT_KEYS})['logits']
  if select_best:
    assert len(seen) == 3 and result.reported_epoch == 2
    assert result.reported_metrics['score'] == 0.9
    np.testing.assert_allclose(final_logits, seen[1], atol=1e-6)
    assert not np.allclose(seen[1], seen[2], atol=1e-4)  # the epochs do differ
  else:
    assert len(seen) == 1 and result.reported_epoch == 3  # evaluated once, at the end
    assert 'score' not in result.history[0] and result.history[2]['score'] == 0.6
    np.testing.assert_allclose(final_logits, seen[0], atol=1e-6)
  assert [p.name for p in (tmp_path / 'checkpoints').iterdir()] == [str(result.reported_epoch)]


def test_protocol_switches_default_to_the_original_and_are_reported(repo_root, tmp_path):
  glue_config = load_config(repo_root)
  squad_config = startup.load_config_file(repo_root / 'configs' / 'finetune' / 'squad.py', 'v2.0')
  for path, original in start_lib.PROTOCOL_SWITCHES.items():
    section, field = path.split('.')
    present = [c for c in (glue_config, squad_config) if field in c.get(section, {})]
    assert present, path
    assert all(c[section][field] == original for c in present), path
  assert start_lib.non_default_switches(glue_config) == {}
  assert start_lib.non_default_switches(squad_config) == {}
  glue_config.train.select_best_epoch = True
  glue_config.task.classifier_head = 'hf'
  switches = start_lib.non_default_switches(glue_config)
  assert switches == {'train.select_best_epoch': True, 'task.classifier_head': 'hf'}
  result = _fake_result('rte', 'glue', ('accuracy',), 0.6)
  result['non_default_switches'] = switches
  table = finetune_cli.format_table(finetune_cli.report(str(tmp_path), result))
  assert ('rte: not the original protocol: task.classifier_head=hf, '
          'train.select_best_epoch=True') in table
  saved = json.loads((tmp_path / 'rte' / 'results.json').read_text())
  assert saved['non_default_switches'] == switches


# ---- Seeds and results ----------------------------------------------------------------------

def test_finished_seeds_are_reused_and_other_configs_refused(repo_root, tmp_path):
  config = load_config(repo_root)
  config.seeds = (3, 5)
  calls = []

  def run_seed(seed, seed_dir):
    calls.append(seed)
    return {'metrics': {'accuracy': seed / 10}}

  first = seeds_lib.run_seeds(config, str(tmp_path), run_seed)
  assert calls == [3, 5] and [r['seed'] for r in first] == [3, 5]
  config.seeds = (3, 5, 8)
  again = seeds_lib.run_seeds(config, str(tmp_path), run_seed)
  assert calls == [3, 5, 8] and again[:2] == first
  config.train.learning_rate = 3e-4
  with pytest.raises(ValueError, match='different configuration'):
    seeds_lib.run_seeds(config, str(tmp_path), run_seed)


def test_the_linear_probe_settings_leave_fine_tuned_probe_seeds_valid(tmp_path):
  from electra_jax.configs.finetune import probe  # noqa: PLC0415
  config = probe.get_config()
  config.seeds = (0,)
  calls = []
  run_seed = lambda seed, seed_dir: calls.append(seed) or {'metrics': {'accuracy': 0.5}}
  seeds_lib.run_seeds(config, str(tmp_path), run_seed)
  config.probe.linear_pooling, config.probe.linear_folds = 'cls', 3
  seeds_lib.run_seeds(config, str(tmp_path), run_seed)
  assert calls == [0]  # reused
  config.probe.max_train_examples = 100  # this one does change the fine-tuned probe
  with pytest.raises(ValueError, match='different configuration'):
    seeds_lib.run_seeds(config, str(tmp_path), run_seed)


def _fake_result(task, kind, metric_names, base):
  seeds = [{'seed': s, 'metrics': {name: base + 0.01 * s for name in metric_names}}
           for s in range(3)]
  return {'task': task, 'kind': kind, 'display_name': task.upper(),
          'primary_metrics': list(metric_names), 'seeds': seeds}


def test_results_table_with_medians_and_the_glue_average(tmp_path):
  tasks = {'cola': ('mcc',), 'sst2': ('accuracy',), 'mrpc': ('f1', 'accuracy'),
           'stsb': ('pearson', 'spearman'), 'qqp': ('f1', 'accuracy'),
           'mnli': ('accuracy', 'dev_mismatched/accuracy'), 'qnli': ('accuracy',),
           'rte': ('accuracy',)}
  for index, (task, names) in enumerate(tasks.items()):
    overview = finetune_cli.report(str(tmp_path), _fake_result(task, 'glue', names, 0.5 + 0.05 * index))
    if task == 'cola':
      assert overview['glue_average'] is None and 'rte' in overview['glue_missing']
  overview = finetune_cli.report(str(tmp_path), _fake_result('squad_v1.1', 'squad',
                                                    ('exact_match', 'f1'), 80.0))
  medians = {task: {name: 0.5 + 0.05 * i + 0.01 for name in names}
             for i, (task, names) in enumerate(tasks.items())}
  expected, _ = metrics_lib.glue_average(medians)
  assert overview['glue_average']['electra'] == pytest.approx(expected)
  assert overview['tasks']['squad_v1.1']['median']['f1'] == pytest.approx(80.01)
  assert overview['tasks']['rte']['std']['accuracy'] == pytest.approx(np.std([0, 0.01, 0.02]))
  saved = json.loads((tmp_path / 'results.json').read_text())
  assert saved['glue_average']['electra'] == pytest.approx(expected)
  task_file = json.loads((tmp_path / 'sst2' / 'results.json').read_text())
  assert task_file['summary']['accuracy']['num_seeds'] == 3
  table = finetune_cli.format_table(overview)
  assert f'GLUE average of medians: {100 * expected:.2f}' in table
  assert 'dev_mismatched/accuracy' in table and 'SQUAD_V1.1' in table

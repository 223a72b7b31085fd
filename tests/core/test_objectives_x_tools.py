"""Every tool that takes a run, on a run of every objective: it does what fits, or refuses with
one `error:` line (a UserError); a crash is a bug.

The tools: the inspector, the plotter, convert/export to Hugging Face and back to a workdir,
fine-tuning's `init_from`, the linear probe, continued pre-training's `init_from`, and
compare_objectives' equal-FLOPs budget. (The accelerator check measures the default config's
step on the hardware; it takes no run.) One 2-step run per objective, trained once per module.
"""

import os
import sys

import flax.linen as nn
import jax
import numpy as np
import pytest

from electra_jax import plot
from electra_jax.configs import default
from electra_jax.configs.finetune import probe
from electra_jax.core import model as model_lib
from electra_jax.core import objectives
from electra_jax.errors import UserError
from electra_jax.finetune import linear_probe
from electra_jax.finetune import start
from electra_jax.inspection import detection
from electra_jax.inspection import examples
from electra_jax.inspection import html_page
from electra_jax.inspection import loading
from electra_jax.inspection import terminal
from electra_jax.interop import export
from electra_jax.interop import pretrained as pretrained_lib
from electra_jax.pretraining import train
from tiny_run import tiny_run_config  # tests/tiny_run.py

TEXT = 'The cat sat on the mat and looked at the dog.'


@pytest.fixture(scope='module')
def runs(repo_root, tmp_path_factory):
  """{objective name: (workdir, config)}: two steps of the tiny run's model for each."""
  root = tmp_path_factory.mktemp('objective_runs')
  base = tiny_run_config(repo_root, root)
  base.train.num_steps, base.train.eval_every, base.train.checkpoint_every = 2, 2, 2
  out = {}
  for name in objectives.NAMES:
    config = base.copy_and_resolve_references()
    config.electra.objective = name
    workdir = str(root / name)
    train.train_and_evaluate(config, workdir, devices=jax.devices()[:1])
    out[name] = (workdir, config)
  return out


def test_every_objective_is_registered_once_and_says_what_it_is():
  assert objectives.NAMES == ('electra', 'mlm', 'electra_15', 'replace_mlm', 'all_tokens_mlm')
  for name, objective in objectives.REGISTRY.items():
    assert objective.name == name and objectives.named(name) is objective
    assert objective.main_export in objectives.base.EXPORTS
    assert objective.detector in objectives.base.DETECTORS
    # A detector is read from a discriminator, or from the copy gate of an all-tokens network.
    assert (objective.detector == 'discriminator') == (
        objective.main_network is model_lib.Discriminator)
  with pytest.raises(UserError, match=r"config\.electra\.objective='bert'.*all_tokens_mlm"):
    objectives.named('bert')


# ---- The inspector -------------------------------------------------------------------------

@pytest.mark.parametrize('name', objectives.NAMES)
def test_the_inspector_shows_a_detector_or_a_masked_lms_predictions(runs, name):
  workdir, _ = runs[name]
  objective = objectives.named(name)
  checkpoint = loading.load(workdir)
  ids, types = examples.encode_text(checkpoint, TEXT)
  if objective.detector is None:
    _check_masked_lm_inspection(checkpoint, ids, types, objective)
    return
  for as_typed in (False, True):
    inspection, = detection.inspect_examples(checkpoint, ids, types, as_typed=as_typed)
    assert np.all((inspection.p_replaced > 0) & (inspection.p_replaced < 1))
  # As typed, P(replaced) is the detector's own reading of the main network.
  main = objective.main_network(checkpoint.pretrained.disc_config)
  outputs = main.apply({'params': checkpoint.pretrained.disc_params}, ids, types,
                       np.ones_like(ids))
  logits = outputs[1] * -1 if name == 'all_tokens_mlm' else outputs  # 1 - the copy probability
  np.testing.assert_allclose(inspection.p_replaced, jax.nn.sigmoid(logits)[0], rtol=1e-5)


def _check_masked_lm_inspection(checkpoint, ids, types, objective):
  """A masked LM's top-1 and P(original) at the masked positions are the network's own, on the
  input its objective trains it on; it cannot score text as typed (one line)."""
  with pytest.raises(UserError, match='drop --score_as_typed'):
    detection.inspect_examples(checkpoint, ids, types, as_typed=True)
  inspection, = detection.inspect_examples(checkpoint, ids, types, seed=3)
  assert inspection.is_masked_lm and inspection.p_replaced is None and inspection.masked.any()
  assert inspection.has_generator == objective.has_generator
  if not objective.has_generator:  # 'mlm' reads the masked text itself
    np.testing.assert_array_equal(inspection.corrupted_ids, inspection.generator_input_ids)
  real = len(inspection.input_ids)
  seen = np.array(ids)
  seen[0, :real] = inspection.corrupted_ids
  positions = np.flatnonzero(inspection.masked)[None].astype(np.int32)
  main = objective.main_network(checkpoint.pretrained.disc_config)
  logits = main.apply({'params': checkpoint.pretrained.disc_params}, seen, types,
                      (ids != checkpoint.tokenizer.pad_id).astype(np.int32), positions)[0]
  piece = checkpoint.tokenizer.id_to_piece
  assert [inspection.predicted_pieces[i] for i in positions[0]] == [
      piece(int(i)) for i in np.argmax(logits, axis=-1)]
  p_original = jax.nn.softmax(logits, axis=-1)[np.arange(positions.shape[1]),
                                               inspection.input_ids[positions[0]]]
  np.testing.assert_allclose(inspection.p_original[positions[0]], p_original, rtol=1e-4)
  assert np.isnan(inspection.p_original[~inspection.masked]).all()
  table = terminal.render_terminal([inspection], color=False)
  assert 'prediction' in table and 'P(original)' in table and 'top-1 right at' in table
  page = html_page.render_html([inspection], source='run', special_ids=[])
  assert 'Masked-LM predictions' in page and page.count('data-p=') == positions.shape[1]


# ---- The plotter -------------------------------------------------------------------------------

def test_the_plotter_draws_every_objectives_run_together(runs, tmp_path):
  workdirs = [runs[name][0] for name in objectives.NAMES]
  panels = plot.plot_curves(workdirs, str(tmp_path / 'curves.png'))
  assert panels and os.path.getsize(tmp_path / 'curves.png') > 0
  drawn = [label for labels in panels.values() for label in labels]
  for run in plot.run_names(workdirs):  # every run has lines ('NAME (train)', 'NAME (eval)')
    assert any(label.startswith(run) for label in drawn), (run, drawn)


# ---- Export, and the export read back ------------------------------------------------------------

@pytest.mark.parametrize('name', objectives.NAMES)
def test_export_writes_the_objectives_classes_and_reads_back(runs, name, tmp_path):
  workdir, _ = runs[name]
  objective = objectives.named(name)
  source = pretrained_lib.load_checkpoint(workdir)
  assert source.objective == name
  written = export.write_hf(source, str(tmp_path / 'hf'))
  expected = [objective.main_export] + (['generator'] if objective.has_generator else [])
  assert sorted(os.path.basename(p) for p in written) == sorted(expected)

  back = pretrained_lib.load_checkpoint(str(tmp_path / 'hf'))
  assert back.trained_by.main_export == objective.main_export
  assert back.trained_by.has_generator == objective.has_generator
  kept = {k: v for k, v in source.disc_params.items()
          if not (name == 'all_tokens_mlm' and k == 'discriminator_predictions')}  # no HF class
  jax.tree.map(np.testing.assert_array_equal, back.disc_params, kept)

  # Back to a workdir, for an objective that continues this main network; others are refused.
  config = default.get_config()
  config.electra.objective = back.objective
  config.electra.embedding_sharing = runs[name][1].electra.embedding_sharing
  config.electra.generator_hidden_fraction = runs[name][1].electra.generator_hidden_fraction
  export.write_workdir(back, str(tmp_path / 'workdir'), config)
  again = pretrained_lib.load_checkpoint(str(tmp_path / 'workdir'))
  assert again.objective == back.objective
  jax.tree.map(np.testing.assert_array_equal, again.disc_params, back.disc_params)
  other = next(o for o in objectives.NAMES
               if objectives.named(o).main_network is not back.trained_by.main_network)
  config.electra.objective = other
  with pytest.raises(UserError, match=f'--config.electra.objective={back.objective}'):
    export.write_workdir(back, str(tmp_path / 'refused'), config)


# ---- Fine-tuning and the linear probe: the main network's encoder --------------------------------

@pytest.mark.parametrize('name', objectives.NAMES)
def test_fine_tuning_starts_from_the_main_networks_encoder(runs, name):
  workdir, _ = runs[name]
  config = probe.get_config()
  config.init_from = workdir
  starting = start.load_starting_point(config)
  assert objectives.named(name).main_export in starting.description
  assert name in starting.description
  source = pretrained_lib.load_checkpoint(workdir)
  for layer in ('embeddings', 'encoder'):
    jax.tree.map(np.testing.assert_array_equal, starting.encoder_params[layer], source.disc_params[layer])


@pytest.mark.parametrize('name', ['mlm', 'all_tokens_mlm'])
def test_the_linear_probe_reads_a_masked_lm_run(runs, name, tmp_path):
  workdir, _ = runs[name]
  config = probe.get_config()
  config.init_from = workdir
  config.data.max_seq_length = 32
  config.probe.max_train_examples, config.probe.max_dev_examples = 30, 15
  config.probe.linear_l2_grid, config.probe.linear_folds = (1.0,), 2
  result = linear_probe.run(config, str(tmp_path / 'linear'))
  assert 0.0 <= result['accuracy'] <= 1.0 and result['num_features'] == 64


# ---- Continued pre-training from another objective's run ----------------------------------------

@pytest.mark.parametrize('source, target', [('mlm', 'replace_mlm'), ('electra', 'electra_15'),
                                            ('mlm', 'electra'), ('electra', 'all_tokens_mlm')])
def test_continued_pre_training_takes_a_main_network_it_can_continue(runs, source, target):
  workdir, config = runs[source]
  config = config.copy_and_resolve_references()
  config.electra.objective, config.init_from = target, workdir
  spec, mesh = train.spec_and_mesh(config, jax.devices()[:1], 1)
  objective = spec.objective
  program = train.build_program(spec, mesh)
  fresh = jax.tree.map(lambda s: jax.numpy.zeros(s.shape, s.dtype, device=s.sharding),
                       program.abstract_state.params)
  pretrained = pretrained_lib.load_checkpoint(workdir)
  if objective.main_network is not pretrained.trained_by.main_network:
    with pytest.raises(UserError, match='cannot continue'):
      pretrained_lib.initial_params(spec, fresh, pretrained)
    return
  params = pretrained_lib.initial_params(spec, fresh, pretrained)
  main = objective.split_params(nn.meta.unbox(params), spec.embedding_sharing)['discriminator']
  jax.tree.map(np.testing.assert_array_equal, main['encoder'], pretrained.disc_params['encoder'])


# ---- compare_objectives: one registry ------------------------------------------------------------

def test_compare_objectives_budgets_every_registered_objective(repo_root):
  sys.path.insert(0, str(repo_root / 'benchmarks'))
  try:
    import compare_objectives  # noqa: PLC0415 - a script beside the package
  finally:
    sys.path.pop(0)
  assert compare_objectives.OBJECTIVES == objectives.NAMES
  args = compare_objectives.parse_args(['--workdir=/unused', '--electra_steps=100',
                                        '--max_seq_length=32', '--batch_size=8'])
  budget = compare_objectives.steps_for_budget(args, objectives.NAMES)
  assert budget['electra'] == budget['electra_15'] == 100
  assert 0 < budget['all_tokens_mlm'] < budget['replace_mlm'] < 100  # dearer per step
  assert all(steps > 0 for steps in budget.values())

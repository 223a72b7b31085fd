"""Test helper: tests that compile for a TPU topology need libtpu (the `[tpu]` extra).

Not named `libtpu.py`: tests/ is on sys.path, and that name would hide the real package.
"""

import importlib.util

import pytest

HAS_LIBTPU = importlib.util.find_spec('libtpu') is not None
needs_libtpu = pytest.mark.skipif(
    not HAS_LIBTPU, reason="libtpu is not installed: pip install 'electra-jax[tpu]' to compile "
    'for TPU topologies')

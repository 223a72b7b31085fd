"""The one atomic writer and the one JSON writer (electra_jax/files.py)."""

import json
import os

import pytest

from electra_jax import files


def test_write_atomically_replaces_the_file_and_leaves_no_temporary(tmp_path):
  path = tmp_path / 'out.bin'
  files.write_atomically(str(path), b'first')
  files.write_atomically(str(path), 'second \u00e9')
  assert path.read_bytes() == 'second \u00e9'.encode()
  assert os.listdir(tmp_path) == ['out.bin']


def test_a_path_that_cannot_be_written_is_a_user_error_naming_it(tmp_path):
  with pytest.raises(ValueError, match=r'cannot write --html=.*page.html'):
    files.write_atomically(str(tmp_path / 'missing' / 'page.html'), 'x',
                           what=f'--html={tmp_path}/missing/page.html')
  assert os.listdir(tmp_path) == []


def test_write_json_is_indented_utf8_with_a_final_newline(tmp_path):
  path = tmp_path / 'r.json'
  files.write_json(str(path), {'task': 'caf\u00e9', 'score': 0.5})
  text = path.read_text(encoding='utf-8')
  assert text == json.dumps({'task': 'caf\u00e9', 'score': 0.5}, indent=2,
                            ensure_ascii=False) + '\n'

"""The tokenizer-training CLI (`python -m electra_jax.tokenizer`)."""

import subprocess
import sys

import numpy as np
import pytest

from electra_jax.data import tokenizers

_SMALL_TEXT = [f'Sentence number {i} talks about {w} and other things.'
               for i in range(200) for w in ('lists', 'tuples', 'dicts')]


@pytest.mark.slow
def test_cli_trains_from_files(tmp_path, repo_root):
  corpus_file = tmp_path / 'text.txt'
  corpus_file.write_text('\n'.join(_SMALL_TEXT) + '\n\n')
  result = subprocess.run(
      [sys.executable, '-m', 'electra_jax.tokenizer', '--source=files',
       f'--files={corpus_file}', '--vocab_size=50', f'--output={tmp_path / "cli"}'],
      cwd=repo_root, capture_output=True, text=True, timeout=300, check=False)
  assert result.returncode == 0, result.stderr[-2000:]
  assert 'cli.model (50 pieces)' in result.stdout
  tok = tokenizers.SentencePieceTokenizer(str(tmp_path / 'cli.model'))
  assert np.all(np.array(tok.encode('Sentence number 7 talks about lists.')) >= 5)

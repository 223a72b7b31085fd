"""Writing a file whole, local or remote (gs://): a reader, or a crash, never leaves half of it.

The one atomic writer (the corpus cache, the tokenizer model, prepared-shard metadata, plots, the
inspector's HTML page, every JSON result) and the one JSON writer. Light to import: TensorFlow is
loaded only for a remote path.
"""

from __future__ import annotations

import json
import os
from typing import Any
import uuid

from electra_jax.errors import UserError


def _gfile():
  import tensorflow as tf  # noqa: PLC0415 - seconds to import; only remote paths need it
  return tf.io.gfile


def write_atomically(path: str, data: bytes | str, what: str | None = None) -> None:
  """Writes `data` (str as UTF-8) to a temporary name next to `path`, then renames it over `path`.

  A local rename is atomic; on GCS the rename is a copy, and the object appears whole. The
  folder must exist.

  Raises:
    UserError: naming `what` (default: the path) when a local file cannot be written.
  """
  if isinstance(data, str):
    data = data.encode('utf-8')
  temp_path = f'{path}.tmp-{uuid.uuid4().hex}'
  if '://' in path:
    gfile = _gfile()
    with gfile.GFile(temp_path, 'wb') as f:
      f.write(data)
    gfile.rename(temp_path, path, overwrite=True)
    return
  try:
    with open(temp_path, 'wb') as f:
      f.write(data)
    os.replace(temp_path, path)
  except OSError as error:
    if os.path.exists(temp_path):
      os.remove(temp_path)
    raise UserError(f'cannot write {what or path}: {error.strerror or error}.') from error


def write_json(path: str, value: Any) -> None:
  """`value` as indented JSON (UTF-8 text, not \\u escapes) and a final newline, atomically."""
  write_atomically(path, json.dumps(value, indent=2, ensure_ascii=False) + '\n')

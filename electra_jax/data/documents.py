"""Sources whose records are documents: JSON Lines, Parquet and Hugging Face datasets.

Each record is one document; its text (`data.text_field`) becomes the lines that document would
have in a text file (`sources.document_lines`), so the packing, the held-out documents and the
batches are those of the same documents written as text files. What differs is only how a *shard*
(the unit spread over hosts and keyed by the held-out hash) is read:

* `jsonl`: a shard is a file (`.jsonl`, `.json`, `.gz`), read by `tf.data.TextLineDataset` (whose
  position is saved in the iterator's checkpoint: exact resume mid-file) and parsed in a
  `tf.py_function`, 256 lines at a time;
* `parquet`: a shard is a row group, so one large file spreads over hosts too; an index of
  (file, row group) is made at start-up from the files' footers, and a row group's text column
  is read with pyarrow in a `tf.py_function` (the iterator's checkpoint saves the row group and
  the row within it);
* `hf`: a shard is a run of `data.hf_shard_rows` rows of a `datasets.Dataset` (a `save_to_disk`
  directory or `load_dataset(hf_path, hf_name, split=...)`), read by slicing the memory-mapped
  Arrow table.

pyarrow and `datasets` are imported only when such a source is used (the `[hf]` extra).
Bad records go through `bad_records.report` (one error line, or skipped and counted).
"""

from __future__ import annotations

import gzip
import io
import itertools
import json
import os
import threading
from typing import Callable, Iterator, Sequence
import zlib

import numpy as np
import tensorflow as tf

from electra_jax.data import bad_records
from electra_jax.data import corpus
from electra_jax.data import sources
from electra_jax.errors import UserError

_PARSE_BATCH = 256  # JSON lines parsed per py_function call
_NO_TEXTS = (np.zeros([0], object),)


def _need(module: str):
  """Imports an optional dependency, or says which extra brings it."""
  try:
    return __import__(module, fromlist=['_'])
  except ImportError:
    raise UserError(f'This data source needs {module.split(".")[0]!r}: pip install '
                    '"electra-jax[hf]" (or pip install datasets pyarrow).') from None


def _string_tensor(texts: Sequence[str | bytes]) -> np.ndarray:
  return np.array([t.encode('utf-8') if isinstance(t, str) else t for t in texts], dtype=object)


def _text_of(value, where: str, text_field: str, fields, policy: str) -> str | None:
  """A record's text, or None (reported) when the record has no usable text."""
  if fields is not None and text_field not in fields:
    bad_records.report(f'{where}: the record has no field {text_field!r}; its fields are '
                       f'{sorted(fields)}. Set --config.data.text_field.', policy)
    return None
  if not isinstance(value, str):
    bad_records.report(f'{where}: field {text_field!r} holds {type(value).__name__}, not text. '
                       'Set --config.data.text_field to a text field.', policy)
    return None
  return value


# ---- JSON Lines ---------------------------------------------------------------------------------


def parse_json_line(raw: bytes, where: str, text_field: str, policy: str) -> str | None:
  """The text of one JSON line; None for a blank line or a bad record (reported)."""
  if not raw.strip():
    return None
  try:
    record = json.loads(raw)
  except ValueError as error:
    bad_records.report(f'{where} is not JSON ({error}).', policy)
    return None
  if not isinstance(record, dict):
    bad_records.report(f'{where} is a JSON {type(record).__name__}, not an object with a '
                       f'{text_field!r} field.', policy)
    return None
  return _text_of(record.get(text_field), where, text_field, record.keys(), policy)


def _shaped(outputs):
  return tuple(tf.ensure_shape(output, [None]) for output in outputs)


def check_jsonl_files(files: Sequence[str]) -> None:
  """JSON Lines are read plain or gzipped; zstd is refused by name (see WORKSPACE)."""
  for path in files:
    if path.endswith(('.zst', '.zstd')):
      raise UserError(f'{path} is zstd-compressed, which source=jsonl does not read (its reader '
                      'could not resume mid-file). Recompress it as .gz (zstd -dc F | gzip > '
                      'F.gz), or read it with --config.data.source=hf --config.data.hf_path=json '
                      '--config.data.hf_data_files=... --config.data.hf_streaming=True.')


def jsonl_lines_fn(files: Sequence[str], text_field: str, policy: str):
  """`shard_index -> tf.data.Dataset of lines` for JSON Lines files (one shard per file)."""
  check_jsonl_files(files)
  paths = tf.constant(list(files))

  def parse(path, first_line, raw_lines):
    name = path.numpy().decode()
    first = int(first_line.numpy())
    texts = [parse_json_line(raw, f'{name}: line {first + i}', text_field, policy)
             for i, raw in enumerate(raw_lines.numpy())]
    keep = np.array([t is not None for t in texts])
    return _string_tensor([t or '' for t in texts]), keep

  def lines_of(shard_index):
    path = paths[shard_index]
    documents = (sources.text_lines(path, policy).enumerate(start=1).batch(_PARSE_BATCH)
                 .map(lambda numbers, raw: _shaped(bad_records.py_function(
                     parse, [path, numbers[0], raw], [tf.string, tf.bool], _NO_TEXTS * 2)))
                 .unbatch()
                 .filter(lambda text, keep: keep)
                 .map(lambda text, keep: text))
    return sources.document_lines(documents)

  return lines_of


def _iter_raw_lines(path: str) -> Iterator[bytes]:
  with tf.io.gfile.GFile(path, 'rb') as raw_file:
    if path.endswith('.gz'):
      yield from io.BufferedReader(gzip.GzipFile(fileobj=raw_file))
    else:
      yield from raw_file


def iter_jsonl_documents(files: Sequence[str], text_field: str,
                         policy: str = 'error') -> Iterator[str]:
  """The documents of JSON Lines files in order (Python side: tokenizer, checks)."""
  check_jsonl_files(files)
  for path in files:
    try:
      for number, raw in enumerate(_iter_raw_lines(path), 1):
        text = parse_json_line(raw, f'{path}: line {number}', text_field, policy)
        if text is not None:
          yield text
    except (EOFError, OSError, zlib.error) as error:
      bad_records.report(f'{path} is a truncated or corrupt gzip file ({error}).', policy)


# ---- Parquet ------------------------------------------------------------------------------------


def _parquet_file(path: str):
  """A pyarrow ParquetFile: local paths directly, others (gs://) through tf.io.gfile."""
  parquet = _need('pyarrow.parquet')
  if '://' not in path:
    return parquet.ParquetFile(path)
  return parquet.ParquetFile(_need('pyarrow').PythonFile(tf.io.gfile.GFile(path, 'rb'), mode='r'))


def parquet_row_groups(files: Sequence[str], text_field: str,
                       policy: str = 'error') -> list[tuple[str, int]]:
  """Every (file, row group) of `files`, in order; each file's column checked from its footer.

  Raises:
    UserError: a file that is not Parquet (under on_bad_record=error), or one without the text
      column (listing its columns) or whose column does not hold text.
  """
  pyarrow = _need('pyarrow')
  groups = []
  for path in files:
    try:
      parquet_file = _parquet_file(path)
    except (OSError, pyarrow.ArrowException) as error:
      bad_records.report(f'{path} is not a readable Parquet file ({error}).', policy)
      continue
    schema = parquet_file.schema_arrow
    if text_field not in schema.names:
      raise UserError(f'{path} has no column {text_field!r}; its columns are {schema.names}. '
                      'Set --config.data.text_field.')
    column_type = schema.field(text_field).type
    if not (pyarrow.types.is_string(column_type) or pyarrow.types.is_large_string(column_type)):
      raise UserError(f'{path}: column {text_field!r} holds {column_type}, not text. Set '
                      '--config.data.text_field to a text column.')
    groups.extend((path, g) for g in range(parquet_file.metadata.num_row_groups))
  return groups


def read_row_group(path: str, row_group: int, text_field: str, policy: str) -> list[str]:
  """The texts of one row group (null values and unreadable groups reported)."""
  pyarrow = _need('pyarrow')
  try:
    values = _parquet_file(path).read_row_group(row_group, columns=[text_field]).column(0)
  except (OSError, pyarrow.ArrowException) as error:
    bad_records.report(f'{path}: row group {row_group} cannot be read ({error}).', policy)
    return []
  texts = values.to_pylist()
  kept = []
  for row, text in enumerate(texts):
    text = _text_of(text, f'{path}: row group {row_group}, row {row}', text_field, None, policy)
    if text is not None:
      kept.append(text)
  return kept


def row_group_lines_fn(groups: Sequence[tuple[str, int]], text_field: str, policy: str):
  """`shard_index -> tf.data.Dataset of lines` over (file, row group) shards."""
  def read(shard_index):
    path, row_group = groups[int(shard_index.numpy())]
    return _string_tensor(read_row_group(path, row_group, text_field, policy))

  return _rows_lines_fn(read)


def _rows_lines_fn(read: Callable[[tf.Tensor], np.ndarray]):
  """Lines of shards whose documents `read(shard_index)` returns at once (a py_function)."""
  def lines_of(shard_index):
    texts = bad_records.py_function(lambda i: (read(i),), [shard_index], [tf.string], _NO_TEXTS)
    return sources.document_lines(
        tf.data.Dataset.from_tensor_slices(tf.ensure_shape(texts[0], [None])))

  return lines_of


def iter_parquet_documents(files: Sequence[str], text_field: str,
                           policy: str = 'error') -> Iterator[str]:
  for path, row_group in parquet_row_groups(files, text_field, policy):
    yield from read_row_group(path, row_group, text_field, policy)


# ---- Shards of a source, for the pipeline -------------------------------------------------------


def record_source_shards(data, files: Sequence[str]):
  """(lines_of, num_shards) of a `jsonl` or `parquet` source over `files`."""
  policy = data.on_bad_record
  if data.source == 'jsonl':
    return jsonl_lines_fn(files, data.text_field, policy), len(files)
  if data.source == 'parquet':
    groups = parquet_row_groups(files, data.text_field, policy)
    if not groups:
      raise UserError(f'{data.train_files!r}: no readable row group in {len(files)} Parquet '
                      'file(s): an empty dataset.')
    return row_group_lines_fn(groups, data.text_field, policy), len(groups)
  raise ValueError(f'not a record source: {data.source!r}')


def iter_documents(source: str, files: Sequence[str], text_field: str,
                   policy: str = 'error') -> Iterator[str]:
  """The documents of a `jsonl` or `parquet` file list, in order."""
  if source == 'jsonl':
    return iter_jsonl_documents(files, text_field, policy)
  return iter_parquet_documents(files, text_field, policy)


def document_texts(documents: Iterator[str], max_chars: int) -> Iterator[str]:
  """Non-empty lines of documents, cleaned as file lines are (for tokenizer training)."""
  for document in documents:
    for line in document.split('\n'):
      line = corpus.clean_line(line.encode('utf-8', errors='replace'), max_chars)
      if line:
        yield line


def is_saved_dataset(path: str) -> bool:
  """Whether `path` is a directory written by `save_to_disk` (a Dataset or a DatasetDict)."""
  return any(tf.io.gfile.exists(os.path.join(path, name))
             for name in ('state.json', 'dataset_dict.json'))


# ---- Hugging Face datasets ----------------------------------------------------------------------


def load_hf_dataset(data, split: str, streaming: bool = False):
  """The `datasets.Dataset` of `split` from `data.hf_path` (saved directory or load_dataset);
  with `streaming`, `load_dataset`'s `IterableDataset`.

  Raises:
    UserError: no path, an unknown dataset or split, or no text column (listing the columns).
  """
  datasets = _need('datasets')
  if not data.hf_path:
    raise UserError('data.hf_path is empty: give a directory written by Dataset.save_to_disk, or '
                    'a name or path for datasets.load_dataset, e.g. --config.data.hf_path=json '
                    "--config.data.hf_data_files='/data/*.jsonl.gz'.")
  try:
    if is_saved_dataset(data.hf_path) and not streaming:
      dataset = datasets.load_from_disk(data.hf_path)
      if isinstance(dataset, datasets.DatasetDict):
        if split not in dataset:
          raise UserError(f'{data.hf_path} has no split {split!r}; it has {sorted(dataset)}. '
                          'Set --config.data.hf_split / hf_eval_split.')
        dataset = dataset[split]
    else:
      data_files = [f.strip() for f in data.hf_data_files.split(',') if f.strip()] or None
      dataset = datasets.load_dataset(data.hf_path, data.hf_name or None, split=split,
                                      data_files=data_files, streaming=streaming)
  except UserError:
    raise
  except Exception as error:  # noqa: BLE001 - datasets raises many types for a bad name/split
    reason = str(error).strip().splitlines()[0] if str(error).strip() else type(error).__name__
    raise UserError(f'data.hf_path={data.hf_path!r} (split {split!r}) cannot be loaded: '
                    f'{reason}') from None
  if streaming:
    return dataset  # its features may be unknown until read: rows are checked one by one
  features = dataset.features
  if data.text_field not in features:
    raise UserError(f'{data.hf_path} (split {split!r}) has no column {data.text_field!r}; its '
                    f'columns are {sorted(features)}. Set --config.data.text_field.')
  dtype = getattr(features[data.text_field], 'dtype', None)
  if dtype not in ('string', 'large_string'):
    raise UserError(f'{data.hf_path}: column {data.text_field!r} holds '
                    f'{features[data.text_field]}, not text. Set --config.data.text_field.')
  if not len(dataset):
    raise UserError(f'{data.hf_path} (split {split!r}) is an empty dataset: it has no rows.')
  return dataset


def hf_rows(dataset, start: int, stop: int, where: str, text_field: str,
            policy: str) -> list[str]:
  """The texts of rows [start, stop) (null values reported)."""
  texts = dataset[start:stop][text_field]
  kept = []
  for row, text in enumerate(texts, start):
    text = _text_of(text, f'{where}: row {row}', text_field, None, policy)
    if text is not None:
      kept.append(text)
  return kept


class _StreamChunks:
  """Chunk c of shard s of a streamed dataset: records [c * size, (c + 1) * size).

  Chunks are asked for in order, so each shard's open iterator is kept and continued; any other
  chunk (the first one after a restore) reopens the shard and skips the records before it.
  """

  def __init__(self, stream, size: int, where: str, text_field: str, policy: str):
    self._stream, self._size, self._where = stream, size, where
    self._text_field, self._policy = text_field, policy
    self._open = {}  # shard -> (next chunk, iterator, next row)
    self._lock = threading.Lock()

  def read(self, shard, chunk) -> np.ndarray:
    shard, chunk = int(shard.numpy()), int(chunk.numpy())
    with self._lock:
      next_chunk, rows, row = self._open.pop(shard, (None, None, 0))
    if next_chunk != chunk:
      rows = iter(self._stream.shard(num_shards=self._stream.num_shards, index=shard))
      row = 0
      for _ in itertools.islice(rows, chunk * self._size):
        row += 1
    texts = []
    for record in itertools.islice(rows, self._size):
      text = _text_of(record.get(self._text_field), f'{self._where}: shard {shard}, row {row}',
                      self._text_field, record.keys(), self._policy)
      row += 1
      if text is not None:
        texts.append(text)
    with self._lock:
      self._open[shard] = (chunk + 1, rows, row)
    return _string_tensor(texts)


def _hf_streaming_shards(data, split: str):
  """(lines_of, num_shards) of a streamed split: a shard is one of the stream's own shards."""
  stream = load_hf_dataset(data, split, streaming=True)
  chunks = _StreamChunks(stream, data.hf_shard_rows, f'{data.hf_path} (split {split!r})',
                         data.text_field, data.on_bad_record)

  def lines_of(shard_index):
    texts = (tf.data.Dataset.range(1 << 62)
             .map(lambda chunk: tf.ensure_shape(bad_records.py_function(
                 lambda *args: (chunks.read(*args),), [shard_index, chunk], [tf.string],
                 _NO_TEXTS)[0], [None]))
             .take_while(lambda texts: tf.size(texts) > 0)
             .flat_map(tf.data.Dataset.from_tensor_slices))
    return sources.document_lines(texts)

  return lines_of, stream.num_shards


def hf_source_shards(data, split: str):
  """(lines_of, num_shards) of a split of an `hf` source: runs of `hf_shard_rows` rows, or with
  `hf_streaming` the stream's own shards (files), read `hf_shard_rows` records at a time."""
  if data.hf_streaming:
    return _hf_streaming_shards(data, split)
  dataset = load_hf_dataset(data, split)
  rows, size = data.hf_shard_rows, len(dataset)
  where = f'{data.hf_path} (split {split!r})'

  def read(shard_index):
    start = int(shard_index.numpy()) * rows
    return _string_tensor(hf_rows(dataset, start, min(start + rows, size), where,
                                  data.text_field, data.on_bad_record))

  return _rows_lines_fn(read), -(-size // rows)


def iter_hf_documents(data, split: str) -> Iterator[str]:
  if data.get('hf_streaming'):
    for row, record in enumerate(load_hf_dataset(data, split, streaming=True)):
      text = _text_of(record.get(data.text_field), f'{data.hf_path}: row {row}', data.text_field,
                      record.keys(), data.on_bad_record)
      if text is not None:
        yield text
    return
  dataset = load_hf_dataset(data, split)
  where = f'{data.hf_path} (split {split!r})'
  for start in range(0, len(dataset), 1000):
    yield from hf_rows(dataset, start, min(start + 1000, len(dataset)), where, data.text_field,
                       data.on_bad_record)

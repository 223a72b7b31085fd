"""Text sources as tf.data streams of lines, sharded across hosts.

A source is a list of *shards*, each an ordered stream of lines (blank line = document boundary):
the built-in corpus has `corpus.BUILTIN_NUM_SHARDS` document-aligned shards, a file list one shard
per file. Host `p` of `P` reads shards `p, p + P, ...`, so hosts read disjoint text that together
covers the source. With fewer shards than hosts every host reads all shards and keeps every P-th
packed example instead (see `HostShards`).

TFDS datasets are different: their splits are cut per host with `tfds.even_splits` (read
instructions), and each record is a document whose lines are split on newlines.
"""

import dataclasses
from typing import Iterator, Sequence
import zlib

from absl import logging
import numpy as np
import tensorflow as tf

from electra_jax.data import bad_records
from electra_jax.data import corpus
from electra_jax.errors import UserError

_CHECK_CHUNK = 1 << 20  # compressed bytes per read when checking a gzip file's end


@dataclasses.dataclass(frozen=True)
class HostShards:
  """The shards one host reads.

  Attributes:
    shard_indices: global indices of this host's shards.
    example_stride: 1 when shards were split over hosts; P when every host reads every shard and
      must keep only examples i with i % P == example_offset.
    example_offset: this host's residue when `example_stride > 1`.
  """
  shard_indices: tuple[int, ...]
  example_stride: int = 1
  example_offset: int = 0


def assign_shards(num_shards: int, process_index: int, process_count: int,
                  what: str = 'shards') -> HostShards:
  """Splits `num_shards` shards over `process_count` hosts (round robin)."""
  if not 0 <= process_index < process_count:
    raise ValueError(f'process_index={process_index} is outside [0, {process_count}).')
  if num_shards >= process_count:
    return HostShards(tuple(range(process_index, num_shards, process_count)))
  logging.warning('Only %d %s for %d hosts: every host reads all of them and keeps every %d-th '
                  'example. Split the data into at least %d files to avoid the waste.', num_shards,
                  what, process_count, process_count, process_count)
  return HostShards(tuple(range(num_shards)), process_count, process_index)


def builtin_lines_fn(packages: str = '', split_shards: int = corpus.BUILTIN_NUM_SHARDS):
  """`shard_index -> tf.data.Dataset of lines` for the built-in corpus (with `packages`)."""
  built = corpus.builtin_corpus(packages)
  shard_lines = [built.shard_lines(i, split_shards) for i in range(split_shards)]
  starts = [0]
  for lines in shard_lines:
    starts.append(starts[-1] + len(lines))
  all_lines = tf.constant([line for lines in shard_lines for line in lines])
  starts = tf.constant(starts, tf.int64)

  def lines_of(shard_index):
    shard_index = tf.cast(shard_index, tf.int64)
    return tf.data.Dataset.from_tensor_slices(
        all_lines[starts[shard_index]:starts[shard_index + 1]])

  return lines_of


# ---- Gzip integrity (text files and JSON Lines) -------------------------------------------------


def _gzip_end(path: str) -> tuple[bool, int, int]:
  """(complete, lines, compressed bytes) of a gzip file, decompressed in C; multi-member files ok.

  TensorFlow's gzip reader ends a truncated file quietly where its data stop: this check is what
  tells a cut file from a complete one.
  """
  lines = size = 0
  decompressor = zlib.decompressobj(wbits=31)
  with tf.io.gfile.GFile(path, 'rb') as f:
    while chunk := f.read(_CHECK_CHUNK):
      size += len(chunk)
      while chunk:
        try:
          lines += decompressor.decompress(chunk).count(b'\n')
        except zlib.error:
          return False, lines, size
        chunk = decompressor.unused_data if decompressor.eof else b''
        if decompressor.eof and chunk:
          decompressor = zlib.decompressobj(wbits=31)
  return decompressor.eof and not decompressor.unconsumed_tail, lines, size


def gzip_check(path: tf.Tensor, policy: str) -> tf.data.Dataset:
  """An empty dataset of lines that, when reached (after the file's lines), checks a gzip's end."""
  def check(path_tensor):
    name = path_tensor.numpy().decode()
    complete, lines, size = _gzip_end(name)
    if not complete:
      bad_records.report(f'{name} is a truncated or corrupt gzip file: it breaks off after line '
                         f'{lines} (of {size} compressed bytes); the rest of the file is lost.',
                         policy)
    return (np.array(b'', dtype=object),)

  return (tf.data.Dataset.from_tensors(path)
          .map(lambda p: tf.ensure_shape(
              bad_records.py_function(check, [p], [tf.string], [b''])[0], []))
          .filter(lambda line: tf.constant(False)))


def text_lines(path: tf.Tensor, policy: str) -> tf.data.Dataset:
  """The raw lines of one text file (gzip by name), a gzip's end checked after its last line."""
  is_gzip = tf.strings.regex_full_match(path, r'.*\.gz')
  lines = tf.data.TextLineDataset(path, compression_type=tf.where(is_gzip, 'GZIP', ''))
  check = (tf.data.Dataset.from_tensors(path)
           .filter(lambda p: tf.strings.regex_full_match(p, r'.*\.gz'))
           .flat_map(lambda p: gzip_check(p, policy)))
  return lines.concatenate(check)


def files_lines_fn(files: Sequence[str], policy: str = 'error'):
  """`shard_index -> tf.data.Dataset of lines` for a file list (one shard per file)."""
  paths = tf.constant(list(files))

  def lines_of(shard_index):
    return text_lines(paths[shard_index], policy)

  return lines_of


# ---- TFDS -------------------------------------------------------------------------------------


def tfds_builder(name: str, data_dir: str, text_feature: str):
  """The TFDS builder of `name`, checked to have a string feature `text_feature`.

  Raises:
    ValueError: unknown dataset, or no such text feature.
  """
  import tensorflow_datasets as tfds  # noqa: PLC0415
  if not name:
    raise UserError('data.tfds_name is empty: name a TFDS text dataset, e.g. '
                    '--config.data.tfds_name=wikipedia/20230601.en')
  try:
    builder = tfds.builder(name, data_dir=data_dir or None)
  except Exception as e:  # noqa: BLE001 - TFDS raises several types (DatasetNotFoundError, ...)
    # TFDS's message lists every dataset or config it knows, one per line: keep the first line
    # and a few of the closest names it suggests.
    lines = [line.strip(' -\t') for line in str(e).splitlines() if line.strip()]
    reason = lines[0].rstrip('.') if lines else type(e).__name__
    if 'closely match' in reason:
      reason += ' ' + ', '.join(line.split(':')[0] for line in lines[1:4])
    raise UserError(f'TFDS dataset {name!r} cannot be loaded (data_dir searched: '
                    f'{data_dir or tfds.core.constants.DATA_DIR}): {reason}. Check '
                    '--config.data.tfds_name and --config.data.tfds_data_dir.') from None
  features = builder.info.features
  if text_feature not in features.keys():
    raise UserError(f'TFDS dataset {name!r} has no feature {text_feature!r}; its features are '
                    f'{sorted(features.keys())}. Set --config.data.tfds_text_feature.')
  if features[text_feature].dtype != tf.string:
    raise UserError(f'TFDS feature {name}:{text_feature} holds {features[text_feature].dtype}, '
                    'not text. Set --config.data.tfds_text_feature to a text feature.')
  return builder


def tfds_splits(builder, train_split: str, eval_split: str,
                eval_fraction: float) -> tuple[str, str]:
  """(train, eval) split strings; without an eval split, the last eval_fraction of train is held out.

  Raises:
    ValueError: an unknown split, or a sliced train split with nothing held out for eval.
  """
  known_splits = builder.info.splits  # empty until the data is prepared (or under mock_data)
  for split in (train_split, eval_split):
    base = split.split('[')[0]
    if split and known_splits and base not in known_splits:
      raise UserError(f'TFDS dataset {builder.name!r} has no split {base!r}; it has '
                      f'{sorted(known_splits.keys())}. Set --config.data.tfds_train_split / '
                      'tfds_eval_split.')
  if eval_split:
    return train_split, eval_split
  if '[' in train_split:
    raise UserError(f'data.tfds_train_split={train_split!r} is sliced, so the eval part cannot be '
                    'held out of it automatically: set --config.data.tfds_eval_split too.')
  if known_splits:
    num_examples = known_splits[train_split].num_examples
    num_eval = max(1, int(round(num_examples * eval_fraction)))
    if num_eval >= num_examples:
      raise UserError(f'TFDS split {train_split!r} has {num_examples} examples: too few to hold '
                      f'out {eval_fraction:.1%} for eval. Set --config.data.tfds_eval_split.')
    cut = num_examples - num_eval
    return f'{train_split}[:{cut}]', f'{train_split}[{cut}:]'
  # Sizes unknown: slice by whole percents.
  cut = 100 - max(1, int(round(eval_fraction * 100)))
  return f'{train_split}[:{cut}%]', f'{train_split}[{cut}%:]'


def tfds_documents(builder, split: str, text_feature: str, process_index: int,
                   process_count: int, shuffle_files: bool, seed: int) -> tf.data.Dataset:
  """This host's part of a TFDS split: scalar string documents (one record each)."""
  import tensorflow_datasets as tfds  # noqa: PLC0415
  host_split = tfds.even_splits(split, n=process_count)[process_index]
  read_config = tfds.ReadConfig(shuffle_seed=seed, try_autocache=False)
  try:
    dataset = builder.as_dataset(split=host_split, shuffle_files=shuffle_files,
                                 read_config=read_config)
  except AssertionError as e:  # TFDS's way of saying that the data are not prepared there
    raise UserError(f'TFDS dataset {builder.name!r} has no prepared data in {builder.data_dir}: '
                    'run `tfds build` (or download_and_prepare) for it, or point '
                    '--config.data.tfds_data_dir at a copy that has it.') from e
  return dataset.map(lambda record: record[text_feature], num_parallel_calls=tf.data.AUTOTUNE,
                     deterministic=True)


def document_lines(documents: tf.data.Dataset) -> tf.data.Dataset:
  """Documents -> their lines, each document followed by a blank line.

  The one rule for a source whose records are documents (TFDS, JSON Lines, Parquet, Hugging Face
  datasets): a record's text, stripped, cut at newlines, then a blank line: the lines it has in a
  text file. A blank line inside it (a paragraph break) so ends a document, as in a text file.
  """
  def split(document):
    lines = tf.strings.split(tf.strings.strip(tf.ensure_shape(document, [])), '\n')
    return tf.data.Dataset.from_tensor_slices(tf.concat([lines, [b'']], 0))

  return documents.flat_map(split)


def iter_tfds_texts(name: str, split: str, text_feature: str, data_dir: str,
                    limit: int) -> Iterator[str]:
  """Up to `limit` non-empty lines of a TFDS split, in order (for tokenizer training)."""
  builder = tfds_builder(name, data_dir, text_feature)
  documents = tfds_documents(builder, split, text_feature, 0, 1, shuffle_files=False, seed=0)
  count = 0
  for document in documents.as_numpy_iterator():
    for line in document.decode('utf-8', errors='replace').split('\n'):
      line = line.strip()
      if line:
        yield line
        count += 1
        if count >= limit:
          return

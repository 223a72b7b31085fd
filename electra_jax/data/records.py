"""The prepared-shards format: packed (unmasked) examples in TFRecord files, plus metadata.

A prepared directory holds

* `metadata.json` (written last: its presence means the directory is complete); its `tokenizer`
  entry says which tokenizer the shards were made with (absent in older directories, which are
  SentencePiece),
* that tokenizer: `tokenizer.model` (SentencePiece) or `vocab.txt` (BERT WordPiece, whose casing
  is in the metadata),
* `train-SSSSS-of-NNNNN.tfrecord` and `eval-SSSSS-of-NNNNN.tfrecord` shards.

Each record is a `tf.train.Example` with
* `input_ids`: bytes, the `[max_seq_length]` padded ids as little-endian uint16 (int32 when the
  vocabulary exceeds 65536): raw bytes decode an order of magnitude faster than int64 lists;
* `segment_b_start`: int64, the first position of segment B (max_seq_length if there is none);
  the token types follow from it and the padding.
Masking is not stored: it is applied when the shards are read.
"""

import json
import os

import numpy as np
import tensorflow as tf

from electra_jax import files
from electra_jax.errors import UserError

FORMAT = 'electra_jax.packed.v1'
METADATA_FILE = 'metadata.json'
TOKENIZER_FILE = 'tokenizer.model'  # SentencePiece
WORDPIECE_VOCAB_FILE = 'vocab.txt'


def id_dtype(vocab_size: int) -> str:
  return 'uint16' if vocab_size <= 1 << 16 else 'int32'


def shard_name(split: str, index: int, count: int) -> str:
  return f'{split}-{index:05d}-of-{count:05d}.tfrecord'


def serialize_examples(input_ids: np.ndarray, token_type_ids: np.ndarray, dtype: str) -> list[bytes]:
  """Packed examples `[n, length]` -> serialised `tf.train.Example`s."""
  length = input_ids.shape[1]
  has_b = token_type_ids.any(axis=1)
  segment_b_start = np.where(has_b, token_type_ids.argmax(axis=1), length)
  id_bytes = input_ids.astype(np.dtype(dtype).newbyteorder('<'))
  records = []
  for ids, b_start in zip(id_bytes, segment_b_start):
    example = tf.train.Example(features=tf.train.Features(feature={
        'input_ids': tf.train.Feature(bytes_list=tf.train.BytesList(value=[ids.tobytes()])),
        'segment_b_start': tf.train.Feature(int64_list=tf.train.Int64List(value=[int(b_start)])),
    }))
    records.append(example.SerializeToString())
  return records


def parse_batch(serialized: tf.Tensor, max_seq_length: int, dtype: str,
                pad_id: int) -> dict[str, tf.Tensor]:
  """`[batch]` serialised records -> `input_ids`, `token_type_ids` `[batch, max_seq_length]` int32."""
  features = tf.io.parse_example(serialized, {
      'input_ids': tf.io.FixedLenFeature([], tf.string),
      'segment_b_start': tf.io.FixedLenFeature([], tf.int64),
  })
  ids = tf.io.decode_raw(features['input_ids'], tf.as_dtype(dtype), little_endian=True)
  ids = tf.cast(tf.reshape(ids, [-1, max_seq_length]), tf.int32)
  positions = tf.range(max_seq_length, dtype=tf.int64)[tf.newaxis, :]
  in_b = ((positions >= features['segment_b_start'][:, tf.newaxis])
          & tf.not_equal(ids, pad_id))
  return {'input_ids': ids, 'token_type_ids': tf.cast(in_b, tf.int32)}


def read_metadata(prepared_dir: str) -> dict:
  """The metadata of a complete prepared directory.

  Raises:
    ValueError: the directory is missing, incomplete or of another format.
  """
  if not prepared_dir:
    raise UserError('data.source="prepared" needs --config.data.prepared_dir (the output of '
                    '`python -m electra_jax.data.prepare`).')
  path = os.path.join(prepared_dir, METADATA_FILE)
  if not tf.io.gfile.exists(path):
    raise UserError(f'{prepared_dir!r} has no {METADATA_FILE}: it is not a prepared directory, or '
                    'preparation did not finish. Run `python -m electra_jax.data.prepare '
                    f'--output_dir={prepared_dir} ...` (again).')
  try:
    with tf.io.gfile.GFile(path) as f:
      metadata = json.load(f)
  except (json.JSONDecodeError, UnicodeDecodeError) as e:
    raise UserError(f'{path} is not valid JSON ({e}): prepare the data again.') from None
  if not isinstance(metadata, dict) or metadata.get('format') != FORMAT:
    found = metadata.get('format') if isinstance(metadata, dict) else type(metadata).__name__
    raise UserError(f'{path} has format {found!r}, expected {FORMAT!r}: prepare the data again '
                    'with this version.')
  return metadata


def write_metadata(prepared_dir: str, metadata: dict) -> None:
  path = os.path.join(prepared_dir, METADATA_FILE)
  files.write_atomically(path, json.dumps(metadata, indent=2, sort_keys=True))


_RECORD_OVERHEAD = 16  # per TFRecord: its length (8 bytes) and two CRC32s (4 each)


def checked_records(path: tf.Tensor, size: tf.Tensor, policy: str) -> tf.data.Dataset:
  """The serialised records of one shard; a corrupt or cut record is reported, not a crash.

  TensorFlow's error for a bad record names neither the file nor the policy, and the rest of the
  file cannot be resynchronised. So the file is read up to its first bad record
  (`ignore_errors`), the bytes read are counted, and the file's end compares them with its
  size (`size`, from a stat at start-up): a shortfall is a bad record, reported through
  `bad_records.report` (one error line, or skipped and counted), naming the file, the record
  and the byte offset.
  """
  from electra_jax.data import bad_records  # noqa: PLC0415 - records.py stays light to import

  def report(path_tensor, count, offset, total):
    bad_records.report(
        f'{path_tensor.numpy().decode()} has a corrupt or cut record after record '
        f'{int(count.numpy())} (byte {int(offset.numpy())} of {int(total.numpy())}); the rest of '
        'the file is lost. Prepare the data again or restore the file.', policy)
    return (False,)

  def step(state, element):
    offset, count = state
    record, is_end = element
    length = tf.where(is_end, tf.constant(0, tf.int64),
                      tf.cast(tf.strings.length(record), tf.int64) + _RECORD_OVERHEAD)
    return (offset + length, count + 1 - tf.cast(is_end, tf.int64)), (record, is_end, offset,
                                                                        count)

  def keep(record, is_end, offset, count):
    del record
    return tf.cond(
        tf.logical_and(is_end, offset != size),
        lambda: tf.ensure_shape(bad_records.py_function(
            report, [path, count, offset, size], [tf.bool], [False])[0], []),
        lambda: tf.logical_not(is_end))

  end = tf.data.Dataset.from_tensors((tf.constant(b''), tf.constant(True)))
  return (tf.data.TFRecordDataset(path, buffer_size=1 << 20).ignore_errors()
          .map(lambda record: (record, tf.constant(False)))
          .concatenate(end)
          .scan((tf.constant(0, tf.int64), tf.constant(0, tf.int64)), step)
          .filter(keep)
          .map(lambda record, is_end, offset, count: record))

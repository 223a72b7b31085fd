"""The pre-training input pipeline: config -> per-host tf.data.Dataset of masked batches.

  text source ──> lines ──> tokens ──> packed examples ──> shuffle ──> batch ──> mask ──> prefetch
  (sources.py; records as documents: documents.py)                          (masking.py)
                      (packing.py, on the fly)
  prepared shards (records.py, made once by prepare.py) ──┘

`make_dataset(spec, split, process_index)` returns host `process_index`'s batches of the run spec
`spec` (`spec.run.load(config, process_count=...)`): dicts with `input_ids`, `attention_mask`,
`token_type_ids`, `masked_input_ids` `[batch, length]` int32 and `masked_lm_positions`,
`masked_lm_ids` int32 / `masked_lm_weights` float32 `[batch, max_predictions]`, with batch =
`spec.host_batch_size`.

* 'train' shuffles (files per epoch, examples through a buffer) and repeats forever; 'eval' is the
  fixed held-out part, unshuffled and identical every time: the examples of its first
  `train.eval_steps` batches, cached after one pass and repeated, so that any number of eval
  batches can be drawn (a fresh iterator always starts at the same batch).
* Every random choice (file order, packing, shuffle, masks) derives from `config.seed` through
  stateless ops keyed on counters kept inside the pipeline, so the stream is fixed, and a
  `tf.train.Checkpoint` of the iterator restores it exactly (the trainer saves one per host in
  every checkpoint: `checkpoint.TfIteratorHandler`).
"""

import os

import ml_collections
import tensorflow as tf

from electra_jax.data import corpus
from electra_jax.data import documents
from electra_jax.data import masking
from electra_jax.data import packing
from electra_jax.data import records
from electra_jax.data import sources
from electra_jax.data import tokenizers
from electra_jax.errors import UserError
from electra_jax.spec import run as run_spec
from electra_jax.spec import validate

SPLITS = ('train', 'eval')
FILE_SOURCES = ('files', 'jsonl', 'parquet')  # sources that read data.train_files
_INFINITE = 1 << 62
_MAX_INTERLEAVE = 8  # shards packed at once: enough parallelism, bounded memory
_MAX_INTERLEAVE_RECORDS = 16  # record files read at once
_SALT_DATA, _SALT_FILE_ORDER, _SALT_SHUFFLE, _SALT_MASK = 11, 12, 13, 14


def masking_options_for(spec: run_spec.RunSpec,
                        tokenizer: tokenizers.Tokenizer) -> masking.MaskingOptions:
  """The run's masking (`RunSpec.masking`) with `tokenizer`'s special ids (pipeline and
  inspector)."""
  m = spec.masking
  return masking.MaskingOptions(
      mask_prob=m.mask_prob, max_predictions=m.max_predictions,
      mask_token_prob=m.mask_token_prob, random_token_prob=m.random_token_prob,
      vocab_size=tokenizer.vocab_size, pad_id=tokenizer.pad_id, cls_id=tokenizer.cls_id,
      sep_id=tokenizer.sep_id, mask_id=tokenizer.mask_id, unk_id=tokenizer.unk_id)


# ---- Validation --------------------------------------------------------------------------------


def _check_pipeline_source(config: ml_collections.ConfigDict) -> None:
  """A source this pipeline reads (the pure data rules ran when the spec was loaded)."""
  if config.data.source == 'synthetic':
    raise UserError("data.source='synthetic' has no tf.data pipeline: the trainer makes its "
                    'batches (data/synthetic.py). Choose one of '
                    f"{tuple(s for s in validate.SOURCES if s != 'synthetic')} here.")


def _tokenizer_for(config: ml_collections.ConfigDict) -> tokenizers.Tokenizer:
  """The tokenizer the text sources use (prepared shards carry their own: see `_prepared`)."""
  if config.tokenizer.path:
    return tokenizers.load_tokenizer(config.tokenizer)
  if config.data.source != 'builtin':
    raise UserError(f'data.source={config.data.source!r} needs a tokenizer: train one with '
                    '`python -m electra_jax.tokenizer --source=... --vocab_size=N '
                    '--output=PREFIX` and pass --config.tokenizer.path=PREFIX.model. (Only the '
                    'built-in corpus trains one automatically.)')
  if config.tokenizer.type != 'sentencepiece':
    raise UserError('The built-in corpus trains a SentencePiece model automatically; set '
                    'tokenizer.type="sentencepiece" or give tokenizer.path.')
  if config.tokenizer.vocab_size > config.model.vocab_size:
    raise UserError(f'tokenizer.vocab_size={config.tokenizer.vocab_size} exceeds '
                    f'model.vocab_size={config.model.vocab_size}: lower one or raise the other.')
  return tokenizers.SentencePieceTokenizer(tokenizers.builtin_tokenizer_path(config))


def _prepared_tokenizer(config: ml_collections.ConfigDict,
                        metadata: dict) -> tokenizers.Tokenizer:
  """The tokenizer stored with prepared shards (SentencePiece, or WordPiece with its casing)."""
  stored = metadata.get('tokenizer', {'type': 'sentencepiece', 'file': records.TOKENIZER_FILE})
  path = os.path.join(config.data.prepared_dir, stored['file'])
  if stored['type'] == 'wordpiece':
    tokenizer = tokenizers.WordPieceTokenizer(path, lower_case=stored['lower_case'],
                                              strip_accents=stored['strip_accents'])
  else:
    tokenizer = tokenizers.SentencePieceTokenizer(path)
  if config.tokenizer.path:
    with tf.io.gfile.GFile(config.tokenizer.path, 'rb') as given, tf.io.gfile.GFile(path,
                                                                                     'rb') as own:
      if given.read() != own.read():
        raise UserError(f'tokenizer.path={config.tokenizer.path!r} differs from the tokenizer '
                        f'the shards in {config.data.prepared_dir!r} were made with; leave '
                        f"tokenizer.path empty or point it at that directory's {stored['file']}.")
  if metadata['max_seq_length'] != config.data.max_seq_length:
    raise UserError(f'The shards in {config.data.prepared_dir!r} are packed to length '
                    f'{metadata["max_seq_length"]}, but data.max_seq_length='
                    f'{config.data.max_seq_length}: prepare them again or match the length.')
  return tokenizer


def _check_has_text(config, what: str, files: list[str] | None = None,
                    split: str = '') -> None:
  """Reads until the first non-blank line: an empty corpus fails here, not mid-training.

  For JSON Lines, Parquet and Hugging Face datasets the first records are parsed too, so a wrong
  text field fails here (for Parquet, every file's footer is checked for the column).
  """
  data = config.data
  if data.source == 'files':
    texts = corpus.iter_files_texts(files, max_chars=1)
  elif data.source == 'hf':
    texts = documents.document_texts(documents.iter_hf_documents(data, split), 1)
  else:
    texts = documents.document_texts(
        documents.iter_documents(data.source, files, data.text_field, data.on_bad_record), 1)
  for line in texts:
    del line
    return
  kind = {'files': 'text', 'jsonl': 'JSON Lines', 'parquet': 'Parquet'}.get(data.source)
  held = 'rows'
  if files is not None:
    named = ', '.join(files[:3]) + (', ...' if len(files) > 3 else '')
    held = f'{len(files)} {kind} file(s) ({named})'
  raise UserError(f'{what} is an empty corpus: its {held} hold no text. '
                  + ('Give files with one sentence per line and blank lines between documents.'
                     if data.source == 'files' else
                     f'Check --config.data.text_field={data.text_field!r}.'))


def validate_data_config(spec: run_spec.RunSpec) -> tokenizers.Tokenizer:
  """Checks the data and tokenizer config and the sources, before anything expensive runs: what
  needs files (the pure rules ran when `spec` was loaded: `spec.run.load`).

  Trains the built-in corpus's tokenizer if needed (seconds). The trainer calls this first.

  Returns:
    The tokenizer the pipeline uses (copy its `files()` into the workdir).

  Raises:
    ValueError: naming the problem and the fix: an unknown source, a missing path or a glob that
      matches nothing, an empty corpus, a TFDS dataset without the text feature, a sequence
      length above the model's positions, a tokenizer larger than the model's vocabulary, ...
  """
  config = spec.config
  _check_pipeline_source(config)
  data = config.data
  if data.source == 'prepared':
    tokenizer = _prepared_tokenizer(config, records.read_metadata(data.prepared_dir))
  else:
    if data.source in FILE_SOURCES:
      for field in ('train_files', 'eval_files'):
        if data[field]:
          _check_has_text(config, f'data.{field}',
                          corpus.expand_file_patterns(data[field], f'data.{field}'))
    elif data.source == 'hf':
      for split in (data.hf_split, data.hf_eval_split):
        if split:
          _check_has_text(config, f'{data.hf_path} (split {split!r})', split=split)
    elif data.source == 'tfds':
      builder = sources.tfds_builder(data.tfds_name, data.tfds_data_dir, data.tfds_text_feature)
      sources.tfds_splits(builder, data.tfds_train_split, data.tfds_eval_split, data.eval_fraction)
    elif data.source == 'builtin':
      for package in corpus.parse_packages(data.builtin_packages):
        corpus.package_root(package)  # an unknown name fails before the corpus is built
    tokenizer = _tokenizer_for(config)
  if tokenizer.vocab_size > config.model.vocab_size:
    raise UserError(f'The tokenizer has {tokenizer.vocab_size} tokens but model.vocab_size='
                    f'{config.model.vocab_size}: raise model.vocab_size to at least '
                    f'{tokenizer.vocab_size}.')
  held_out = data.hf_eval_split if data.source == 'hf' else data.eval_files
  if (data.source in ('builtin', 'hf') + FILE_SOURCES and not held_out
      and data.eval_fraction <= 0):
    raise UserError('No eval data: set data.eval_fraction > 0 or data.eval_files.')
  return tokenizer


# ---- Packed examples per source ----------------------------------------------------------------


def _split_files(data, split: str) -> tuple[list[str], packing.DocumentFilter]:
  """The files a split of a file source reads, and which of their documents it keeps."""
  if split == 'eval' and data.eval_files:
    return (corpus.expand_file_patterns(data.eval_files, 'data.eval_files'),
            packing.DocumentFilter('all'))
  return (corpus.expand_file_patterns(data.train_files, 'data.train_files'),
          packing.DocumentFilter('all' if data.eval_files else split, data.eval_fraction))


def sharded_source(config: ml_collections.ConfigDict, split: str):
  """(lines_of, num_shards, document_filter) of a split of a files/jsonl/parquet/hf source.

  `lines_of(shard_index)` is the shard's tf.data stream of lines (blank line = document end);
  the held-out part is taken by `document_filter` as for text files, unless an eval split or
  eval files are given.
  """
  data = config.data
  if data.source == 'hf':
    eval_given = bool(data.hf_eval_split)
    hf_split = data.hf_eval_split if split == 'eval' and eval_given else data.hf_split
    lines_of, num_shards = documents.hf_source_shards(data, hf_split)
    keep = 'all' if eval_given else split
    return lines_of, num_shards, packing.DocumentFilter(keep, data.eval_fraction)
  files, document_filter = _split_files(data, split)
  if data.source == 'files':
    return sources.files_lines_fn(files, data.on_bad_record), len(files), document_filter
  return (*documents.record_source_shards(data, files), document_filter)


def _packing_options(config) -> packing.PackingOptions:
  return packing.PackingOptions(max_seq_length=config.data.max_seq_length,
                                short_seq_prob=config.data.short_seq_prob,
                                single_segment_prob=config.data.single_segment_prob)


def _shard_stream(host: sources.HostShards, seed: tf.Tensor, training: bool) -> tf.data.Dataset:
  """(epoch, shard_index) pairs: training walks this host's shards in a new order every epoch."""
  shard_indices = tf.constant(host.shard_indices, tf.int64)
  if not training:
    return tf.data.Dataset.from_tensor_slices(shard_indices).map(
        lambda shard: (tf.constant(0, tf.int64), shard))

  def epoch_shards(epoch):
    order = tf.random.experimental.stateless_shuffle(
        shard_indices, seed=packing.fold_in(packing.fold_in(seed, _SALT_FILE_ORDER), epoch))
    return tf.data.Dataset.from_tensor_slices(order).map(lambda shard: (epoch, shard))

  return tf.data.Dataset.range(_INFINITE).flat_map(epoch_shards)


def _text_examples(config, tokenizer, lines_of, num_shards: int, document_filter, training: bool,
                   process_index: int, process_count: int) -> tf.data.Dataset:
  """Packed examples of a sharded text source (built-in corpus or files)."""
  host = sources.assign_shards(num_shards, process_index, process_count)
  # Not keyed on the host: with example striding every host must see the same order.
  data_seed = tf.constant([config.seed, _SALT_DATA], tf.int64)
  options = _packing_options(config)

  def shard_examples(epoch, shard_index):
    seed = packing.fold_in(packing.fold_in(data_seed, epoch), shard_index)
    return packing.pack_lines(lines_of(shard_index), tokenizer, seed, shard_index, options,
                              document_filter)

  examples = _shard_stream(host, data_seed, training).interleave(
      shard_examples, cycle_length=min(len(host.shard_indices), _MAX_INTERLEAVE), block_length=1,
      num_parallel_calls=tf.data.AUTOTUNE, deterministic=True)
  if host.example_stride > 1:
    examples = examples.shard(host.example_stride, host.example_offset)
  return examples


def _tfds_examples(config, tokenizer, split, training, process_index,
                   process_count) -> tf.data.Dataset:
  data = config.data
  builder = sources.tfds_builder(data.tfds_name, data.tfds_data_dir, data.tfds_text_feature)
  train_split, eval_split = sources.tfds_splits(builder, data.tfds_train_split,
                                                data.tfds_eval_split, data.eval_fraction)
  documents = sources.tfds_documents(builder, train_split if split == 'train' else eval_split,
                                     data.tfds_text_feature, process_index, process_count,
                                     shuffle_files=training, seed=config.seed)
  if training:
    documents = documents.repeat()
  seed = packing.fold_in(tf.constant([config.seed, _SALT_DATA], tf.int64), process_index)
  return packing.pack_lines(sources.document_lines(documents), tokenizer, seed,
                            tf.constant(process_index, tf.int64), _packing_options(config))


def _prepared_records(config, split, training, process_index, process_count) -> tf.data.Dataset:
  """Serialised records of this host's prepared shards."""
  prepared_dir = config.data.prepared_dir
  metadata = records.read_metadata(prepared_dir)
  files = [os.path.join(prepared_dir, name) for name in metadata['shards'][split]]
  if not files:
    raise UserError(f'{prepared_dir!r} holds no {split} shards (metadata.json lists none).')
  host = sources.assign_shards(len(files), process_index, process_count, what='record files')
  paths = tf.constant(files)
  mine = set(host.shard_indices)  # sizes of this host's files only (a stat each)
  sizes = tf.constant([tf.io.gfile.stat(path).length if i in mine else -1
                       for i, path in enumerate(files)], tf.int64)
  data_seed = tf.constant([config.seed, _SALT_DATA], tf.int64)
  serialized = _shard_stream(host, data_seed, training).interleave(
      lambda epoch, shard: records.checked_records(paths[shard], sizes[shard],
                                                   config.data.on_bad_record),
      cycle_length=min(len(host.shard_indices), _MAX_INTERLEAVE_RECORDS), block_length=1,
      num_parallel_calls=tf.data.AUTOTUNE, deterministic=True)
  if host.example_stride > 1:
    serialized = serialized.shard(host.example_stride, host.example_offset)
  return serialized


def packed_examples(config: ml_collections.ConfigDict, split: str, process_index: int = 0,
                    process_count: int = 1, tokenizer: tokenizers.Tokenizer | None = None,
                    training: bool | None = None) -> tf.data.Dataset:
  """Unmasked, unbatched packed examples `{'input_ids', 'token_type_ids'}` `[length]` of a text source.

  One pass (no repeat, no shuffle) unless `training`; used by `make_dataset` and `prepare`.
  Not for source 'prepared' (those examples are already packed).
  """
  data = config.data
  tokenizer = tokenizer or _tokenizer_for(config)
  training = split == 'train' if training is None else training
  if data.source == 'tfds':
    return _tfds_examples(config, tokenizer, split, training, process_index, process_count)
  if data.source == 'builtin':
    return _text_examples(
        config, tokenizer, sources.builtin_lines_fn(data.builtin_packages),
        corpus.BUILTIN_NUM_SHARDS,
        packing.DocumentFilter(split, data.eval_fraction), training, process_index, process_count)
  if data.source in FILE_SOURCES + ('hf',):
    lines_of, num_shards, document_filter = sharded_source(config, split)
    return _text_examples(config, tokenizer, lines_of, num_shards, document_filter, training,
                          process_index, process_count)
  raise ValueError(f'packed_examples does not read data.source={data.source!r}.')


# ---- The dataset -------------------------------------------------------------------------------


def make_dataset(spec: run_spec.RunSpec, split: str, process_index: int = 0,
                 tokenizer: tokenizers.Tokenizer | None = None) -> tf.data.Dataset:
  """Host `process_index`'s dataset of masked pre-training batches (see the module docstring).

  Args:
    spec: the run spec (its config's seed, tokenizer and data; its host batch and masking).
    split: 'train' (shuffled, endless) or 'eval' (held out, fixed order, repeated).
    process_index: this host, in [0, spec.process_count); each host reads a disjoint part.
    tokenizer: what `validate_data_config(spec)` returned; None runs the checks (and loads the
      tokenizer) here.

  Raises:
    ValueError: for bad configs or sources, before any data is read (see `validate_data_config`).
  """
  if split not in SPLITS:
    raise ValueError(f'split={split!r} must be one of {SPLITS}.')
  config, batch_size, process_count = spec.config, spec.host_batch_size, spec.process_count
  if tokenizer is None:
    tokenizer = validate_data_config(spec)
  data = config.data
  training = split == 'train'
  split_id = SPLITS.index(split)

  if data.source == 'prepared':
    metadata = records.read_metadata(data.prepared_dir)
    examples = _prepared_records(config, split, training, process_index, process_count)
  else:
    examples = packed_examples(config, split, process_index, process_count, tokenizer)
  if training:
    examples = examples.shuffle(
        data.shuffle_buffer,
        seed=(config.seed * 1_000_003 + _SALT_SHUFFLE * 1009 + process_index) % (1 << 31),
        reshuffle_each_iteration=False)  # the stream is endless: one "iteration"
  else:
    # An evaluation reads the same first `eval_steps` batches every time; cached after the first
    # one, so that later evaluations do not re-read (and re-tokenise) the whole source to find the
    # held-out documents again. Masking comes after, keyed on the batch index, as before.
    examples = examples.take(batch_size * config.train.eval_steps).cache().repeat()
  batches = examples.batch(batch_size, drop_remainder=True)
  if data.source == 'prepared':
    batches = batches.map(
        lambda serialized: records.parse_batch(serialized, data.max_seq_length,
                                               metadata['id_dtype'], tokenizer.pad_id),
        num_parallel_calls=tf.data.AUTOTUNE, deterministic=True)

  masking_options = masking_options_for(spec, tokenizer)
  mask_seed = packing.fold_in(packing.fold_in(
      tf.constant([config.seed, _SALT_MASK], tf.int64), split_id), process_index)
  # The batch counter lives in the pipeline (enumerate), so a restored iterator resumes it.
  batches = batches.enumerate().map(
      lambda index, batch: masking.mask_batch(batch, packing.fold_in(mask_seed, index),
                                              masking_options),
      num_parallel_calls=tf.data.AUTOTUNE, deterministic=True)
  batches = batches.prefetch(tf.data.AUTOTUNE if data.prefetch < 0 else data.prefetch)

  options = tf.data.Options()
  options.deterministic = True
  # The readers in Python (JSON parsing, Parquet row groups, the gzip end check) are stateless
  # functions of their inputs, so the iterator's checkpoint need not (and cannot) hold them.
  options.experimental_external_state_policy = tf.data.experimental.ExternalStatePolicy.IGNORE
  return batches.with_options(options)

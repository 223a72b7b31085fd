"""GLUE tasks: the task registry, readers (GLUE TSV files or TFDS), pair encoding, submissions.

Data flow: `read_examples` (TSV directory, local or gs://, or TFDS `glue/<task>`) yields
`GlueExample` dicts `{idx, text_a, text_b, label}` that look the same whichever the source;
`encode_examples` turns them into fixed-length model inputs `[num_examples, max_seq_length]`;
after prediction on a test split, `write_submission` writes the `<Task>.tsv` file the GLUE
server expects.

Label indices follow TFDS's `ClassLabel` order for every task, so a TFDS label can be used as it
is and a TSV label string is mapped into the same order.
"""

import csv
import dataclasses
import os
import sys
from typing import Iterator, Mapping, Optional, Sequence, TypedDict, Union

from absl import logging
import numpy as np
import tensorflow as tf

from electra_jax.errors import MissingFileError, UserError

# Some GLUE fields (long MNLI parses) exceed csv's default 128 KiB field limit.
csv.field_size_limit(sys.maxsize)


class GlueExample(TypedDict):
  idx: int  # row number in the split (test splits: the file's own index column)
  text_a: str
  text_b: Optional[str]  # None for single-sentence tasks (CoLA, SST-2)
  label: Union[int, float, None]  # class index, STS-B score, or None on test splits


@dataclasses.dataclass(frozen=True)
class GlueSplit:
  """Where one split lives in each source."""
  tsv_file: str  # file name inside the task's GLUE directory
  tfds_split: str  # split name in TFDS `glue/<task>`
  has_labels: bool  # False for test splits: their labels are hidden
  tsv_fieldnames: Optional[tuple[str, ...]] = None  # set only for a header-less file
  submission_file: str = ''  # test splits: the file name the GLUE server expects


@dataclasses.dataclass(frozen=True)
class GlueTask:
  """Everything about one GLUE task that the fine-tuning loop needs."""
  name: str  # registry key, TFDS style: 'cola', 'sst2', 'stsb', 'mnli', ...
  display_name: str  # GLUE's spelling: 'CoLA', 'SST-2', 'STS-B', ...
  tsv_dir: str  # directory name in the official GLUE download
  tfds_name: str
  tfds_text_features: tuple[str, ...]  # one or two TFDS features, as (text_a[, text_b])
  tsv_text_columns: tuple[str, ...]  # the same texts as TSV column names
  tsv_label_column: str
  tsv_index_column: str  # test files: the column holding the submission index
  label_names: tuple[str, ...]  # class names in TFDS order; () for regression
  tsv_labels: tuple[str, ...]  # the label strings of the TSV files and of submissions
  metric_names: tuple[str, ...]  # official metrics, names as in `metrics.METRIC_FNS`
  num_epochs: int  # ELECTRA's fine-tuning epochs (3; RTE and STS-B 10)
  splits: Mapping[str, GlueSplit]
  dev_splits: tuple[str, ...]  # the first one selects checkpoints and enters the average
  test_splits: tuple[str, ...]
  score_range: tuple[float, float] = (0.0, 1.0)  # regression: (min, max) of the gold scores
  unordered: bool = False  # the pair's order means nothing (MRPC, STS-B): see double_unordered

  @property
  def is_regression(self) -> bool:
    return not self.label_names

  @property
  def num_labels(self) -> int:
    """Output units of the task head: 1 for regression."""
    return len(self.label_names) or 1

  @property
  def is_pair(self) -> bool:
    return len(self.tsv_text_columns) == 2


def _splits(tsv_fieldnames=None, submission='', mnli=False) -> dict[str, GlueSplit]:
  """The usual train/dev/test layout (MNLI: matched and mismatched dev and test)."""
  train = GlueSplit('train.tsv', 'train', True, tsv_fieldnames)
  if not mnli:
    return {
        'train': train,
        'dev': GlueSplit('dev.tsv', 'validation', True, tsv_fieldnames),
        'test': GlueSplit('test.tsv', 'test', False, None, submission),
    }
  return {
      'train': train,
      'dev_matched': GlueSplit('dev_matched.tsv', 'validation_matched', True),
      'dev_mismatched': GlueSplit('dev_mismatched.tsv', 'validation_mismatched', True),
      'test_matched': GlueSplit('test_matched.tsv', 'test_matched', False, None, 'MNLI-m.tsv'),
      'test_mismatched': GlueSplit(
          'test_mismatched.tsv', 'test_mismatched', False, None, 'MNLI-mm.tsv'),
  }


_BINARY = ('0', '1')
_NLI2 = ('entailment', 'not_entailment')


def _task(name: str, display_name: str, *, texts: tuple[str, ...], label_column: str,
          label_names: tuple[str, ...], tsv_labels: tuple[str, ...],
          metric_names: tuple[str, ...], tsv_texts: tuple[str, ...] = (),
          index_column: str = 'index', num_epochs: int = 3, splits=None,
          dev_splits: tuple[str, ...] = ('dev',), test_splits: tuple[str, ...] = ('test',),
          **options) -> GlueTask:
  """A registry entry by keyword: the TSV directory is GLUE's spelling, TFDS's `glue/<name>`,
  the TSV text columns TFDS's feature names, and the usual splits, unless said otherwise."""
  return GlueTask(
      name=name, display_name=display_name, tsv_dir=display_name, tfds_name=f'glue/{name}',
      tfds_text_features=texts, tsv_text_columns=tsv_texts or texts,
      tsv_label_column=label_column, tsv_index_column=index_column, label_names=label_names,
      tsv_labels=tsv_labels, metric_names=metric_names, num_epochs=num_epochs,
      splits=splits or _splits(submission=f'{display_name}.tsv'), dev_splits=dev_splits,
      test_splits=test_splits, **options)


_PAIR = ('sentence1', 'sentence2')
TASKS: dict[str, GlueTask] = {t.name: t for t in (
    _task('cola', 'CoLA', texts=('sentence',), label_column='label',
          label_names=('unacceptable', 'acceptable'), tsv_labels=_BINARY, metric_names=('mcc',),
          # CoLA's train/dev files have no header: source, label, original mark, sentence.
          splits=_splits(('source', 'label', 'original_label', 'sentence'), 'CoLA.tsv')),
    _task('sst2', 'SST-2', texts=('sentence',), label_column='label',
          label_names=('negative', 'positive'), tsv_labels=_BINARY, metric_names=('accuracy',)),
    _task('mrpc', 'MRPC', texts=_PAIR, tsv_texts=('#1 String', '#2 String'),
          label_column='Quality', label_names=('not_equivalent', 'equivalent'),
          tsv_labels=_BINARY, metric_names=('f1', 'accuracy'), unordered=True),
    _task('stsb', 'STS-B', texts=_PAIR, label_column='score', label_names=(), tsv_labels=(),
          metric_names=('pearson', 'spearman'), num_epochs=10, score_range=(0.0, 5.0),
          unordered=True),
    _task('qqp', 'QQP', texts=('question1', 'question2'), label_column='is_duplicate',
          index_column='id', label_names=('not_duplicate', 'duplicate'), tsv_labels=_BINARY,
          metric_names=('f1', 'accuracy')),
    _task('mnli', 'MNLI', texts=('premise', 'hypothesis'), tsv_texts=_PAIR,
          label_column='gold_label', label_names=('entailment', 'neutral', 'contradiction'),
          tsv_labels=('entailment', 'neutral', 'contradiction'), metric_names=('accuracy',),
          splits=_splits(mnli=True), dev_splits=('dev_matched', 'dev_mismatched'),
          test_splits=('test_matched', 'test_mismatched')),
    _task('qnli', 'QNLI', texts=('question', 'sentence'), label_column='label',
          label_names=_NLI2, tsv_labels=_NLI2, metric_names=('accuracy',)),
    _task('rte', 'RTE', texts=_PAIR, label_column='label', label_names=_NLI2, tsv_labels=_NLI2,
          metric_names=('accuracy',), num_epochs=10),
    # WNLI's files use 0/1 with 1 = entailment; TFDS orders its classes the same way.
    _task('wnli', 'WNLI', texts=_PAIR, label_column='label',
          label_names=('not_entailment', 'entailment'), tsv_labels=_BINARY,
          metric_names=('accuracy',)),
)}

# Spellings users type: GLUE's ('SST-2', 'STS-B'), directory names, and TFDS names.
_ALIASES = {alias.lower(): t.name for t in TASKS.values()
            for alias in (t.name, t.display_name, t.tsv_dir, t.tfds_name)}


def get_task(name: str) -> GlueTask:
  """Looks a task up by any usual spelling: 'sst2', 'SST-2', 'glue/sst2'."""
  key = _ALIASES.get(name.strip().lower())
  if key is None:
    raise UserError(
        f'Unknown GLUE task {name!r}; choose one of {", ".join(sorted(TASKS))}.')
  return TASKS[key]


def _get_split(task: GlueTask, split: str) -> GlueSplit:
  if split not in task.splits:
    raise UserError(
        f'Task {task.display_name} has no split {split!r}; its splits are '
        f'{", ".join(task.splits)}.')
  return task.splits[split]


# ---- Readers ---------------------------------------------------------------------------------


def _parse_label(task: GlueTask, raw: str, where: str) -> Union[int, float]:
  if task.is_regression:
    try:
      return float(raw)
    except ValueError:
      raise UserError(f'{where}: label {raw!r} is not a number.') from None
  try:
    return task.tsv_labels.index(raw.strip())
  except ValueError:
    raise UserError(
        f'{where}: label {raw!r} is not one of {task.tsv_labels}; is this the '
        f'{task.display_name} file?') from None


def read_tsv_examples(task: Union[str, GlueTask], data_dir: str,
                      split: str) -> Iterator[GlueExample]:
  """Reads one split of an official GLUE TSV download (local or gs://).

  Args:
    task: a task name or `GlueTask`.
    data_dir: either the task's own directory (holding `train.tsv` ...) or the GLUE root
      that holds one directory per task (`CoLA/`, `SST-2/`, ...).
    split: a key of `task.splits`, e.g. 'train', 'dev', 'test', 'dev_matched'.

  Yields:
    `GlueExample`s in file order. Labelled splits use the row number as `idx`; test splits
    use the file's index column, which is what the submission must quote.
  """
  task = get_task(task) if isinstance(task, str) else task
  spec = _get_split(task, split)
  path = os.path.join(data_dir, spec.tsv_file)
  if not tf.io.gfile.exists(path):
    path = os.path.join(data_dir, task.tsv_dir, spec.tsv_file)
  if not tf.io.gfile.exists(path):
    raise MissingFileError(
        f'No {spec.tsv_file} for {task.display_name} in {data_dir!r} or its '
        f'{task.tsv_dir}/ subdirectory; pass the directory of the GLUE download.')

  needed = list(task.tsv_text_columns)
  needed.append(task.tsv_label_column if spec.has_labels else task.tsv_index_column)
  skipped = 0
  with tf.io.gfile.GFile(path, 'r') as f:
    # GLUE's files are not quoted: a '"' inside a sentence is a literal character.
    reader = csv.reader(f, delimiter='\t', quoting=csv.QUOTE_NONE)
    fieldnames = spec.tsv_fieldnames or next(reader, None)
    if fieldnames is None:
      raise UserError(f'{path} is empty.')
    missing = [c for c in needed if c not in fieldnames]
    if missing:
      raise UserError(
          f'{path} has no column(s) {missing}; its header is {list(fieldnames)}. Is this '
          f'the {task.display_name} {split} file?')
    columns = [fieldnames.index(c) for c in needed]
    row_number = -1
    for row in reader:
      if not row:
        continue
      row_number += 1
      where = f'{path}, data row {row_number}'
      if len(row) <= max(columns):
        # A few rows of QQP's train/dev files are broken by stray newlines; the usual
        # readers drop them. A test row cannot be dropped: the submission needs them all.
        if not spec.has_labels:
          raise UserError(f'{where} has {len(row)} fields, expected {len(fieldnames)}.')
        skipped += 1
        continue
      texts = [row[c] for c in columns[:len(task.tsv_text_columns)]]
      last = row[columns[-1]]
      if spec.has_labels:
        idx, label = row_number, _parse_label(task, last, where)
      else:
        try:
          idx, label = int(last), None
        except ValueError:
          raise UserError(f'{where}: index {last!r} is not an integer.') from None
      yield GlueExample(idx=idx, text_a=texts[0], text_b=texts[1] if len(texts) > 1 else None,
                        label=label)
  if skipped:
    logging.warning('%s: skipped %d malformed row(s).', path, skipped)


def read_tfds_examples(task: Union[str, GlueTask], split: str,
                       data_dir: Optional[str] = None,
                       download: bool = True) -> Iterator[GlueExample]:
  """Reads one split of TFDS `glue/<task>` (split names as in `task.splits`: 'dev', ...)."""
  import tensorflow_datasets as tfds  # noqa: PLC0415  (heavy, TFDS only)

  task = get_task(task) if isinstance(task, str) else task
  spec = _get_split(task, split)
  dataset = tfds.load(task.tfds_name, split=spec.tfds_split, data_dir=data_dir or None,
                      shuffle_files=False, download=download)
  for record in tfds.as_numpy(dataset):
    texts = [record[name].decode('utf-8') for name in task.tfds_text_features]
    label = None
    if spec.has_labels:  # TFDS stores -1 on the hidden test labels
      label = float(record['label']) if task.is_regression else int(record['label'])
    yield GlueExample(idx=int(record['idx']), text_a=texts[0],
                      text_b=texts[1] if len(texts) > 1 else None, label=label)


def read_examples(task: Union[str, GlueTask], split: str, *, source: str,
                  data_dir: str = '') -> list[GlueExample]:
  """Reads a split from `source='tsv'` (needs `data_dir`) or `source='tfds'`."""
  if source == 'tsv':
    if not data_dir:
      raise UserError("source='tsv' needs data_dir: the directory of the GLUE download.")
    return list(read_tsv_examples(task, data_dir, split))
  if source == 'tfds':
    return list(read_tfds_examples(task, split, data_dir=data_dir or None))
  raise UserError(f"Unknown GLUE source {source!r}; use 'tsv' or 'tfds'.")


# ---- Encoding --------------------------------------------------------------------------------


def double_unordered(task: GlueTask, examples: Sequence[GlueExample]) -> list[GlueExample]:
  """The examples, then each again with its sentences swapped, for a task whose pair order
  means nothing (the original's `double_unordered`, MRPC and STS training splits); others as
  they are."""
  examples = list(examples)
  if not task.unordered:
    return examples
  return examples + [{**e, 'text_a': e['text_b'], 'text_b': e['text_a']} for e in examples]


def truncate_longest_first(tokens_a: list[int], tokens_b: list[int], max_total: int) -> None:
  """Drops tokens from the end of the longer list (B on ties) until both fit, in place."""
  while len(tokens_a) + len(tokens_b) > max_total:
    if len(tokens_a) > len(tokens_b):
      tokens_a.pop()
    else:
      tokens_b.pop()


def encode_pair(tokenizer, text_a: str, text_b: Optional[str],
                max_seq_length: int) -> dict[str, np.ndarray]:
  """Encodes `[CLS] A [SEP] B [SEP]` (or `[CLS] A [SEP]`), truncated and padded.

  Args:
    tokenizer: anything with `encode(text) -> list[int]` and `cls_id`, `sep_id`, `pad_id`.
    text_a: first segment.
    text_b: second segment, or None for single-sentence tasks.
    max_seq_length: output length L, special tokens included.

  Returns:
    `input_ids`, `token_type_ids` (0 for `[CLS] A [SEP]`, 1 for `B [SEP]`) and
    `attention_mask`, each int32 `[L]`, padded with `pad_id` / 0.
  """
  num_special = 3 if text_b is not None else 2
  if max_seq_length < num_special + 1:
    raise UserError(
        f'max_seq_length={max_seq_length} leaves no room for text after {num_special} '
        'special tokens; use a larger max_seq_length.')
  tokens_a = list(tokenizer.encode(text_a))
  tokens_b = list(tokenizer.encode(text_b)) if text_b is not None else []
  truncate_longest_first(tokens_a, tokens_b, max_seq_length - num_special)

  ids = [tokenizer.cls_id, *tokens_a, tokenizer.sep_id]
  types = [0] * len(ids)
  if text_b is not None:
    ids += [*tokens_b, tokenizer.sep_id]
    types += [1] * (len(tokens_b) + 1)
  padding = max_seq_length - len(ids)
  return {
      'input_ids': np.array(ids + [tokenizer.pad_id] * padding, np.int32),
      'token_type_ids': np.array(types + [0] * padding, np.int32),
      'attention_mask': np.array([1] * len(ids) + [0] * padding, np.int32),
  }


def encode_examples(tokenizer, task: Union[str, GlueTask], examples: Sequence[GlueExample],
                    max_seq_length: int) -> dict[str, np.ndarray]:
  """Encodes a split into stacked arrays.

  Returns:
    `input_ids`, `token_type_ids`, `attention_mask` int32 `[num_examples, L]`; `idx` int64
    `[num_examples]`; `label` `[num_examples]`, int32 for classification (-1 where unknown)
    or float32 for regression (NaN where unknown).
  """
  task = get_task(task) if isinstance(task, str) else task
  encoded = [encode_pair(tokenizer, ex['text_a'], ex['text_b'], max_seq_length)
             for ex in examples]
  batch = {key: np.stack([e[key] for e in encoded]) if encoded
           else np.zeros((0, max_seq_length), np.int32)
           for key in ('input_ids', 'token_type_ids', 'attention_mask')}
  batch['idx'] = np.array([ex['idx'] for ex in examples], np.int64)
  if task.is_regression:
    batch['label'] = np.array(
        [np.nan if ex['label'] is None else ex['label'] for ex in examples], np.float32)
  else:
    batch['label'] = np.array(
        [-1 if ex['label'] is None else ex['label'] for ex in examples], np.int32)
  return batch


# ---- Submission ------------------------------------------------------------------------------


def write_submission(task: Union[str, GlueTask], split: str, idx: Sequence[int],
                     predictions: Sequence[Union[int, float]], output_dir: str) -> str:
  """Writes `<Task>.tsv` (`index<TAB>prediction`) for GLUE's server; returns its path.

  Args:
    task: a task name or `GlueTask`.
    split: a test split of the task ('test', or MNLI's 'test_matched' / 'test_mismatched').
    idx: the examples' `idx` (the test file's index column).
    predictions: class indices (classification) or scores (STS-B), aligned with `idx`.
    output_dir: local or gs:// directory; created if missing.

  The diagnostic set (AX.tsv), which the server also asks for, is not written here.
  """
  task = get_task(task) if isinstance(task, str) else task
  spec = _get_split(task, split)
  if not spec.submission_file:
    raise ValueError(
        f'{task.display_name} split {split!r} is not a test split; submissions are made '
        f'from {", ".join(task.test_splits)}.')
  idx = np.asarray(idx)
  predictions = np.asarray(predictions)
  if idx.shape != predictions.shape or idx.ndim != 1:
    raise ValueError(f'idx {idx.shape} and predictions {predictions.shape} must be equal 1-D '
                     'shapes: one prediction per example.')
  if len(np.unique(idx)) != len(idx):
    raise ValueError('idx has duplicates: each test example must be predicted exactly once.')
  if task.is_regression:
    cells = [f'{float(p):.3f}' for p in predictions]
  else:
    if np.any(predictions < 0) or np.any(predictions >= task.num_labels):
      raise ValueError(f'Predictions must be class indices in [0, {task.num_labels}).')
    cells = [task.tsv_labels[int(p)] for p in predictions]

  tf.io.gfile.makedirs(output_dir)
  path = os.path.join(output_dir, spec.submission_file)
  order = np.argsort(idx, kind='stable')
  with tf.io.gfile.GFile(path, 'w') as f:
    f.write('index\tprediction\n')
    for i in order:
      f.write(f'{int(idx[i])}\t{cells[i]}\n')
  return path

"""Offline downstream probes from Python's own documentation (model-free part): no download.

Two tasks, chosen by `config.probe.task`:

* 'topic' (the default): given one document (a docstring section of the standard library's
  sources, its sentences joined into one paragraph), which top-level module does it come from?
  The labels are the `config.probe.num_classes` modules with the most documents (e.g. tkinter,
  email, asyncio, ...), at most `config.probe.max_per_class` documents each, so the classes are
  roughly balanced (chance about 1/num_classes; the log prints the majority share). Single text,
  accuracy. A tiny encoder learns it in minutes on a CPU (0.75-0.91 at lr 1e-3 x 10 epochs), but
  there an untrained encoder beats pre-trained ones; at the default lr 3e-4 x 3 epochs pre-trained
  ones beat it (0.47-0.49 vs 0.31, disjoint seed ranges) while underfitting (WORKSPACE.md has the
  table). It does not yet order longer pre-training above shorter.
* 'coherence': given two sentences of the SAME document, are they adjacent (label 1: sentence i,
  then sentence i + 1) or not (label 0: sentence i and a sentence at least two away, in either
  order)? Balanced. Kept for comparison: a tiny encoder stays at chance on it (0.495 from a
  6000-step run), so it cannot rank objectives at this size.

Both split train and dev BY DOCUMENT (a stable hash of the document's text), never by sentence,
so no dev document is seen in fine-tuning. The documents are also in the pre-training corpus, so
the probe measures what fine-tuning can extract from the encoder, not generalisation to unseen
text. Both are fine-tuned by `glue.run` as GLUE-like tasks (`get_task`).
"""

from __future__ import annotations

import collections
import functools
import hashlib
import pathlib
import sysconfig
from typing import Sequence

from absl import logging
import ml_collections
import numpy as np

from electra_jax.errors import UserError
from electra_jax.finetune import glue_data

TASK_NAME = 'doc_coherence'  # the coherence task (`TASK`)
TOPIC_TASK_NAME = 'doc_topic'  # the topic task (its labels depend on the installation)
TASK_NAMES = (TOPIC_TASK_NAME, TASK_NAME)
# config.probe.task -> task name.
PROBE_TASKS = {'topic': TOPIC_TASK_NAME, 'coherence': TASK_NAME}
SPLITS = ('train', 'dev')
# Sentences shorter than this (characters) are mostly headings or fragments ("Note:"), too short
# to judge a continuation by.
MIN_SENTENCE_CHARS = 20

TASK = glue_data.GlueTask(
    TASK_NAME, 'DocCoherence', '', '', ('text_a', 'text_b'), ('text_a', 'text_b'), 'label',
    'idx', ('not_adjacent', 'adjacent'), ('0', '1'), ('accuracy',), 3,
    {'train': glue_data.GlueSplit('', '', True), 'dev': glue_data.GlueSplit('', '', True)},
    ('dev',), ())


def document_split(document: Sequence[str], dev_fraction: float) -> str:
  """'dev' or 'train' for a document, from a hash of its text (stable across runs and machines)."""
  digest = hashlib.sha256('\n'.join(document).encode()).digest()
  return 'dev' if int.from_bytes(digest[:8], 'big') / 2.0**64 < dev_fraction else 'train'


def make_examples(documents: Sequence[Sequence[str]], split: str, *, dev_fraction: float,
                  max_examples: int, seed: int = 0) -> list[glue_data.GlueExample]:
  """The split's examples, at most `max_examples`, one per usable document.

  Args:
    documents: documents as sequences of sentences (the built-in corpus's).
    split: 'train' or 'dev'.
    dev_fraction: share of documents (by hash) in dev.
    max_examples: cap; documents beyond it are dropped in a seeded random order.
    seed: fixes which documents, anchors and labels are drawn (not the fine-tuning seed).
  """
  if split not in SPLITS:
    raise UserError(f'probe split {split!r}: use one of {SPLITS}.')
  usable = []
  for document in documents:
    sentences = [s for s in document if len(s) >= MIN_SENTENCE_CHARS]
    if len(sentences) >= 3 and document_split(document, dev_fraction) == split:
      usable.append(sentences)
  rng = np.random.default_rng([seed, SPLITS.index(split)])
  order = rng.permutation(len(usable))[:max_examples]
  examples = []
  for idx, doc_index in enumerate(order):
    sentences = usable[doc_index]
    label = int(rng.integers(2))
    if label:
      i = int(rng.integers(len(sentences) - 1))
      j = i + 1
    else:  # a pair at least two apart, in either order
      i, j = sorted(rng.choice(len(sentences), 2, replace=False).tolist())
      while j - i < 2:  # resample until non-adjacent (a document has >= 3 sentences)
        i, j = sorted(rng.choice(len(sentences), 2, replace=False).tolist())
      if rng.integers(2):
        i, j = j, i
    examples.append({'idx': idx, 'text_a': sentences[i], 'text_b': sentences[j], 'label': label})
  return examples


# ---- Topic ------------------------------------------------------------------------------------

def source_labelled_documents(root: pathlib.Path) -> list[tuple[tuple[str, ...], str]]:
  """(document, top-level module) for the docstrings of the sources under `root`.

  The same files and documents as the built-in corpus (`corpus.source_file_documents`), each
  labelled with the first part of its path under `root` (`email/mime/text.py` -> 'email',
  `turtle.py` -> 'turtle'). The directories the corpus skips (test, idlelib, site-packages, ...)
  stay out with their files. A document found under two modules (a copied docstring) is dropped:
  its label would be ambiguous.
  """
  from electra_jax.data import corpus  # noqa: PLC0415 - TensorFlow, only when reading
  labels = collections.defaultdict(set)
  for relative, documents in corpus.source_file_documents(root):
    module = relative.parts[0].removesuffix('.py')
    for document in documents:
      labels[tuple(document)].add(module)
  return [(document, next(iter(modules))) for document, modules in labels.items()
          if len(modules) == 1]


@functools.cache
def stdlib_labelled_documents() -> tuple[tuple[tuple[str, ...], str], ...]:
  """`source_labelled_documents` of the standard library (cached per process; ~15 s to build)."""
  return tuple(source_labelled_documents(pathlib.Path(sysconfig.get_paths()['stdlib'])))


def topic_label_names(labelled: Sequence[tuple[Sequence[str], str]], num_classes: int
                      ) -> tuple[str, ...]:
  """The `num_classes` labels with the most documents (ties by name), sorted by name."""
  counts = collections.Counter(label for _, label in labelled)
  ranked = sorted(counts, key=lambda label: (-counts[label], label))
  return tuple(sorted(ranked[:num_classes]))


def make_topic_examples(labelled: Sequence[tuple[Sequence[str], str]], split: str, *,
                        num_classes: int, max_per_class: int, dev_fraction: float,
                        max_examples: int, seed: int = 0) -> list[glue_data.GlueExample]:
  """The topic probe's `split`: one example per document, text = its sentences joined.

  Args:
    labelled: (document, label) pairs, documents as sequences of sentences.
    split: 'train' or 'dev'.
    num_classes: keep the documents of the labels with the most documents (`topic_label_names`);
      the example's label is the index of its document's label in that sorted tuple.
    max_per_class: at most this many documents of each label (over both splits, drawn in a
      seeded order, before the split), so that no label dominates.
    dev_fraction: share of documents (by hash) in dev.
    max_examples: cap on the split; examples beyond it are dropped in a seeded random order.
    seed: fixes which documents are drawn (not the fine-tuning seed).
  """
  if split not in SPLITS:
    raise UserError(f'probe split {split!r}: use one of {SPLITS}.')
  label_names = topic_label_names(labelled, num_classes)
  rng = np.random.default_rng([seed, 2])  # the same draw of documents for both splits
  by_label = {label: [] for label in label_names}
  for document, label in labelled:
    if label in by_label:
      by_label[label].append(tuple(document))
  kept = []
  for index, label in enumerate(label_names):
    documents = by_label[label]
    for d in sorted(rng.permutation(len(documents))[:max_per_class].tolist()):
      if document_split(documents[d], dev_fraction) == split:
        kept.append((documents[d], index))
  order = np.random.default_rng([seed, SPLITS.index(split)]).permutation(len(kept))[:max_examples]
  return [{'idx': idx, 'text_a': ' '.join(kept[k][0]), 'text_b': None, 'label': kept[k][1]}
          for idx, k in enumerate(order.tolist())]


def _topic_task(label_names: Sequence[str]) -> glue_data.GlueTask:
  return glue_data.GlueTask(
      TOPIC_TASK_NAME, 'DocTopic', '', '', ('text_a',), ('text_a',), 'label', 'idx',
      tuple(label_names), tuple(label_names), ('accuracy',), 3,
      {'train': glue_data.GlueSplit('', '', True), 'dev': glue_data.GlueSplit('', '', True)},
      ('dev',), ())


def get_task(config: ml_collections.ConfigDict) -> glue_data.GlueTask:
  """The `GlueTask` of `config.probe.task` (topic: its labels read from the sources)."""
  validate_probe_config(config)
  if config.probe.task == 'coherence':
    return TASK
  return _topic_task(topic_label_names(stdlib_labelled_documents(), config.probe.num_classes))


def validate_probe_config(config: ml_collections.ConfigDict) -> None:
  p = config.probe
  if p.task not in PROBE_TASKS:
    raise UserError(f'config.probe.task={p.task!r}: use one of {tuple(PROBE_TASKS)}.')
  if not 0.0 < p.dev_fraction < 1.0:
    raise UserError(f'config.probe.dev_fraction={p.dev_fraction} must be in (0, 1).')
  for field in ('max_train_examples', 'max_dev_examples', 'num_classes', 'max_per_class'):
    if p[field] < 1:
      raise UserError(f'config.probe.{field}={p[field]} must be >= 1.')
  if p.task == 'topic' and p.num_classes < 2:
    raise UserError(f'config.probe.num_classes={p.num_classes} must be >= 2.')
  if p.task == 'topic' and p.builtin_packages:
    raise UserError(f'config.probe.builtin_packages={p.builtin_packages!r}: the topic probe '
                    "reads the standard library only; set it to '' (or use task='coherence').")


def read_examples(config: ml_collections.ConfigDict, split: str) -> list[glue_data.GlueExample]:
  """The probe's `split`: `config.probe.task` on Python's documentation."""
  validate_probe_config(config)
  p = config.probe
  cap = p.max_train_examples if split == 'train' else p.max_dev_examples
  if p.task == 'topic':
    examples = make_topic_examples(
        stdlib_labelled_documents(), split, num_classes=p.num_classes,
        max_per_class=p.max_per_class, dev_fraction=p.dev_fraction, max_examples=cap, seed=p.seed)
  else:
    from electra_jax.data import corpus  # noqa: PLC0415 - TensorFlow, only when reading
    documents = corpus.builtin_corpus(p.builtin_packages).documents
    examples = make_examples(documents, split, dev_fraction=p.dev_fraction, max_examples=cap,
                             seed=p.seed)
  if not examples:
    raise UserError(f'Python\'s documentation gave no {split} examples for the probe; raise '
                    'config.probe.dev_fraction (or max_per_class).')
  counts = collections.Counter(e['label'] for e in examples)
  logging.info('Probe %s (%s): %d %s examples, %d labels, majority share %.3f.', p.task,
               PROBE_TASKS[p.task], len(examples), split, len(counts),
               max(counts.values()) / len(examples))
  return examples

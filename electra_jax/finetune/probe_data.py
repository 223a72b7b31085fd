"""An offline downstream probe from the built-in corpus: document coherence (model-free part).

The task: given two sentences of the SAME document, are they adjacent (label 1: sentence i, then
sentence i + 1) or not (label 0: sentence i and a sentence at least two away, in either order)?
Both come from one document, so topic words do not give the answer away; the model has to judge
how the text continues. Labels are balanced, and it needs no download: the documents are the
built-in corpus's (`data.corpus.builtin_corpus`, Python's own documentation).

Train and dev are split BY DOCUMENT (a stable hash of the document's text), never by sentence,
so no dev sentence's document is seen in fine-tuning. One example per document, so a long
document does not dominate. It is fine-tuned by `glue.run` as a GLUE-like pair task (accuracy).
"""

from __future__ import annotations

import hashlib
from typing import Sequence

import ml_collections
import numpy as np

from electra_jax.errors import UserError
from electra_jax.finetune import glue_data

TASK_NAME = 'doc_coherence'
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


def validate_probe_config(config: ml_collections.ConfigDict) -> None:
  p = config.probe
  if not 0.0 < p.dev_fraction < 1.0:
    raise UserError(f'config.probe.dev_fraction={p.dev_fraction} must be in (0, 1).')
  for field in ('max_train_examples', 'max_dev_examples'):
    if p[field] < 1:
      raise UserError(f'config.probe.{field}={p[field]} must be >= 1.')


def read_examples(config: ml_collections.ConfigDict, split: str) -> list[glue_data.GlueExample]:
  """The probe's `split` from the built-in corpus of `config.probe.builtin_packages`."""
  from electra_jax.data import corpus  # noqa: PLC0415 - TensorFlow, only when reading
  validate_probe_config(config)
  p = config.probe
  documents = corpus.builtin_corpus(p.builtin_packages).documents
  cap = p.max_train_examples if split == 'train' else p.max_dev_examples
  examples = make_examples(documents, split, dev_fraction=p.dev_fraction, max_examples=cap,
                           seed=p.seed)
  if not examples:
    raise UserError(f'The built-in corpus gave no {split} examples for the probe; raise '
                    'config.probe.dev_fraction or add config.probe.builtin_packages.')
  return examples

"""The offline probe's data: split by document, balanced, adjacent means adjacent."""

import pytest

from electra_jax.errors import UserError
from electra_jax.finetune import probe_data


def _documents(count=200):
  return [tuple(f'Document {d} says sentence number {i} of its text.' for i in range(3 + d % 5))
          for d in range(count)]


def _source(text, documents):
  return next(d for d, doc in enumerate(documents) for sentence in doc if sentence == text)


def test_train_and_dev_never_share_a_document():
  documents = _documents()
  train = probe_data.make_examples(documents, 'train', dev_fraction=0.3, max_examples=1000)
  dev = probe_data.make_examples(documents, 'dev', dev_fraction=0.3, max_examples=1000)
  assert train and dev
  train_docs = {_source(e['text_a'], documents) for e in train}
  dev_docs = {_source(e['text_a'], documents) for e in dev}
  assert not train_docs & dev_docs
  assert len(train) + len(dev) == len(documents)  # one example per (usable) document
  assert 0.15 < len(dev) / len(documents) < 0.45


def test_labels_say_whether_the_sentences_are_adjacent_in_one_document():
  documents = _documents()
  examples = probe_data.make_examples(documents, 'train', dev_fraction=0.3, max_examples=1000)
  for e in examples:
    doc_a, doc_b = _source(e['text_a'], documents), _source(e['text_b'], documents)
    assert doc_a == doc_b
    i, j = documents[doc_a].index(e['text_a']), documents[doc_a].index(e['text_b'])
    assert (j == i + 1) == bool(e['label']), e
    assert abs(i - j) >= 1
  share = sum(e['label'] for e in examples) / len(examples)
  assert 0.35 < share < 0.65


def test_examples_are_fixed_by_the_seed_and_capped():
  documents = _documents()
  first = probe_data.make_examples(documents, 'train', dev_fraction=0.3, max_examples=10)
  assert len(first) == 10
  assert first == probe_data.make_examples(documents, 'train', dev_fraction=0.3, max_examples=10)
  assert first != probe_data.make_examples(documents, 'train', dev_fraction=0.3,
                                           max_examples=10, seed=1)


def test_bad_probe_config_names_the_field():
  from electra_jax.configs.finetune import probe  # noqa: PLC0415
  config = probe.get_config()
  config.probe.dev_fraction = 1.5
  with pytest.raises(UserError, match=r'config\.probe\.dev_fraction'):
    probe_data.validate_probe_config(config)

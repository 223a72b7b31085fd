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


# ---- Topic ------------------------------------------------------------------------------------

def _labelled(counts=(('alpha', 60), ('beta', 40), ('gamma', 30), ('delta', 5))):
  return [((f'{label} document {d} opens here.', f'It is about {label}, part {d}.'), label)
          for label, count in counts for d in range(count)]


def _topic(labelled, split, **kwargs):
  options = dict(num_classes=3, max_per_class=1000, dev_fraction=0.3, max_examples=1000)
  return probe_data.make_topic_examples(labelled, split, **{**options, **kwargs})


def test_topic_train_and_dev_never_share_a_document_and_cover_the_kept_classes():
  labelled = _labelled()
  train, dev = _topic(labelled, 'train'), _topic(labelled, 'dev')
  assert train and dev
  assert not {e['text_a'] for e in train} & {e['text_a'] for e in dev}
  assert len(train) + len(dev) == 130  # alpha, beta, gamma; delta (the smallest) is left out
  assert 0.15 < len(dev) / 130 < 0.45
  assert all(e['text_b'] is None for e in train + dev)


def test_topic_label_is_the_module_the_document_came_from():
  labelled = _labelled()
  names = probe_data.topic_label_names(labelled, 3)
  assert names == ('alpha', 'beta', 'gamma')  # the three largest, sorted by name
  source = {' '.join(document): label for document, label in labelled}
  for e in _topic(labelled, 'train') + _topic(labelled, 'dev'):
    assert names[e['label']] == source[e['text_a']], e


def test_topic_classes_are_capped_and_the_draw_is_fixed_by_the_seed():
  labelled = _labelled()
  both = lambda **kw: _topic(labelled, 'train', **kw) + _topic(labelled, 'dev', **kw)
  capped = both(max_per_class=20)
  assert [sum(e['label'] == c for e in capped) for c in range(3)] == [20, 20, 20]
  assert capped == both(max_per_class=20)
  assert capped != both(max_per_class=20, seed=1)
  assert len(_topic(labelled, 'train', max_examples=7)) == 7


def test_source_documents_are_labelled_with_their_top_level_module(tmp_path):
  doc = lambda name: f'"""The {name} module. ' + 'It explains itself at length. ' * 10 + '"""\n'
  (tmp_path / 'email' / 'mime').mkdir(parents=True)
  (tmp_path / 'email' / '__init__.py').write_text(doc('email'))
  (tmp_path / 'email' / 'mime' / 'text.py').write_text(doc('email.mime.text'))
  (tmp_path / 'turtle.py').write_text(doc('turtle'))
  (tmp_path / 'copy_a.py').write_text(doc('shared'))
  (tmp_path / 'copy_b.py').write_text(doc('shared'))  # the same docstring under two modules
  (tmp_path / 'test').mkdir()
  (tmp_path / 'test' / 'test_x.py').write_text(doc('test'))  # skipped like the corpus skips it
  labels = {document[0]: label
            for document, label in probe_data.source_labelled_documents(tmp_path)}
  assert labels == {'The email module.': 'email', 'The email.mime.text module.': 'email',
                    'The turtle module.': 'turtle'}


@pytest.mark.parametrize('field, value', [('task', 'topics'), ('num_classes', 1),
                                          ('max_per_class', 0), ('builtin_packages', 'numpy')])
def test_bad_topic_config_names_the_field(field, value):
  from electra_jax.configs.finetune import probe  # noqa: PLC0415
  config = probe.get_config()
  config.probe[field] = value
  with pytest.raises(UserError, match=rf'config\.probe\.{field}'):
    probe_data.validate_probe_config(config)


def test_the_probe_config_defaults_to_the_topic_task():
  from electra_jax.configs.finetune import probe  # noqa: PLC0415
  config = probe.get_config()
  assert config.probe.task == 'topic'
  config.probe.task = 'coherence'
  assert probe_data.get_task(config) is probe_data.TASK

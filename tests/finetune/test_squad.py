"""SQuAD fine-tuning end to end on a tiny synthetic task: the answer is the titled name.

Each context is filler words with, for answerable questions, one `<title> <name>` span (the
cue: only answers use these words), which SentencePiece splits into several pieces, so that
start and end differ. A from-scratch model of one layer learns it in a few epochs; a cue that
needs position reasoning ("the word after X") takes a tiny model far longer than a unit test.
"""

import json

import numpy as np
import pytest
import tensorflow as tf
import tensorflow_datasets as tfds

from electra_jax import startup
from electra_jax.data import tokenizers
from electra_jax.finetune import squad
from electra_jax.finetune import squad_eval

FILLER = ('the a cat dog sat on mat it was very quite rather near far over under and then '
          'with from').split()
TITLES = ('doctor', 'captain', 'professor')
NAMES = ('alice', 'bob', 'carol', 'dave', 'erin', 'frank', 'grace', 'heidi')
QUESTION = 'who holds a title?'


def load_config(repo_root, arg):
  return startup.load_config_file(repo_root / 'configs' / 'finetune' / 'squad.py', arg)


def make_question(rng, qid, answerable):
  """A context of filler words; if answerable, a `<title> <name>` answer somewhere in it."""
  words = list(rng.choice(FILLER, size=int(rng.integers(8, 24))))
  answer = f'{rng.choice(TITLES)} {rng.choice(NAMES)}'
  position = int(rng.integers(0, len(words) + 1))
  if answerable:
    words[position:position] = answer.split()
  context = ' '.join(words)
  qa = {'id': qid, 'question': QUESTION, 'answers': [], 'is_impossible': False}
  if answerable:
    start = len(' '.join(words[:position])) + (1 if position else 0)
    assert context[start:start + len(answer)] == answer
    qa['answers'] = [{'text': answer, 'answer_start': start}]
  else:
    qa['is_impossible'] = True
  return {'context': context, 'qas': [qa]}


def write_squad(path, rng, size, version, impossible_share=0.0):
  paragraphs = [make_question(rng, f'{path.stem}-{i}', rng.random() >= impossible_share)
                for i in range(size)]
  path.write_text(json.dumps({'version': version,
                              'data': [{'title': 'synthetic', 'paragraphs': paragraphs}]}))
  return [p['context'] for p in paragraphs]


@pytest.fixture(scope='module')
def tokenizer_path(tmp_path_factory):
  rng = np.random.default_rng(0)
  texts = [make_question(rng, str(i), True)['context'] for i in range(200)]
  texts.append(QUESTION)
  prefix = str(tmp_path_factory.mktemp('spm') / 'sp')
  return tokenizers.train_sentencepiece(texts, prefix, 96, allow_smaller_vocab=True,
                                        num_threads=1)


def tiny(config, tokenizer_path, data_dir):
  m = config.model
  m.vocab_size, m.embedding_size, m.hidden_size, m.num_heads = 128, 32, 32, 2
  m.num_layers, m.intermediate_size, m.max_position_embeddings = 1, 64, 48
  m.initializer_range = 0.1
  config.tokenizer.path = tokenizer_path
  config.data.update(source='json', data_dir=str(data_dir), max_seq_length=48, doc_stride=16,
                     max_query_length=8)
  config.train.update(learning_rate=1e-2, num_epochs=4, eval_batch_size=64, log_every=5)
  return config


@pytest.mark.slow
def test_v1_finds_the_titled_name(repo_root, tokenizer_path, tmp_path):
  rng = np.random.default_rng(1)
  write_squad(tmp_path / 'train-v1.1.json', rng, 320, '1.1')
  write_squad(tmp_path / 'dev-v1.1.json', rng, 96, '1.1')
  config = tiny(load_config(repo_root, 'v1.1'), tokenizer_path, tmp_path)
  result = squad.run(config, str(tmp_path / 'work'))
  run = result['seeds'][0]
  assert run['metrics']['exact_match'] >= 90.0, run['history']

  # The written predictions score the same through the official evaluation.
  seed_dir = tmp_path / 'work' / 'squad_v1.1' / 'seed_0'
  rescored = squad_eval.main([str(tmp_path / 'dev-v1.1.json'),
                              str(seed_dir / 'predictions.json')])
  assert rescored['exact_match'] == pytest.approx(run['metrics']['exact_match'])
  assert not (seed_dir / 'null_odds.json').exists()


@pytest.mark.slow
def test_v2_also_learns_no_answer(repo_root, tokenizer_path, tmp_path):
  rng = np.random.default_rng(2)
  write_squad(tmp_path / 'train-v2.0.json', rng, 320, 'v2.0', impossible_share=0.4)
  write_squad(tmp_path / 'dev-v2.0.json', rng, 96, 'v2.0', impossible_share=0.4)
  config = tiny(load_config(repo_root, 'v2.0'), tokenizer_path, tmp_path)
  result = squad.run(config, str(tmp_path / 'work'))
  metrics = result['seeds'][0]['metrics']
  assert metrics['HasAns_exact'] >= 85.0 and metrics['NoAns_exact'] >= 85.0, metrics
  assert metrics['f1'] == pytest.approx(metrics['best_f1'])  # scored at the tuned threshold
  assert 'best_f1_thresh' in metrics

  seed_dir = tmp_path / 'work' / 'squad_v2.0' / 'seed_0'
  predictions = json.loads((seed_dir / 'predictions.json').read_text())
  null_odds = json.loads((seed_dir / 'null_odds.json').read_text())
  assert set(predictions) == set(null_odds) and len(predictions) == 96
  # The null odds themselves separate the questions (not just a lucky threshold): nearly every
  # unanswerable question has higher odds than every answerable one.
  dev = json.loads((tmp_path / 'dev-v2.0.json').read_text())['data'][0]['paragraphs']
  impossible = {p['qas'][0]['id'] for p in dev if p['qas'][0]['is_impossible']}
  no_answer = np.array([odds for qid, odds in null_odds.items() if qid in impossible])
  has_answer = np.array([odds for qid, odds in null_odds.items() if qid not in impossible])
  assert np.mean(no_answer[:, None] > has_answer[None, :]) >= 0.95
  official = squad_eval.main([str(tmp_path / 'dev-v2.0.json'), str(seed_dir / 'predictions.json')])
  assert official['exact'] == pytest.approx(metrics['exact'])


def test_loss_is_the_originals():
  """qa_tasks.py: per example (start + end cross-entropy) / 2 + answerable_weight x sigmoid
  cross-entropy against the question's is_impossible; we average over the batch."""
  rng = np.random.default_rng(0)
  start_logits, end_logits = rng.normal(0, 2, (4, 10)), rng.normal(0, 2, (4, 10))
  answerable = rng.normal(0, 2, 4)
  batch = {'start_positions': np.array([0, 3, 5, 0]), 'end_positions': np.array([0, 4, 5, 0]),
           'is_impossible': np.array([1, 0, 0, 0]), 'window_is_impossible': np.array([1, 0, 0, 1])}

  def log_softmax(x):
    return x - x.max(-1, keepdims=True) - np.log(np.exp(x - x.max(-1, keepdims=True)).sum(
        -1, keepdims=True))

  def compute_loss(logits, positions):
    return -np.sum(np.eye(10)[positions] * log_softmax(logits), axis=-1)

  def sigmoid_xent(logits, labels):  # tf.nn.sigmoid_cross_entropy_with_logits
    return np.maximum(logits, 0) - logits * labels + np.log1p(np.exp(-np.abs(logits)))

  losses = (compute_loss(start_logits, batch['start_positions'])
            + compute_loss(end_logits, batch['end_positions'])) / 2.0
  expected = losses + 0.5 * sigmoid_xent(answerable, batch['is_impossible'])
  outputs = {'start_logits': start_logits, 'end_logits': end_logits,
             'answerable_logits': answerable}
  loss = squad.span_loss(outputs, batch, answerable_weight=0.5)
  assert float(loss) == pytest.approx(expected.mean(), rel=1e-5)
  window = squad.span_loss(outputs, batch, answerable_weight=0.5,
                           answerable_label='window_is_impossible')
  assert float(window) != pytest.approx(float(loss))  # the independent head's own labels


def test_tfds_splits(repo_root, tokenizer_path, tmp_path):
  """source='tfds' reads squad/<version>: 'train', and 'validation' for dev."""
  requested = []

  def fake_as_dataset(builder, split, **kwargs):
    del kwargs
    requested.append((builder.builder_config.name, split))
    return tf.data.Dataset.from_tensor_slices({
        'id': [b'q1'], 'title': [b't'], 'question': [b'who?'], 'context': [b'doctor bob sat'],
        'answers': {'text': [[b'doctor bob']], 'answer_start': [[0]]},
        'is_impossible': [False], 'plausible_answers': {'text': [[b'']],
                                                        'answer_start': [[0]]}})

  config = tiny(load_config(repo_root, 'v2.0'), tokenizer_path, tmp_path)
  config.data.source = 'tfds'
  with tfds.testing.mock_data(as_dataset_fn=fake_as_dataset):
    train = squad.read_split(config, 'v2.0', 'train')
    dev = squad.read_split(config, 'v2.0', 'dev')
  assert requested == [('v2.0', 'train'), ('v2.0', 'validation')]
  assert train[0].answer_texts == dev[0].answer_texts == ('doctor bob',)


def test_bad_settings_fail_before_training(repo_root, tokenizer_path, tmp_path):
  config = tiny(load_config(repo_root, 'v3'), tokenizer_path, tmp_path)
  with pytest.raises(ValueError, match="'v1.1' or 'v2.0'"):
    squad.run(config, str(tmp_path))
  config = tiny(load_config(repo_root, 'v2.0'), tokenizer_path, tmp_path)
  config.squad.null_score = 'max'
  with pytest.raises(ValueError, match='null_score'):
    squad.run(config, str(tmp_path))
  config.squad.null_score = 'sum'  # needs the independent head's span logits
  with pytest.raises(ValueError, match="qa_head='joint'"):
    squad.run(config, str(tmp_path))
  config.squad.null_score, config.squad.beam_size = 'classifier', 100
  with pytest.raises(ValueError, match='beam_size=100'):
    squad.run(config, str(tmp_path))
  config.squad.beam_size, config.task.qa_head = 20, 'xlnet'
  with pytest.raises(ValueError, match='qa_head'):
    squad.run(config, str(tmp_path))
  config = tiny(load_config(repo_root, 'v1.1'), tokenizer_path, tmp_path)
  config.data.data_dir = ''
  with pytest.raises(ValueError, match='data_dir'):
    squad.run(config, str(tmp_path))

"""SQuAD scoring against values worked out by hand from the official definition, and the
post-processing (n-best, null odds, threshold search) on synthetic logits."""

import json
import re
import subprocess
import sys

import numpy as np
import pytest

from electra_jax.finetune import squad_data
from electra_jax.finetune import squad_eval
from electra_jax.finetune import squad_postprocess

# ---- Scoring ---------------------------------------------------------------------------------


@pytest.mark.parametrize('text, normalized', [
    ('The  Quick, brown fox!', 'quick brown fox'),
    ('an apple a day', 'apple day'),
    ('theater', 'theater'),  # articles only as whole words
    ('A.B.C.', 'abc'),  # punctuation removed before articles: 'abc', not 'b c'
    ("Don't stop", 'dont stop'),
    ('  \tNew\nYork ', 'new york'),
    ('the', ''),
])
def test_normalize_answer(text, normalized):
  assert squad_eval.normalize_answer(text) == normalized


def test_exact_and_f1_by_hand():
  assert squad_eval.exact_match('President Obama', 'the President Obama.') == 1
  assert squad_eval.exact_match('Barack Obama', 'Obama') == 0
  # 'obama' vs 'barack obama': precision 1, recall 1/2 -> F1 2/3.
  assert squad_eval.f1_v1('Barack Obama', 'Obama') == pytest.approx(2 / 3)
  # Bags: pred {obama: 2, barack: 1}, gold {barack, obama}: overlap 2, P 2/3, R 1 -> 0.8.
  assert squad_eval.f1_v1('Barack Obama', 'Obama Obama Barack') == pytest.approx(0.8)
  assert squad_eval.f1_v1('red car', 'blue bike') == 0.0
  # Empty answers: v1.1 gives 0 (no overlap), v2.0 gives 1 iff both are empty.
  assert squad_eval.f1_v1('', '') == 0.0
  assert squad_eval.f1_v2('', '') == 1.0
  assert squad_eval.f1_v2('The', 'an') == 1.0  # both normalise to ''
  assert squad_eval.f1_v2('', 'something') == 0.0


def _dataset(questions):
  """A SQuAD-format 'data' list from (id, [gold texts]) pairs (contexts do not matter here)."""
  return [{'title': 't', 'paragraphs': [{'context': 'c', 'qas': [
      {'id': qid, 'question': '?', 'answers': [{'text': t, 'answer_start': 0} for t in golds]}
      for qid, golds in questions]}]}]


def test_v1_scores_with_several_gold_answers_and_a_missing_prediction():
  gold = squad_eval.gold_answers(_dataset([
      ('q1', ['Barack Obama', 'President Obama']),
      ('q2', ['Barack Obama', 'President Obama']),
      ('q3', ['Paris'])]))
  predictions = {'q1': 'the President Obama.', 'q2': 'Obama'}  # q3 unanswered: counts as 0
  result = squad_eval.evaluate_v1(gold, predictions)
  assert result['exact_match'] == pytest.approx(100 / 3)
  assert result['f1'] == pytest.approx(100 * (1 + 2 / 3) / 3)


V2_QUESTIONS = [
    ('h1', ['Denver Broncos', 'The Denver Broncos']),  # pred 'Broncos': EM 0, F1 2/3
    ('h2', ['1990']),  # pred '1990': 1, 1
    ('h3', ['The']),  # gold normalises to '' -> scored against '': pred '' gets 1, 1 (HasAns)
    ('n1', []),  # pred '': 1, 1
    ('n2', []),  # pred 'something': 0, 0
]
V2_PREDICTIONS = {'h1': 'Broncos', 'h2': '1990', 'h3': '', 'n1': '', 'n2': 'something'}
V2_NULL_ODDS = {'h1': 0.2, 'h2': 0.1, 'h3': 0.9, 'n1': 0.8, 'n2': 0.7}


def test_v2_scores_with_has_and_no_answer_breakdown():
  gold = squad_eval.gold_answers(_dataset(V2_QUESTIONS))
  result = squad_eval.evaluate_v2(gold, V2_PREDICTIONS)
  assert result['total'] == 5
  assert result['exact'] == pytest.approx(60.0)
  assert result['f1'] == pytest.approx(100 * (2 / 3 + 3) / 5)
  assert result['HasAns_total'] == 3 and result['NoAns_total'] == 2
  assert result['HasAns_exact'] == pytest.approx(200 / 3)
  assert result['HasAns_f1'] == pytest.approx(100 * (2 / 3 + 2) / 3)
  assert result['NoAns_exact'] == pytest.approx(50.0)
  assert result['NoAns_f1'] == pytest.approx(50.0)
  assert 'best_f1' not in result


def test_v2_null_odds_threshold_and_best_threshold_search():
  gold = squad_eval.gold_answers(_dataset(V2_QUESTIONS))
  result = squad_eval.evaluate_v2(gold, V2_PREDICTIONS, V2_NULL_ODDS, na_prob_thresh=0.5)
  # h3, n1, n2 have odds > 0.5 -> ''; right for n1, n2; wrong for h3 (it has an answer).
  assert result['exact'] == pytest.approx(100 * (0 + 1 + 0 + 1 + 1) / 5)
  assert result['f1'] == pytest.approx(100 * (2 / 3 + 1 + 0 + 1 + 1) / 5)
  # Search, start: all '' -> 2 (n1, n2). Increasing odds: h2 (+1 -> 3, thresh 0.1),
  # h1 (EM +0; F1 +2/3 -> 3.67, thresh 0.2), n2 (-1), n1 (0), h3 (+1, not above the best).
  assert result['best_exact'] == pytest.approx(60.0)
  assert result['best_exact_thresh'] == pytest.approx(0.1)
  assert result['best_f1'] == pytest.approx(100 * (3 + 2 / 3) / 5)
  assert result['best_f1_thresh'] == pytest.approx(0.2)


def test_v2_rejects_incomplete_null_odds():
  gold = squad_eval.gold_answers(_dataset(V2_QUESTIONS))
  with pytest.raises(ValueError, match='null-odds file lacks'):
    squad_eval.evaluate_v2(gold, V2_PREDICTIONS, {'h1': 0.0})
  with pytest.raises(ValueError, match='Unknown SQuAD version'):
    squad_eval.evaluate('3.0', gold, V2_PREDICTIONS)


def test_cli_v2(tmp_path):
  data = tmp_path / 'dev-v2.0.json'
  data.write_text(json.dumps({'version': 'v2.0', 'data': _dataset(V2_QUESTIONS)}))
  predictions = tmp_path / 'predictions.json'
  predictions.write_text(json.dumps(V2_PREDICTIONS))
  null_odds = tmp_path / 'null_odds.json'
  null_odds.write_text(json.dumps(V2_NULL_ODDS))
  completed = subprocess.run(
      [sys.executable, '-m', 'electra_jax.finetune.squad_eval', str(data), str(predictions),
       '--na-prob-file', str(null_odds), '--out-file', str(tmp_path / 'eval.json')],
      capture_output=True, text=True, check=True)
  result = json.loads(completed.stdout)
  assert result['exact'] == pytest.approx(60.0) and result['best_f1_thresh'] == 0.2
  assert json.loads((tmp_path / 'eval.json').read_text()) == result


def test_cli_v1_in_process(tmp_path, capsys):
  data = tmp_path / 'dev-v1.1.json'
  data.write_text(json.dumps({'version': '1.1', 'data': _dataset([('q1', ['Paris']),
                                                                  ('q2', ['Rome'])])}))
  predictions = tmp_path / 'predictions.json'
  predictions.write_text(json.dumps({'q1': 'paris', 'q2': 'Milan'}))
  squad_eval.main([str(data), str(predictions)])
  assert json.loads(capsys.readouterr().out) == {'exact_match': 50.0, 'f1': 50.0}


# ---- Post-processing -------------------------------------------------------------------------


class WordTokenizer:
  """Words and punctuation marks as tokens, with character offsets."""
  pad_id, unk_id, cls_id, sep_id, mask_id = 0, 1, 2, 3, 4

  def __init__(self):
    self.vocab = {}

  def encode_with_offsets(self, text):
    matches = list(re.finditer(r'\w+|[^\w\s]', text))
    ids = [self.vocab.setdefault(m.group().lower(), 5 + len(self.vocab)) for m in matches]
    return ids, [m.start() for m in matches], [m.end() for m in matches]

  def encode(self, text):
    return self.encode_with_offsets(text)[0]


def _context(num_words, seed):
  rng = np.random.default_rng(seed)
  return ' '.join(f'Word{i}{"," if rng.random() < 0.2 else ""}' for i in range(num_words))


def _peaked_logits(features, noise_seed=0):
  """Logits that point at each window's labelled span (low noise elsewhere)."""
  rng = np.random.default_rng(noise_seed)
  start = rng.normal(0, 0.1, features.input_ids.shape)
  end = rng.normal(0, 0.1, features.input_ids.shape)
  rows = np.arange(len(features))
  start[rows, features.start_positions] += 10.0
  end[rows, features.end_positions] += 10.0
  return start, end


def _qa(qid, context, first_word, last_word, impossible=False):
  if impossible:
    return squad_data.SquadExample(qid, 't', 'Which words?', context, (), (), True)
  start = context.index(f'Word{first_word}')
  end = context.index(f'Word{last_word}') + len(f'Word{last_word}')
  return squad_data.SquadExample(qid, 't', 'Which words?', context, (context[start:end],),
                                 (start,))


def test_v1_postprocess_recovers_answers_across_windows(tmp_path):
  tokenizer = WordTokenizer()
  context = _context(200, seed=1)
  examples = [_qa('early', context, 3, 5), _qa('late', context, 150, 153),
              _qa('one', context, 77, 77)]
  features = squad_data.create_features(tokenizer, examples, 48, 16, 8)
  assert len(features) > 3 * len(examples)
  start, end = _peaked_logits(features)
  result = squad_postprocess.postprocess(examples, features, start, end, version_2=False)
  assert result.predictions == {ex.qid: ex.answer_texts[0] for ex in examples}
  assert result.null_odds == {}
  nbest = result.nbest['late']
  assert nbest[0]['text'] == examples[1].answer_texts[0] and len(nbest) <= 20
  assert len({e['text'] for e in nbest}) == len(nbest)
  assert sum(e['probability'] for e in nbest) == pytest.approx(1.0)
  gold = {ex.qid: list(ex.answer_texts) for ex in examples}
  assert squad_eval.evaluate_v1(gold, result.predictions) == {'exact_match': 100.0, 'f1': 100.0}

  paths = squad_postprocess.write_predictions(result, str(tmp_path), with_nbest=True)
  assert set(paths) == {'predictions', 'nbest'}
  assert json.loads(open(paths['predictions']).read()) == result.predictions


def test_postprocess_respects_span_constraints():
  tokenizer = WordTokenizer()
  context = _context(30, seed=2)
  example = _qa('q', context, 0, 0)
  features = squad_data.create_features(tokenizer, [example], 64, 16, 8)
  assert len(features) == 1
  offset = len(tokenizer.encode(example.question)) + 2  # first context token
  start = np.full((1, 64), -100.0)
  end = np.full((1, 64), -100.0)
  start[0, 1] = 50.0  # a question token: never a start
  start[0, offset + 2] = 10.0
  start[0, offset + 5] = 8.0
  end[0, offset + 1] = 40.0  # before both starts
  end[0, offset + 20] = 30.0  # too long a span from either start
  end[0, offset + 6] = 5.0
  result = squad_postprocess.postprocess([example], features, start, end, version_2=False,
                                         max_answer_length=5)
  words = [features.token_char_start[0, offset + 2], features.token_char_end[0, offset + 6]]
  assert result.predictions['q'] == context[words[0]:words[1]]
  assert result.nbest['q'][0]['score'] == pytest.approx(15.0)
  assert result.nbest['q'][1]['score'] == pytest.approx(13.0)  # (offset+5, offset+6)
  with pytest.raises(ValueError, match='must match the features'):
    squad_postprocess.postprocess([example], features, start[:, :10], end, version_2=False)


def test_v2_null_odds_from_span_and_classifier():
  tokenizer = WordTokenizer()
  context = _context(120, seed=3)
  examples = [_qa('has', context, 60, 61), _qa('none', context, 0, 0, impossible=True)]
  features = squad_data.create_features(tokenizer, examples, 40, 16, 8)
  start, end = _peaked_logits(features)
  rows_none = np.flatnonzero(features.example_index == 1)
  rows_has = np.flatnonzero(features.example_index == 0)
  # Hand-set [CLS] scores: the null score is the minimum over windows.
  start[:, 0], end[:, 0] = 10.0, 10.0  # every window's labelled [CLS] peak (20)
  start[rows_has[0], 0], end[rows_has[0], 0] = 2.0, 1.0  # the least null window says 3
  start[rows_none, 1 + len(tokenizer.encode('Which words?')) + 3] = 4.0  # best span: 4 + ~0
  result = squad_postprocess.postprocess(examples, features, start, end, version_2=True)
  best_has = 10.0 + 10.0  # the labelled span, plus noise
  assert result.null_odds['has'] == pytest.approx(3.0 - best_has, abs=0.5)
  assert result.predictions['has'] == examples[0].answer_texts[0]
  assert result.null_odds['none'] == pytest.approx(20.0 - 4.0, abs=0.5)
  assert result.predictions['none'] == ''
  assert result.best_non_null['none'] != ''
  assert '' in [e['text'] for e in result.nbest['none']]

  # The classifier's "impossible" logit: minimum over windows, alone or added to the span odds.
  impossible_logit = np.where(features.example_index == 1, 2.0, 7.0)
  impossible_logit[rows_has[-1]] = -5.0
  classifier = squad_postprocess.postprocess(examples, features, start, end, version_2=True,
                                             answerable_logits=impossible_logit,
                                             null_score='classifier')
  assert classifier.null_odds == {'has': -5.0, 'none': 2.0}
  summed = squad_postprocess.postprocess(examples, features, start, end, version_2=True,
                                         answerable_logits=impossible_logit)
  for qid in ('has', 'none'):
    assert summed.null_odds[qid] == pytest.approx(
        result.null_odds[qid] + classifier.null_odds[qid])
  with pytest.raises(ValueError, match='needs answerable_logits'):
    squad_postprocess.postprocess(examples, features, start, end, version_2=True,
                                  null_score='sum')


def test_threshold_tuning_matches_the_official_search():
  predictions = squad_postprocess.SquadPredictions(
      predictions={},
      null_odds={'a': -3.0, 'b': -2.0, 'c': 2.0, 'd': -1.0},
      best_non_null={'a': 'blue sky', 'b': 'car', 'c': 'x', 'd': 'y'},
      nbest={})
  gold = {'a': ['Blue sky'], 'b': ['red car'], 'c': [], 'd': []}
  tuned = squad_postprocess.tune_null_threshold(gold, predictions)
  # All '' scores 2 (c, d). Increasing odds: a +1 -> 3 (thresh -3); b: EM +0, F1 +2/3 -> 3.67
  # (thresh -2); d -1; c -1.
  assert tuned == pytest.approx({'best_exact': 75.0, 'best_exact_thresh': -3.0,
                                 'best_f1': 100 * (3 + 2 / 3) / 4, 'best_f1_thresh': -2.0})
  answers = squad_postprocess.apply_null_threshold(predictions, tuned['best_f1_thresh'])
  assert answers == {'a': 'blue sky', 'b': 'car', 'c': '', 'd': ''}
  assert squad_eval.evaluate_v2(gold, answers)['f1'] == pytest.approx(tuned['best_f1'])
  with pytest.raises(ValueError, match='no gold answers'):
    squad_postprocess.tune_null_threshold({'a': ['x']}, predictions)


def test_v2_files_written(tmp_path):
  predictions = squad_postprocess.SquadPredictions({'a': ''}, {'a': 1.5}, {'a': 'x'}, {})
  paths = squad_postprocess.write_predictions(predictions, str(tmp_path / 'out'))
  assert json.loads(open(paths['predictions']).read()) == {'a': ''}
  assert json.loads(open(paths['null_odds']).read()) == {'a': 1.5}


# ---- The original's joint-head decoding (qa_metrics.SpanBasedQAScorer.write_predictions) -----

def original_write_predictions(examples, features, results, v2, n_best_size=20,
                               max_answer_length=30):
  """`write_predictions` with joint_prediction and answerable_classifier, on our features.

  The original's `token_to_orig_map` holds the context positions (ours: token_char_start >= 0),
  its tokens are the unpadded ones, and its text is cut from the context (ours too, by offsets).
  Returns (all_predictions, scores_diff_json, all_nbest [(text, start_logit, end_logit)]).
  """
  all_predictions, scores_diff, all_nbest = {}, {}, {}
  for example_index, example in enumerate(examples):
    rows = [f for f in range(len(features)) if features.example_index[f] == example_index]
    prelim, score_null = [], 1000000
    for f in rows:
      result = results[f]
      num_tokens = int(features.attention_mask[f].sum())
      to_orig = {i for i in range(num_tokens) if features.token_char_start[f, i] >= 0}
      if v2:
        score_null = min(score_null, result['answerable_logit'])
      for i, start_index in enumerate(result['start_top_index']):
        for j, end_index in enumerate(result['end_top_index'][i]):
          if start_index >= num_tokens or end_index >= num_tokens or start_index == 0:
            continue
          if start_index not in to_orig or end_index not in to_orig:
            continue
          if not features.token_is_max_context[f, start_index] or end_index < start_index:
            continue
          if end_index - start_index + 1 > max_answer_length:
            continue
          prelim.append((f, start_index, end_index, result['start_top_log_probs'][i],
                         result['end_top_log_probs'][i, j]))
    prelim.sort(key=lambda x: x[3] + x[4], reverse=True)
    seen, nbest = set(), []
    for f, start, end, start_logit, end_logit in prelim:
      if len(nbest) >= n_best_size:
        break
      text = example.context[features.token_char_start[f, start]:
                             features.token_char_end[f, end]].strip()
      if text in seen:
        continue
      seen.add(text)
      nbest.append((text, start_logit, end_logit))
    best_non_null = next(entry for entry in nbest if entry[0])
    all_predictions[example.qid] = nbest[0][0] if not v2 else best_non_null[0]
    if v2:
      scores_diff[example.qid] = score_null
    all_nbest[example.qid] = nbest
  return all_predictions, scores_diff, all_nbest


def _hand_made_beam(features, beam, seed):
  """Beam outputs with distinct scores that exercise every filter: starts on [CLS], question
  tokens, padding and context tokens with and without max context; ends before the start, at
  it, and up to 9 tokens after it (beyond max_answer_length=6), in and out of the context."""
  rng = np.random.default_rng(seed)
  n, length = features.input_ids.shape
  start_index = np.zeros((n, beam), np.int32)
  end_index = np.zeros((n, beam, beam), np.int32)
  for f in range(n):
    context = np.flatnonzero(features.token_char_start[f] >= 0)
    others = np.setdiff1d(np.arange(length), context)
    start_index[f] = np.concatenate([rng.choice(context, beam - 2, replace=False),
                                     rng.choice(others, 2, replace=False)])
    rng.shuffle(start_index[f])
    for i, start in enumerate(start_index[f]):
      near = np.arange(max(start - 2, 0), min(start + 10, length))
      if len(near) < beam:  # a start at the window's end: top up with any positions
        near = np.concatenate([near, rng.choice(np.setdiff1d(np.arange(length), near),
                                                beam - len(near), replace=False)])
      end_index[f, i] = rng.choice(near, beam, replace=False)
  return {'start_top_index': start_index,
          'start_top_log_probs': -np.sort(rng.uniform(0, 5, (n, beam)), axis=1).astype(
              np.float32),
          'end_top_index': end_index,
          'end_top_log_probs': -np.sort(rng.uniform(0, 5, (n, beam, beam)), axis=2).astype(
              np.float32),
          'answerable_logits': rng.normal(0, 3, n).astype(np.float32)}


@pytest.mark.parametrize('version_2', [False, True])
def test_beam_decoding_and_null_score_are_the_originals(version_2):
  tokenizer = WordTokenizer()
  context = _context(120, seed=4)
  examples = [_qa('a', context, 60, 61), _qa('b', context, 10, 12),
              _qa('c', context, 0, 0, impossible=version_2)]
  features = squad_data.create_features(tokenizer, examples, 40, 16, 8)
  assert len(features) > len(examples)  # several windows per question
  outputs = _hand_made_beam(features, beam=8, seed=5)
  ours = squad_postprocess.postprocess_beam(examples, features, outputs, version_2=version_2,
                                            n_best_size=20, max_answer_length=6)
  results = [{key.replace('answerable_logits', 'answerable_logit'): value[f]
              for key, value in outputs.items()} for f in range(len(features))]
  predictions, null_odds, nbest = original_write_predictions(
      examples, features, results, version_2, n_best_size=20, max_answer_length=6)
  assert ours.best_non_null == predictions
  for qid, entries in nbest.items():
    assert [(e['text'], e['start_logit'], e['end_logit']) for e in ours.nbest[qid]] == [
        (text, pytest.approx(s), pytest.approx(e)) for text, s, e in entries], qid
    assert sum(e['probability'] for e in ours.nbest[qid]) == pytest.approx(1.0)
  if version_2:
    # The null score is the classifier's logit alone, its minimum over the windows.
    assert ours.null_odds == pytest.approx(null_odds)
    assert ours.predictions == {qid: '' if null_odds[qid] > 0 else text
                                for qid, text in predictions.items()}
  else:
    assert ours.null_odds == {} and ours.predictions == predictions
  with pytest.raises(ValueError, match='must match the features'):
    squad_postprocess.postprocess_beam(examples, features, {
        **outputs, 'end_top_index': outputs['end_top_index'][:, :3]}, version_2=version_2)

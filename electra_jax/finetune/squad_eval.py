"""SQuAD exact match and F1, defined as the official v1.1 and v2.0 evaluation scripts define them.

Usage:
  python -m electra_jax.finetune.squad_eval DATA.json PREDICTIONS.json \
      [--na-prob-file NULL_ODDS.json] [--na-prob-thresh 1.0] [--out-file EVAL.json]

prints the evaluation as JSON. The version is read from DATA.json's "version" field. A missing,
malformed or foreign input file is one `error: ...` line with exit status 2.

The two official scripts differ in small ways that change the numbers, and both are kept:
- v1.1: a question missing from the predictions scores 0 and counts in the total; an empty
  prediction against an empty normalised gold scores F1 0.
- v2.0: a question missing from the predictions is left out of the total; gold answers that
  normalise to '' are dropped and a question with none is scored against ['']; F1 of two empty
  token lists is 1 (and 0 if only one is empty); scores are broken down into HasAns/NoAns, and
  with a null-odds file the predictions whose odds exceed a threshold become '' and the best
  thresholds for EM and F1 are searched.
"""

import argparse
import collections
import json
import re
import string
from typing import IO, Any, Mapping, Optional, Sequence

from electra_jax import errors
from electra_jax.errors import MissingFileError, UserError

_PUNCTUATION = frozenset(string.punctuation)
_ARTICLES = re.compile(r'\b(a|an|the)\b', re.UNICODE)


def normalize_answer(text: str) -> str:
  """Lower-cases, drops punctuation and the articles a/an/the, and collapses whitespace."""
  text = text.lower()
  text = ''.join(ch for ch in text if ch not in _PUNCTUATION)
  text = _ARTICLES.sub(' ', text)
  return ' '.join(text.split())


def exact_match(gold: str, prediction: str) -> int:
  return int(normalize_answer(gold) == normalize_answer(prediction))


def f1_v1(gold: str, prediction: str) -> float:
  """Token-bag F1 as in the v1.1 script (0 when nothing overlaps, empty answers included)."""
  prediction_tokens = normalize_answer(prediction).split()
  gold_tokens = normalize_answer(gold).split()
  return _bag_f1(gold_tokens, prediction_tokens)


def f1_v2(gold: str, prediction: str) -> float:
  """Token-bag F1 as in the v2.0 script: if either side is empty, 1 iff both are."""
  gold_tokens = normalize_answer(gold).split()
  prediction_tokens = normalize_answer(prediction).split()
  if not gold_tokens or not prediction_tokens:
    return float(gold_tokens == prediction_tokens)
  return _bag_f1(gold_tokens, prediction_tokens)


def _bag_f1(gold_tokens: Sequence[str], prediction_tokens: Sequence[str]) -> float:
  common = collections.Counter(gold_tokens) & collections.Counter(prediction_tokens)
  num_same = sum(common.values())
  if num_same == 0:
    return 0.0
  precision = num_same / len(prediction_tokens)
  recall = num_same / len(gold_tokens)
  return 2 * precision * recall / (precision + recall)


# ---- Gold answers ----------------------------------------------------------------------------


def gold_answers(articles: Sequence[Mapping]) -> dict[str, list[str]]:
  """{question id: gold answer texts} from the 'data' list of a SQuAD JSON file."""
  return {qa['id']: [answer['text'] for answer in qa['answers']]
          for article in articles for paragraph in article['paragraphs']
          for qa in paragraph['qas']}


def _open(path: str, mode: str = 'r') -> IO[str]:
  """Opens a local file directly and a remote one (gs://...) through tf.io.gfile."""
  if '://' in path:
    # TensorFlow only for remote paths: importing it takes seconds, the scoring milliseconds.
    import tensorflow as tf  # noqa: PLC0415
    return tf.io.gfile.GFile(path, mode)
  return open(path, mode, encoding='utf-8')


def _read_json(path: str, what: str) -> Any:
  """The JSON value in `path`; a missing or malformed file is a UserError naming it."""
  try:
    with _open(path) as f:
      return json.load(f)
  except FileNotFoundError:
    raise MissingFileError(f'{path} does not exist (expected {what}).') from None
  except (json.JSONDecodeError, UnicodeDecodeError) as error:
    raise UserError(f'{path} is not valid JSON ({error}); expected {what}.') from None


def load_dataset(path: str) -> tuple[str, list[Mapping]]:
  """(version, articles) of a SQuAD JSON file, local or gs://."""
  dataset = _read_json(path, 'a SQuAD dataset file such as dev-v2.0.json')
  if not isinstance(dataset, dict) or 'data' not in dataset:
    raise UserError(f'{path} has no "data" field; is it a SQuAD dataset file?')
  return str(dataset.get('version', '')), dataset['data']


# ---- v1.1 ------------------------------------------------------------------------------------


def evaluate_v1(gold: Mapping[str, Sequence[str]],
                predictions: Mapping[str, str]) -> dict[str, float]:
  """{'exact_match', 'f1'} in percent, as the official v1.1 script."""
  if not gold:
    raise UserError('No gold questions to score.')
  total_exact = total_f1 = 0.0
  for qid, answers in gold.items():
    if qid not in predictions:
      continue  # unanswered: scores 0 but still counts in the total
    prediction = predictions[qid]
    total_exact += max(exact_match(a, prediction) for a in answers)
    total_f1 += max(f1_v1(a, prediction) for a in answers)
  return {'exact_match': 100.0 * total_exact / len(gold), 'f1': 100.0 * total_f1 / len(gold)}


# ---- v2.0 ------------------------------------------------------------------------------------


def raw_scores_v2(gold: Mapping[str, Sequence[str]],
                  predictions: Mapping[str, str]) -> tuple[dict[str, int], dict[str, float]]:
  """Per-question exact and F1 (fractions) of the predicted questions, v2.0 rules."""
  exact, f1 = {}, {}
  for qid, answers in gold.items():
    if qid not in predictions:
      continue
    answers = [a for a in answers if normalize_answer(a)] or ['']
    prediction = predictions[qid]
    exact[qid] = max(exact_match(a, prediction) for a in answers)
    f1[qid] = max(f1_v2(a, prediction) for a in answers)
  return exact, f1


def apply_no_answer_threshold(scores: Mapping[str, float], na_probs: Mapping[str, float],
                              has_answer: Mapping[str, bool],
                              threshold: float) -> dict[str, float]:
  """Questions with null odds above `threshold` are answered '': right iff they have none."""
  return {qid: float(not has_answer[qid]) if na_probs[qid] > threshold else score
          for qid, score in scores.items()}


def _summary(exact: Mapping[str, float], f1: Mapping[str, float],
             qids: Optional[Sequence[str]] = None) -> dict[str, float]:
  qids = list(exact) if qids is None else qids
  total = len(qids)
  return {'exact': 100.0 * sum(exact[q] for q in qids) / total,
          'f1': 100.0 * sum(f1[q] for q in qids) / total,
          'total': total}


def find_best_threshold(predictions: Mapping[str, str], scores: Mapping[str, float],
                        na_probs: Mapping[str, float],
                        has_answer: Mapping[str, bool]) -> tuple[float, float]:
  """The official v2.0 `find_best_thresh`: (best score in percent, its threshold).

  Starts from "every question answered ''" (which scores one per no-answer question) and
  walks the questions in increasing null odds, letting each one's prediction stand; the
  threshold reported is the null odds of the question where the score peaked (0.0 if the
  all-'' start is never beaten, as in the official script).
  """
  score = best_score = sum(1 for qid in has_answer if not has_answer[qid])
  best_threshold = 0.0
  for qid in sorted(na_probs, key=lambda q: na_probs[q]):
    if qid not in scores:
      continue
    if has_answer[qid]:
      score += scores[qid]
    elif predictions[qid]:
      score -= 1
    if score > best_score:
      best_score, best_threshold = score, na_probs[qid]
  return 100.0 * best_score / len(scores), float(best_threshold)


def evaluate_v2(gold: Mapping[str, Sequence[str]], predictions: Mapping[str, str],
                na_probs: Optional[Mapping[str, float]] = None,
                na_prob_thresh: float = 1.0) -> dict[str, float]:
  """The official v2.0 evaluation.

  Args:
    gold: {question id: gold answer texts}, [] for unanswerable questions.
    predictions: {question id: predicted text}, '' for "no answer".
    na_probs: optional {question id: null odds} (e.g. `null_odds.json`); adds
      best_exact/best_f1 and their thresholds.
    na_prob_thresh: predictions with null odds above this count as ''.

  Returns:
    exact, f1 (percent), total; HasAns_*/NoAns_* for the questions with / without gold
    answers; with `na_probs`, best_exact, best_exact_thresh, best_f1, best_f1_thresh.
  """
  has_answer = {qid: bool(answers) for qid, answers in gold.items()}
  given_na_probs = na_probs is not None
  if na_probs is None:
    na_probs = {qid: 0.0 for qid in predictions}
  missing = [qid for qid in predictions if qid in gold and qid not in na_probs]
  if missing:
    raise UserError(f'The null-odds file lacks {len(missing)} predicted question(s), e.g. '
                    f'{missing[0]!r}; write it from the same run as the predictions.')
  exact_raw, f1_raw = raw_scores_v2(gold, predictions)
  if not exact_raw:
    raise UserError('No predicted question is in the dataset: wrong predictions file?')
  exact = apply_no_answer_threshold(exact_raw, na_probs, has_answer, na_prob_thresh)
  f1 = apply_no_answer_threshold(f1_raw, na_probs, has_answer, na_prob_thresh)
  result = _summary(exact, f1)
  for prefix, wanted in (('HasAns', True), ('NoAns', False)):
    qids = [qid for qid in exact if has_answer[qid] == wanted]
    if qids:
      result.update({f'{prefix}_{k}': v for k, v in _summary(exact, f1, qids).items()})
  if given_na_probs:
    na_probs = {qid: p for qid, p in na_probs.items() if qid in has_answer}
    result['best_exact'], result['best_exact_thresh'] = find_best_threshold(
        predictions, exact_raw, na_probs, has_answer)
    result['best_f1'], result['best_f1_thresh'] = find_best_threshold(
        predictions, f1_raw, na_probs, has_answer)
  return result


def evaluate(version: str, gold: Mapping[str, Sequence[str]], predictions: Mapping[str, str],
             na_probs: Optional[Mapping[str, float]] = None,
             na_prob_thresh: float = 1.0) -> dict[str, float]:
  """Scores with the rules of `version` ('1.1' or 'v2.0'; any spelling with 1.1 / 2.0)."""
  if '2.0' in version:
    return evaluate_v2(gold, predictions, na_probs, na_prob_thresh)
  if '1.1' in version:
    if na_probs is not None:
      raise UserError('Null odds only apply to SQuAD v2.0; drop --na-prob-file.')
    return evaluate_v1(gold, predictions)
  raise UserError(f'Unknown SQuAD version {version!r}; pass --version 1.1 or 2.0.')


def main(argv: Optional[Sequence[str]] = None) -> dict[str, float]:
  parser = argparse.ArgumentParser(
      prog='python -m electra_jax.finetune.squad_eval',
      description='Official SQuAD v1.1 / v2.0 exact match and F1 of a predictions file.')
  parser.add_argument('data_file', help='SQuAD dataset JSON (local or gs://)')
  parser.add_argument('pred_file', help='predictions JSON: {question id: answer text}')
  parser.add_argument('--na-prob-file', help='v2.0: null odds JSON {question id: odds}')
  parser.add_argument('--na-prob-thresh', type=float, default=1.0,
                      help='v2.0: predict no answer when the null odds exceed this')
  parser.add_argument('--version', default='',
                      help="'1.1' or '2.0'; default: the data file's version field")
  parser.add_argument('--out-file', help='also write the evaluation JSON here')
  parser.error = _usage_error
  args = parser.parse_args(argv)

  version, articles = load_dataset(args.data_file)
  try:
    gold = gold_answers(articles)
  except (KeyError, TypeError) as error:
    raise UserError(f'{args.data_file} lacks the SQuAD structure (data -> paragraphs -> '
                    f'qas -> id, answers); missing {error}.') from None
  predictions = _read_json(args.pred_file, 'predictions: {question id: answer text}')
  if not isinstance(predictions, dict):
    raise UserError(f'{args.pred_file} holds a {type(predictions).__name__}; expected '
                    'predictions: {question id: answer text}.')
  na_probs = None
  if args.na_prob_file:
    na_probs = _read_json(args.na_prob_file, 'null odds: {question id: odds}')
  result = evaluate(args.version or version, gold, predictions, na_probs, args.na_prob_thresh)
  text = json.dumps(result, indent=2)
  print(text)
  if args.out_file:
    with _open(args.out_file, 'w') as f:
      f.write(text + '\n')
  return result


def _usage_error(message: str):
  raise UserError(f'{message} (see --help)')


def run():
  """Console-script entry point (`electra-jax-squad-eval`)."""
  errors.guard(main)()


if __name__ == '__main__':
  run()

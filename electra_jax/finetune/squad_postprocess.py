"""From start/end logits to SQuAD answers: n-best spans, null odds, threshold tuning, JSON files.

For each example, the `n_best_size` highest start and end logits of each of its windows form
candidate spans; a span must lie in the context, end no earlier than it starts, be at most
`max_answer_length` tokens long and start at a token for which its window is the max-context
one. A span scores start_logit + end_logit and its text is cut from the original context by
character offsets, so the answer keeps the context's own spelling and case.

SQuAD 2.0 adds the null answer. Its odds ("how much likelier is no answer than the best span")
come from the span head, the answerability classifier, or both (`null_score`):
- 'span': min over windows of (start_logit[CLS] + end_logit[CLS]) minus the best span's score;
- 'classifier': min over windows of the classifier's "impossible" logit (train it on
  `SquadFeatures.window_is_impossible`, so that the window holding the answer says "possible");
- 'sum': the two added.
The answer is '' when null odds > `null_threshold`; `tune_null_threshold` picks the threshold on
dev exactly as the official v2.0 script's `find_best_thresh`.
"""

import collections
import dataclasses
import json
from typing import Mapping, Optional, Sequence

import numpy as np
import tensorflow as tf

from electra_jax.finetune import squad_data
from electra_jax.finetune import squad_eval

# Null odds of a question for which no valid span exists at all: certainly unanswerable.
NO_SPAN_NULL_ODDS = 1e6


@dataclasses.dataclass
class SquadPredictions:
  predictions: dict[str, str]  # question id -> answer text ('' = no answer); predictions.json
  null_odds: dict[str, float]  # v2.0 only: question id -> null odds; null_odds.json
  best_non_null: dict[str, str]  # question id -> best span text, whatever the null odds
  nbest: dict[str, list[dict]]  # question id -> [{text, probability, start_logit, end_logit}]


def _window_candidates(start_logits: np.ndarray, end_logits: np.ndarray,
                       char_start: np.ndarray, is_max_context: np.ndarray, n_best_size: int,
                       max_answer_length: int) -> list[tuple[float, int, int, float, float]]:
  """Valid (score, start, end, start_logit, end_logit) spans of one window `[L]` logits."""
  top_starts = np.argsort(-start_logits, kind='stable')[:n_best_size]
  top_ends = np.argsort(-end_logits, kind='stable')[:n_best_size]
  starts, ends = top_starts[:, None], top_ends[None, :]
  valid = ((char_start[starts] >= 0) & (char_start[ends] >= 0) & (ends >= starts)
           & (ends - starts + 1 <= max_answer_length) & is_max_context[starts])
  rows, cols = np.nonzero(valid)
  return [(float(start_logits[top_starts[r]] + end_logits[top_ends[c]]), int(top_starts[r]),
           int(top_ends[c]), float(start_logits[top_starts[r]]),
           float(end_logits[top_ends[c]])) for r, c in zip(rows, cols)]


def _softmax(scores: Sequence[float]) -> np.ndarray:
  scores = np.asarray(scores, np.float64)
  exp = np.exp(scores - np.max(scores))
  return exp / exp.sum()


def postprocess(examples: Sequence[squad_data.SquadExample],
                features: squad_data.SquadFeatures, start_logits: np.ndarray,
                end_logits: np.ndarray, *, version_2: bool,
                answerable_logits: Optional[np.ndarray] = None, null_score: str = '',
                null_threshold: float = 0.0, n_best_size: int = 20,
                max_answer_length: int = 30) -> SquadPredictions:
  """Turns per-window logits into per-question answers.

  Args:
    examples: the examples `features` were created from, in the same order.
    features: `squad_data.create_features(..., examples)`.
    start_logits: float `[num_features, max_seq_length]`, aligned with `features`.
    end_logits: float `[num_features, max_seq_length]`.
    version_2: SQuAD 2.0: consider the null answer and report null odds.
    answerable_logits: optional float `[num_features]`: the answerability classifier's logit
      that the window holds no answer.
    null_score: 'span', 'classifier' or 'sum'; default 'sum' with `answerable_logits`, else
      'span'.
    null_threshold: answer '' when the null odds exceed this (tune it on dev).
    n_best_size: start and end candidates per window, and the n-best list length.
    max_answer_length: longest answer in tokens.

  Returns:
    `SquadPredictions`.
  """
  start_logits, end_logits = np.asarray(start_logits), np.asarray(end_logits)
  expected = features.input_ids.shape
  if start_logits.shape != expected or end_logits.shape != expected:
    raise ValueError(f'start_logits {start_logits.shape} and end_logits {end_logits.shape} '
                     f'must match the features {expected}; drop the padding rows of the last '
                     'batch.')
  null_score = null_score or ('sum' if answerable_logits is not None else 'span')
  if null_score not in ('span', 'classifier', 'sum'):
    raise ValueError(f"null_score={null_score!r}; use 'span', 'classifier' or 'sum'.")
  if null_score != 'span':
    if answerable_logits is None:
      raise ValueError(f"null_score={null_score!r} needs answerable_logits.")
    answerable_logits = np.asarray(answerable_logits, np.float64).reshape(-1)
    if answerable_logits.shape != (expected[0],):
      raise ValueError(f'answerable_logits {answerable_logits.shape} must be '
                       f'[num_features] = ({expected[0]},).')
  if len(features) and features.example_index.max() >= len(examples):
    raise ValueError('The features refer to more examples than were passed.')

  windows_of = collections.defaultdict(list)
  for feature_index, example_index in enumerate(features.example_index):
    windows_of[int(example_index)].append(feature_index)

  result = SquadPredictions({}, {}, {}, {})
  for example_index, example in enumerate(examples):
    candidates, span_null, classifier_null = [], np.inf, np.inf
    for f in windows_of.get(example_index, []):
      span_null = min(span_null, float(start_logits[f, 0] + end_logits[f, 0]))
      if null_score != 'span':
        classifier_null = min(classifier_null, float(answerable_logits[f]))
      for score, start, end, start_logit, end_logit in _window_candidates(
          start_logits[f], end_logits[f], features.token_char_start[f],
          features.token_is_max_context[f], n_best_size, max_answer_length):
        char_start = features.token_char_start[f, start]
        char_end = features.token_char_end[f, end]
        text = example.context[char_start:char_end].strip()
        candidates.append((score, text, start_logit, end_logit))

    # The n-best list: distinct texts, best first (a text found in two windows keeps its best).
    candidates.sort(key=lambda c: -c[0])
    nbest, seen = [], set()
    for score, text, start_logit, end_logit in candidates:
      if text and text not in seen:
        seen.add(text)
        nbest.append({'text': text, 'start_logit': start_logit, 'end_logit': end_logit,
                      'score': score})
      if len(nbest) == n_best_size:
        break
    if version_2 and np.isfinite(span_null):
      nbest.append({'text': '', 'start_logit': None, 'end_logit': None, 'score': span_null})
      nbest.sort(key=lambda entry: -entry['score'])
      nbest = nbest[:n_best_size]
    if nbest:
      for entry, probability in zip(nbest, _softmax([e['score'] for e in nbest])):
        entry['probability'] = float(probability)

    best_span = next((c for c in candidates if c[1]), None)
    best_text = best_span[1] if best_span else ''
    result.best_non_null[example.qid] = best_text
    result.nbest[example.qid] = nbest
    if not version_2:
      result.predictions[example.qid] = best_text
      continue
    if best_span is None:
      odds = NO_SPAN_NULL_ODDS
    else:
      odds = 0.0
      if null_score in ('span', 'sum'):
        odds += span_null - best_span[0]
      if null_score in ('classifier', 'sum'):
        odds += classifier_null
    result.null_odds[example.qid] = float(odds)
    result.predictions[example.qid] = '' if odds > null_threshold else best_text
  return result


def apply_null_threshold(predictions: SquadPredictions, threshold: float) -> dict[str, str]:
  """v2.0 answers at another threshold: '' where the null odds exceed it."""
  return {qid: '' if predictions.null_odds[qid] > threshold else text
          for qid, text in predictions.best_non_null.items()}


def tune_null_threshold(gold: Mapping[str, Sequence[str]],
                        predictions: SquadPredictions) -> dict[str, float]:
  """Best null threshold on dev, as the official v2.0 script searches it.

  The search runs over the best non-null answers (not the thresholded ones), so that every
  question's answer candidate is available at every threshold.

  Args:
    gold: {question id: gold answer texts} ([] for unanswerable questions) of the examples.
    predictions: `postprocess(..., version_2=True)` output.

  Returns:
    {'best_exact', 'best_exact_thresh', 'best_f1', 'best_f1_thresh'}, scores in percent.
  """
  if not predictions.null_odds:
    raise ValueError('No null odds: tune the threshold on postprocess(version_2=True) output.')
  unknown = [qid for qid in predictions.best_non_null if qid not in gold]
  if unknown:
    raise ValueError(f'{len(unknown)} predicted question(s) have no gold answers, e.g. '
                     f'{unknown[0]!r}: pass the gold answers of the same dev set.')
  answered = {qid: gold[qid] for qid in predictions.best_non_null}
  has_answer = {qid: bool(answers) for qid, answers in answered.items()}
  exact, f1 = squad_eval.raw_scores_v2(answered, predictions.best_non_null)
  best_exact, exact_thresh = squad_eval.find_best_threshold(
      predictions.best_non_null, exact, predictions.null_odds, has_answer)
  best_f1, f1_thresh = squad_eval.find_best_threshold(
      predictions.best_non_null, f1, predictions.null_odds, has_answer)
  return {'best_exact': best_exact, 'best_exact_thresh': exact_thresh,
          'best_f1': best_f1, 'best_f1_thresh': f1_thresh}


def _write_json(path: str, value) -> None:
  with tf.io.gfile.GFile(path, 'w') as f:
    f.write(json.dumps(value, indent=2, ensure_ascii=False) + '\n')


def write_predictions(predictions: SquadPredictions, output_dir: str,
                      with_nbest: bool = False) -> dict[str, str]:
  """Writes predictions.json (and null_odds.json for v2.0, nbest_predictions.json on request).

  Returns:
    {'predictions': path, ...} of the files written (local or gs://).
  """
  tf.io.gfile.makedirs(output_dir)
  paths = {'predictions': f'{output_dir.rstrip("/")}/predictions.json'}
  _write_json(paths['predictions'], predictions.predictions)
  if predictions.null_odds:
    paths['null_odds'] = f'{output_dir.rstrip("/")}/null_odds.json'
    _write_json(paths['null_odds'], predictions.null_odds)
  if with_nbest:
    paths['nbest'] = f'{output_dir.rstrip("/")}/nbest_predictions.json'
    _write_json(paths['nbest'], predictions.nbest)
  return paths

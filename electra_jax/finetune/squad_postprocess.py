"""From the span head's outputs to SQuAD answers: n-best spans, null odds, threshold tuning, files.

Candidate spans per window:
- the original's joint head (`postprocess_beam`, as `SpanBasedQAScorer.write_predictions` in
  `finetune/qa/qa_metrics.py` with joint_prediction): each of the beam's starts with each of its
  own beam of ends, scored start log-probability + end log-probability;
- the independent head (`postprocess`): the `n_best_size` highest start logits with the
  `n_best_size` highest end logits, scored start_logit + end_logit.
Either way a span must lie in the context, not start at [CLS], end no earlier than it starts,
be at most `max_answer_length` tokens long and start at a token for which its window is the
max-context one. Its text is cut from the original context by character offsets, so the answer
keeps the context's own spelling and case (the original maps WordPiece text back instead).

SQuAD 2.0 adds the null answer. With the joint head its odds are the answerability classifier's
"impossible" logit alone, minimum over the question's windows (the original's
answerable_classifier). With the independent head they come from the span head, the
classifier, or both (`null_score`):
- 'span': min over windows of (start_logit[CLS] + end_logit[CLS]) minus the best span's score;
- 'classifier': min over windows of the classifier's "impossible" logit (the independent head
  trains it on `SquadFeatures.window_is_impossible`, so that the window holding the answer says
  "possible");
- 'sum': the two added.
The answer is '' when null odds > `null_threshold`; `tune_null_threshold` picks the threshold on
dev exactly as the official v2.0 script's `find_best_thresh`. A question with no valid span at
all gets '' and null odds `NO_SPAN_NULL_ODDS` (the original answers a placeholder "empty").
"""

import collections
import dataclasses
from typing import Mapping, Optional, Sequence

import numpy as np
import tensorflow as tf

from electra_jax import files
from electra_jax.finetune import squad_data
from electra_jax.finetune import squad_eval

# Null odds of a question for which no valid span exists at all: certainly unanswerable.
NO_SPAN_NULL_ODDS = 1e6
# How the independent head's null odds are made (see the module docstring).
NULL_SCORES = ('span', 'classifier', 'sum')


@dataclasses.dataclass
class SquadPredictions:
  predictions: dict[str, str]  # question id -> answer text ('' = no answer); predictions.json
  null_odds: dict[str, float]  # v2.0 only: question id -> null odds; null_odds.json
  best_non_null: dict[str, str]  # question id -> best span text, whatever the null odds
  nbest: dict[str, list[dict]]  # question id -> [{text, probability, start_logit, end_logit}]


def _valid(start: int, end: int, char_start: np.ndarray, is_max_context: np.ndarray,
           max_answer_length: int) -> bool:
  """The original's filters: both ends in the context (so never [CLS]), start's max context,
  end >= start, at most `max_answer_length` tokens."""
  return bool(start > 0 and char_start[start] >= 0 and char_start[end] >= 0
              and is_max_context[start] and start <= end < start + max_answer_length)


def _window_candidates(start_logits: np.ndarray, end_logits: np.ndarray,
                       char_start: np.ndarray, is_max_context: np.ndarray, n_best_size: int,
                       max_answer_length: int) -> list[tuple[float, int, int, float, float]]:
  """Valid (score, start, end, start_logit, end_logit) spans of one window `[L]` logits."""
  top_starts = np.argsort(-start_logits, kind='stable')[:n_best_size]
  top_ends = np.argsort(-end_logits, kind='stable')[:n_best_size]
  return [(float(start_logits[s] + end_logits[e]), int(s), int(e), float(start_logits[s]),
           float(end_logits[e]))
          for s in top_starts for e in top_ends
          if _valid(s, e, char_start, is_max_context, max_answer_length)]


def _beam_candidates(start_top_log_probs: np.ndarray, start_top_index: np.ndarray,
                     end_top_log_probs: np.ndarray, end_top_index: np.ndarray,
                     char_start: np.ndarray, is_max_context: np.ndarray,
                     max_answer_length: int) -> list[tuple[float, int, int, float, float]]:
  """Valid spans of one window's beam: start i `[beam]` with each of its ends `[beam, beam]`."""
  candidates = []
  for i, start in enumerate(start_top_index):
    for j, end in enumerate(end_top_index[i]):
      if _valid(int(start), int(end), char_start, is_max_context, max_answer_length):
        start_score, end_score = float(start_top_log_probs[i]), float(end_top_log_probs[i, j])
        candidates.append((start_score + end_score, int(start), int(end), start_score,
                           end_score))
  return candidates


def _softmax(scores: Sequence[float]) -> np.ndarray:
  scores = np.asarray(scores, np.float64)
  exp = np.exp(scores - np.max(scores))
  return exp / exp.sum()


def _check_per_window(name: str, array: np.ndarray, features: squad_data.SquadFeatures,
                      trailing: tuple[int, ...]) -> np.ndarray:
  array = np.asarray(array)
  expected = (len(features),) + trailing
  if array.shape != expected:
    raise ValueError(f'{name} {array.shape} must match the features: {expected} (drop the '
                     'padding rows of the last batch).')
  return array


def _windows_of(examples, features) -> dict[int, list[int]]:
  if len(features) and features.example_index.max() >= len(examples):
    raise ValueError('The features refer to more examples than were passed.')
  windows_of = collections.defaultdict(list)
  for feature_index, example_index in enumerate(features.example_index):
    windows_of[int(example_index)].append(feature_index)
  return windows_of


def _answers(examples: Sequence[squad_data.SquadExample], features: squad_data.SquadFeatures,
             window_candidates, span_nulls: Optional[np.ndarray],
             classifier_nulls: Optional[np.ndarray], *, version_2: bool, null_score: str,
             null_threshold: float, n_best_size: int) -> SquadPredictions:
  """The per-question step shared by both heads.

  `window_candidates(f)` lists window f's valid (score, start, end, start_logit, end_logit).
  `span_nulls` / `classifier_nulls` `[num_features]` are each window's null score from the
  span head ([CLS] start + end) and from the classifier (None when absent); a question takes
  the minimum over its windows, and its null odds are `span null - best span score`,
  `classifier null`, or their sum (`null_score`).
  """
  windows_of = _windows_of(examples, features)
  result = SquadPredictions({}, {}, {}, {})
  for example_index, example in enumerate(examples):
    windows = windows_of.get(example_index, [])
    candidates = []
    for f in windows:
      for score, start, end, start_logit, end_logit in window_candidates(f):
        text = example.context[features.token_char_start[f, start]:
                               features.token_char_end[f, end]].strip()
        candidates.append((score, text, start_logit, end_logit))
    span_null = min((float(span_nulls[f]) for f in windows), default=np.inf) if (
        span_nulls is not None) else np.inf
    classifier_null = min((float(classifier_nulls[f]) for f in windows), default=np.inf) if (
        classifier_nulls is not None) else np.inf

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


def postprocess(examples: Sequence[squad_data.SquadExample],
                features: squad_data.SquadFeatures, start_logits: np.ndarray,
                end_logits: np.ndarray, *, version_2: bool,
                answerable_logits: Optional[np.ndarray] = None, null_score: str = '',
                null_threshold: float = 0.0, n_best_size: int = 20,
                max_answer_length: int = 30) -> SquadPredictions:
  """Per-window logits of the independent head -> per-question answers.

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
  length = features.input_ids.shape[1:]
  start_logits = _check_per_window('start_logits', start_logits, features, length)
  end_logits = _check_per_window('end_logits', end_logits, features, length)
  null_score = null_score or ('sum' if answerable_logits is not None else 'span')
  if null_score not in NULL_SCORES:
    raise ValueError(f"null_score={null_score!r}; use one of {NULL_SCORES}.")
  classifier_nulls = None
  if null_score != 'span':
    if answerable_logits is None:
      raise ValueError(f"null_score={null_score!r} needs answerable_logits.")
    classifier_nulls = _check_per_window(
        'answerable_logits', np.asarray(answerable_logits, np.float64).reshape(-1), features,
        ())
  candidates = lambda f: _window_candidates(
      start_logits[f], end_logits[f], features.token_char_start[f],
      features.token_is_max_context[f], n_best_size, max_answer_length)
  span_nulls = start_logits[:, 0].astype(np.float64) + end_logits[:, 0]
  return _answers(examples, features, candidates, span_nulls, classifier_nulls,
                  version_2=version_2, null_score=null_score, null_threshold=null_threshold,
                  n_best_size=n_best_size)


def postprocess_beam(examples: Sequence[squad_data.SquadExample],
                     features: squad_data.SquadFeatures, outputs: Mapping[str, np.ndarray], *,
                     version_2: bool, null_threshold: float = 0.0, n_best_size: int = 20,
                     max_answer_length: int = 30) -> SquadPredictions:
  """The joint head's beam -> per-question answers, as the original's `write_predictions`.

  Args:
    examples, features: as for `postprocess`.
    outputs: the joint head's inference outputs, aligned with `features`:
      'start_top_log_probs', 'start_top_index' `[num_features, beam]`, 'end_top_log_probs',
      'end_top_index' `[num_features, beam, beam]`, and for v2.0 'answerable_logits'
      `[num_features]`, whose minimum over a question's windows is its null odds.
    version_2, null_threshold, n_best_size, max_answer_length: as for `postprocess`.
  """
  beam = np.shape(outputs['start_top_index'])[1:]
  start_log_probs = _check_per_window('start_top_log_probs', outputs['start_top_log_probs'],
                                      features, beam)
  start_index = _check_per_window('start_top_index', outputs['start_top_index'], features, beam)
  end_log_probs = _check_per_window('end_top_log_probs', outputs['end_top_log_probs'],
                                    features, beam + beam)
  end_index = _check_per_window('end_top_index', outputs['end_top_index'], features,
                                beam + beam)
  classifier_nulls = None
  if version_2:
    if 'answerable_logits' not in outputs:
      raise ValueError('SQuAD 2.0 with the joint head needs answerable_logits: the null score '
                       'is the answerability classifier\'s.')
    classifier_nulls = _check_per_window(
        'answerable_logits', np.asarray(outputs['answerable_logits'], np.float64).reshape(-1),
        features, ())
  candidates = lambda f: _beam_candidates(
      start_log_probs[f], start_index[f], end_log_probs[f], end_index[f],
      features.token_char_start[f], features.token_is_max_context[f], max_answer_length)
  return _answers(examples, features, candidates, None, classifier_nulls, version_2=version_2,
                  null_score='classifier', null_threshold=null_threshold,
                  n_best_size=n_best_size)


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


def write_predictions(predictions: SquadPredictions, output_dir: str,
                      with_nbest: bool = False) -> dict[str, str]:
  """Writes predictions.json (and null_odds.json for v2.0, nbest_predictions.json on request).

  Returns:
    {'predictions': path, ...} of the files written (local or gs://).
  """
  tf.io.gfile.makedirs(output_dir)
  paths = {'predictions': f'{output_dir.rstrip("/")}/predictions.json'}
  files.write_json(paths['predictions'], predictions.predictions)
  if predictions.null_odds:
    paths['null_odds'] = f'{output_dir.rstrip("/")}/null_odds.json'
    files.write_json(paths['null_odds'], predictions.null_odds)
  if with_nbest:
    paths['nbest'] = f'{output_dir.rstrip("/")}/nbest_predictions.json'
    files.write_json(paths['nbest'], predictions.nbest)
  return paths

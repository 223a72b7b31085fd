"""The inspector's terminal table: one row per token, P(replaced) as a number, a bar, a colour
(for a masked LM: its prediction and P(original) at the masked positions)."""

from __future__ import annotations

import os
from typing import Sequence

from electra_jax.inspection.detection import Inspection, summary

_BAR_WIDTH = 20  # characters of the P(replaced) bar at P = 1


def use_color(stream, mode: str = 'auto') -> bool:
  """ANSI colour: always, never, or (auto) when `stream` is a terminal and NO_COLOR is unset."""
  if mode != 'auto':
    return mode == 'always'
  return bool(getattr(stream, 'isatty', lambda: False)()) and not os.environ.get('NO_COLOR')


def _ansi(text: str, code: str, color: bool) -> str:
  return f'\x1b[{code}m{text}\x1b[0m' if color and code else text


def _level_code(p: float) -> str:
  """Green below 0.25, yellow below 0.5, bold red from 0.5 (the discriminator says 'replaced')."""
  return '32' if p < 0.25 else ('33' if p < 0.5 else '1;31')


def _masked_lm_table(inspection: Inspection, color: bool) -> list[str]:
  """Position, original, what the generator and the masked LM saw, its prediction (right or
  wrong) and P(original) with a bar, at the masked positions; the other tokens as context."""
  saw = inspection.corrupted_pieces
  columns = ['original', *(['generator saw'] if inspection.has_generator else []), 'model saw',
             'prediction']
  width = 2 + max(*map(len, columns), *map(len, inspection.pieces), *map(len, saw),
                  *map(len, inspection.generator_input_pieces),
                  *map(len, inspection.predicted_pieces))
  header = (f'{"#":>4}  ' + ''.join(f'{c:<{width}}' for c in columns) + f'{"":<7}P(original)')
  lines = [_ansi(header, '2', color)]
  for i, original in enumerate(inspection.pieces):
    cells = [original]
    if not inspection.masked[i]:
      lines.append(f'{i:>4}  {original}')
      continue
    if inspection.has_generator:
      cells.append(inspection.generator_input_pieces[i])
    prediction = inspection.predicted_pieces[i]
    cells += [saw[i], prediction]
    p = float(inspection.p_original[i])
    right = prediction == original
    mark = _ansi(f'{"right" if right else "wrong":<7}', '32' if right else '1;31', color)
    bar = '#' * round(p * _BAR_WIDTH)
    lines.append((f'{i:>4}  ' + ''.join(f'{c:<{width}}' for c in cells) + mark
                  + f'{p:.3f} {bar}').rstrip())
  return lines


def render_terminal(inspections: Sequence[Inspection], *, color: bool, source: str = '') -> str:
  """One table per example: position, original, generator input, sample, P(replaced) and a bar
  (a masked LM's: `_masked_lm_table`)."""
  lines = []
  if source:
    lines.append(_ansi(source, '1', color))
  for inspection in inspections:
    lines += ['', _ansi(inspection.title, '1', color), summary(inspection)]
    if inspection.is_masked_lm:
      lines += _masked_lm_table(inspection, color)
      continue
    width = 2 + max(len('generator saw'), *map(len, inspection.pieces),
                    *map(len, inspection.corrupted_pieces),
                    *map(len, inspection.generator_input_pieces))
    header = (f'{"#":>4}  {"original":<{width}}{"generator saw":<{width}}{"sample":<{width}}'
              f'{"":<9}P(replaced)')
    lines.append(_ansi(header, '2', color))
    for i, original in enumerate(inspection.pieces):
      p = float(inspection.p_replaced[i])
      saw = sample = mark = ''
      if inspection.masked[i]:
        saw = inspection.generator_input_pieces[i]
        sample = inspection.corrupted_pieces[i]
        mark = 'REPLACED' if inspection.replaced[i] else 'same'
      bar = '#' * round(p * _BAR_WIDTH)
      cells = (f'{i:>4}  {original:<{width}}{saw:<{width}}{sample:<{width}}'
               + _ansi(f'{mark:<9}', '1;35' if mark == 'REPLACED' else '2', color and bool(mark))
               + _ansi(f'{p:.3f} {bar}'.rstrip(), _level_code(p), color))
      lines.append(cells.rstrip())
  return '\n'.join(lines) + '\n'

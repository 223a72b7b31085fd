"""The inspector's HTML page: self-contained, each token shaded by P(replaced) (for a masked LM:
each masked position shaded by 1 - P(original), its prediction shown)."""

from __future__ import annotations

import html
from typing import Sequence

from electra_jax.inspection.detection import Inspection, summary


_CSS = """
body { font-family: system-ui, -apple-system, 'Segoe UI', sans-serif; margin: 2em auto;
       max-width: 62em; padding: 0 1em; color: #111; }
h1 { font-size: 1.3em; } h2 { font-size: 1.05em; margin-bottom: 0.2em; }
.summary, .legend { color: #444; font-size: 0.9em; }
.text { line-height: 2.6; font-size: 1.1em; }
.tok { padding: 0.15em 0.2em; border-radius: 3px; white-space: pre; }
.tok.special { color: #777; font-size: 0.8em; }
.tok.masked { outline: 1px dashed #888; }
.tok.replaced { outline: 2px solid #1d4ed8; outline-offset: 1px; }
.tok .orig { font-size: 0.65em; color: #555; text-decoration: line-through; margin-left: 0.2em; }
.tok.wrong { outline: 2px solid #1d4ed8; outline-offset: 1px; }
.tok .pred { font-size: 0.65em; color: #1d4ed8; margin-left: 0.2em; }
.swatch { padding: 0 0.4em; border-radius: 3px; }
"""


def _shade(p: float) -> str:
  """The background of a token: red with opacity P(replaced)."""
  return f'background-color: rgba(220, 38, 38, {p:.3f})'


def _word_text(piece: str, wordpiece_vocabulary: bool) -> tuple[bool, str]:
  """(starts a word, text to show): SentencePiece marks word starts, WordPiece continuations."""
  if wordpiece_vocabulary:
    return (False, piece[2:]) if piece.startswith('##') else (True, piece)
  return (True, piece[1:] or piece) if piece.startswith('\u2581') else (False, piece)


def render_html(inspections: Sequence[Inspection], *, source: str, special_ids: Sequence[int],
                wordpiece_vocabulary: bool = False) -> str:
  """A self-contained page (inline CSS, no scripts, no external assets).

  Each token is one `span.tok` showing what the discriminator saw, shaded by P(replaced)
  (`data-p`); replaced tokens carry the class `replaced` (outlined) and show the original struck
  through, other masked positions the class `masked` (dashed). A masked LM's page:
  `_masked_lm_body`.
  """
  esc = html.escape
  if inspections and inspections[0].is_masked_lm:
    return _page(source, _masked_lm_body(inspections, source, special_ids, wordpiece_vocabulary))
  body = [f'<h1>ELECTRA replaced-token detection: {esc(source)}</h1>',
          '<p class="legend">Shading: the discriminator\'s P(replaced), from '
          f'<span class="swatch" style="{_shade(0.0)}">0</span> to '
          f'<span class="swatch" style="{_shade(0.5)}">0.5</span> and '
          f'<span class="swatch" style="{_shade(1.0)}">1</span>. '
          '<span class="swatch" style="outline: 2px solid #1d4ed8">Outlined</span>: replaced by '
          'the generator (the original struck through after it); '
          '<span class="swatch" style="outline: 1px dashed #888">dashed</span>: masked, but the '
          'generator sampled the original. Hover a token for its numbers.</p>']
  for inspection in inspections:
    spans = []
    for i, piece in enumerate(inspection.corrupted_pieces):
      p = float(inspection.p_replaced[i])
      classes = ['tok']
      if int(inspection.input_ids[i]) in special_ids:
        classes.append('special')
      tooltip = f'#{i} original {inspection.pieces[i]}'
      if inspection.masked[i]:
        tooltip += f'; generator saw {inspection.generator_input_pieces[i]}, sampled {piece}'
        classes.append('replaced' if inspection.replaced[i] else 'masked')
      tooltip += f'; P(replaced) {p:.3f}'
      starts_word, text = _word_text(piece, wordpiece_vocabulary)
      inner = esc(text)
      if inspection.replaced[i]:
        original = _word_text(inspection.pieces[i], wordpiece_vocabulary)[1]
        inner += f'<span class="orig">{esc(original)}</span>'
      if spans and starts_word:
        spans.append(' ')
      spans.append(f'<span class="{" ".join(classes)}" style="{_shade(p)}" data-p="{p:.6f}" '
                   f'title="{esc(tooltip)}">{inner}</span>')
    body += _section(inspection, spans)
  return _page(source, body)


def _section(inspection: Inspection, spans: list[str]) -> list[str]:
  esc = html.escape
  return ['<section class="example">', f'<h2>{esc(inspection.title)}</h2>',
          f'<p class="summary">{esc(summary(inspection))}</p>',
          f'<p class="text">{"".join(spans)}</p>', '</section>']


def _page(source: str, body: list[str]) -> str:
  esc = html.escape
  return ('<!DOCTYPE html>\n<html lang="en">\n<head>\n<meta charset="utf-8">\n'
          f'<title>RTD inspector: {esc(source)}</title>\n<style>{_CSS}</style>\n</head>\n<body>\n'
          + '\n'.join(body) + '\n</body>\n</html>\n')


def _masked_lm_body(inspections: Sequence[Inspection], source: str, special_ids: Sequence[int],
                    wordpiece_vocabulary: bool) -> list[str]:
  """The original text; each masked position shaded by 1 - P(original) (`data-p` holds
  P(original)), outlined with the prediction after it where the top-1 is wrong."""
  esc = html.escape
  body = [f'<h1>Masked-LM predictions: {esc(source)}</h1>',
          '<p class="legend">Masked positions, shaded by 1 - the model\'s P(original), from '
          f'<span class="swatch" style="{_shade(0.0)}">certain</span> to '
          f'<span class="swatch" style="{_shade(1.0)}">lost</span>. '
          '<span class="swatch" style="outline: 2px solid #1d4ed8">Outlined</span>: its top-1 '
          'prediction (after the token) is wrong. Hover a token for its numbers.</p>']
  for inspection in inspections:
    spans = []
    for i, piece in enumerate(inspection.pieces):
      classes, style, data = ['tok'], '', ''
      if int(inspection.input_ids[i]) in special_ids:
        classes.append('special')
      starts_word, text = _word_text(piece, wordpiece_vocabulary)
      inner = esc(text)
      tooltip = f'#{i} original {piece}'
      if inspection.masked[i]:
        p = float(inspection.p_original[i])
        prediction = inspection.predicted_pieces[i]
        classes.append('masked' if prediction == piece else 'wrong')
        style, data = f' style="{_shade(1.0 - p)}"', f' data-p="{p:.6f}"'
        tooltip += (f'; the model saw {inspection.corrupted_pieces[i]}, predicted {prediction}; '
                    f'P(original) {p:.3f}')
        if prediction != piece:
          inner += f'<span class="pred">{esc(_word_text(prediction, wordpiece_vocabulary)[1])}'
          inner += '</span>'
      if spans and starts_word:
        spans.append(' ')
      spans.append(f'<span class="{" ".join(classes)}"{style}{data} '
                   f'title="{esc(tooltip)}">{inner}</span>')
    body += _section(inspection, spans)
  return body

"""The RTD inspector: ELECTRA's picture of a sentence, from a run or a released checkpoint.

  python -m electra_jax.inspect --workdir=RUN --text="The quick brown fox jumps over the lazy dog."
  python -m electra_jax.inspect --workdir=RUN --from_eval=3 --html=rtd.html
  python -m electra_jax.inspect --workdir=EXPORT/discriminator --score_as_typed --text="..."

`--workdir` is a pre-training run (the latest checkpoint, or `--step`) or a Hugging Face directory
(what `electra_jax.convert --to=hf` writes: `DST` holding `discriminator/` and `generator/`).
The text is masked exactly as pre-training masks (`data.masking.mask_batch` with the run's mask
settings; a Hugging Face directory carries none, so the defaults of configs/default.py apply, with
the model's position count as the sequence length), the generator fills the masked positions
(`objective.sample_tokens`, `objective.corrupt_input`, the run's temperature) and the
discriminator scores every token. Shown token by token: the original, what the generator saw
([MASK], a random token or the token itself), its sample (marked REPLACED when it differs from
the original, which is the discriminator's label) and the discriminator's P(replaced).
`--seed` fixes both the mask and the sample.

A discriminator alone (e.g. a downloaded `ElectraForPreTraining`) cannot mask and sample;
`--score_as_typed` scores the text as typed instead: type a sentence with a wrong word and see
it flagged.
"""

from __future__ import annotations

import dataclasses
import html
import os
import sys
from typing import Sequence

import jax
import ml_collections
import numpy as np
import tensorflow as tf
from absl import flags
from absl import logging

from electra_jax import files
from electra_jax import model as model_lib
from electra_jax import objective
from electra_jax import pretrained as pretrained_lib
from electra_jax import startup
from electra_jax.configs import default as default_config
from electra_jax.data import masking
from electra_jax.data import pretraining
from electra_jax.data import tokenizers
from electra_jax.data.tokenizers import hf as hf_tokenizer
from electra_jax.errors import UserError

_SALT_MASK = 0x1A5  # the inspector's mask seed is [--seed, _SALT_MASK]
_BAR_WIDTH = 20  # characters of the P(replaced) bar at P = 1
_COLOR_MODES = ('auto', 'always', 'never')


# ---- Loading -------------------------------------------------------------------------------------

@dataclasses.dataclass
class Checkpoint:
  """What inspection needs from a run or an export.

  Attributes:
    name: how the source is shown (the path, and the step for a workdir).
    pretrained: the standalone networks and the tokenizer.
    config: the run's full config for a workdir; for a Hugging Face directory configs/default.py
      with `data.max_seq_length` set to the model's position count.
  """
  name: str
  pretrained: pretrained_lib.Pretrained
  config: ml_collections.ConfigDict

  @property
  def tokenizer(self):
    return self.pretrained.tokenizer

  @property
  def is_workdir(self) -> bool:
    """Whether `config` is the run's own (then it also names the eval data)."""
    return self.pretrained.source_config is not None


def load(path: str, *, step: int | None = None, generator_path: str | None = None) -> Checkpoint:
  """Loads a workdir or Hugging Face directory for inspection (`pretrained.load_checkpoint`).

  Raises:
    UserError: naming the problem and the fix (missing path or step, no tokenizer, ...).
  """
  if not tf.io.gfile.exists(path):
    raise UserError(f'--workdir={path} does not exist: give a pre-training run directory or '
                    'a Hugging Face directory (python -m electra_jax.convert --from=workdir '
                    '--to=hf writes one).')
  try:
    kind = pretrained_lib.detect_kind(path)
    if kind == 'tf1':
      raise UserError(f'{path} is an original TF1 checkpoint: convert it first with '
                      'python -m electra_jax.convert --from=tf1 --to=hf --src=... --dst=DIR, '
                      'then inspect DIR.')
    if generator_path and kind != 'hf':
      raise UserError(f'--generator applies to Hugging Face directories; {path} is a '
                      'pre-training run, which holds its own generator.')
    pretrained = pretrained_lib.load_checkpoint(path, step=step, generator_path=generator_path)
  except (ValueError, FileNotFoundError) as error:  # the loaders name the file and the fix
    raise UserError(str(error)) from error
  trained_by = pretrained.trained_by
  if trained_by.detector is None:
    raise UserError(
        f'{path} holds a masked LM (electra.objective={trained_by.name!r}) with no '
        'replaced-token detector, so there is nothing to inspect. The '
        'inspector reads ELECTRA runs (electra, electra_15) and the copy gate of all_tokens_mlm; '
        'compare a masked LM through its eval_masked_lm_accuracy or the linear probe.')
  if pretrained.tokenizer is None:
    raise UserError(f'{path} carries no tokenizer (no vocab.txt or SentencePiece .model): '
                    'the inspector needs the one the model was trained with.')
  if pretrained.source_config is not None:
    return Checkpoint(f'{path} (step {pretrained.step})', pretrained,
                      ml_collections.ConfigDict(pretrained.source_config))
  config = default_config.get_config()
  config.data.max_seq_length = pretrained.disc_config.max_position_embeddings
  return Checkpoint(path, pretrained, config)


# ---- Examples ------------------------------------------------------------------------------------

def encode_text(checkpoint: Checkpoint, text: str):
  """`[CLS] text [SEP]` padded to the sequence length, as `[1, length]` ids and token types.

  Padded as training pads (the masking draws its K slots from the whole row; padding is never
  chosen nor attended to). A longer text is truncated, with a note on stderr.
  """
  tokenizer = checkpoint.tokenizer
  pieces = tokenizer.encode(text)
  if not pieces:
    raise UserError(f'--text={text!r} has no tokens: give a sentence.')
  length = checkpoint.config.data.max_seq_length
  if len(pieces) > length - 2:
    print(f'note: the text has {len(pieces)} tokens; the first {length - 2} are inspected (the '
          f'sequence length is {length} with [CLS] and [SEP]).', file=sys.stderr)
    pieces = pieces[:length - 2]
  ids = np.full((1, length), tokenizer.pad_id, np.int32)
  ids[0, :len(pieces) + 2] = [tokenizer.cls_id, *pieces, tokenizer.sep_id]
  return ids, np.zeros_like(ids)


def eval_examples(checkpoint: Checkpoint, count: int):
  """The first `count` packed examples of the run's eval data: `[count, length]` ids and types."""
  if not checkpoint.is_workdir:
    raise UserError(f'--from_eval needs a pre-training run (its config names the eval data); '
                    f'{checkpoint.name} is a Hugging Face directory: use --text.')
  config = checkpoint.config.copy_and_resolve_references()
  if config.data.source == 'synthetic':
    raise UserError(f'{checkpoint.name} was trained on synthetic batches, which have no text: '
                    'use --text.')
  config.train.batch_size = count  # eval is unshuffled: the first `count` examples in order
  config.tokenizer.update(hf_tokenizer.tokenizer_config_fields(checkpoint.tokenizer))
  try:
    batch = next(iter(pretraining.make_dataset(config, 'eval')))
  except (ValueError, FileNotFoundError) as error:  # e.g. the run's text files moved
    raise UserError(f'cannot read the eval data of {checkpoint.name}: {error}') from error
  return (np.asarray(batch['input_ids'], np.int32),
          np.asarray(batch['token_type_ids'], np.int32))


# ---- Inspection ----------------------------------------------------------------------------------

@dataclasses.dataclass
class Inspection:
  """One example, real tokens only: every array is `[length]`.

  Attributes:
    title: what the example is.
    input_ids: the original tokens.
    masked: positions the masking chose (the generator predicts these).
    generator_input_ids: what the generator saw there: [MASK], a random token or the original.
    corrupted_ids: what the discriminator saw: the generator's samples written into the original.
    p_replaced: the discriminator's sigmoid.
    pieces, generator_input_pieces, corrupted_pieces: the vocabulary entries of those ids.
  """
  title: str
  input_ids: np.ndarray
  masked: np.ndarray
  generator_input_ids: np.ndarray
  corrupted_ids: np.ndarray
  p_replaced: np.ndarray
  pieces: list[str]
  generator_input_pieces: list[str]
  corrupted_pieces: list[str]

  @property
  def replaced(self) -> np.ndarray:
    """The discriminator's label: a sample that differs from the original (a correct one is not)."""
    return self.corrupted_ids != self.input_ids


def mask_examples(checkpoint: Checkpoint, input_ids, token_type_ids, seed: int) -> dict:
  """The training masking (`mask_batch`, the run's options) of `[n, length]` examples, as numpy."""
  options = pretraining.masking_options_for(checkpoint.config, checkpoint.tokenizer)
  batch = masking.mask_batch(
      {'input_ids': tf.constant(input_ids, tf.int32),
       'token_type_ids': tf.constant(token_type_ids, tf.int32)},
      tf.constant([seed, _SALT_MASK], tf.int64), options)
  return {k: np.asarray(v) for k, v in batch.items()}


def sample_keys(seed: int, count: int):
  """One sampling key per example, as the trainer draws them (`jax.random.split`)."""
  return jax.random.split(jax.random.key(seed), count)


def _replaced_token_detection(checkpoint: Checkpoint, batch: dict, seed: int):
  """(corrupted ids, P(replaced)) `[n, length]`: generator, sampling, corruption, discriminator."""
  pretrained, electra = checkpoint.pretrained, checkpoint.config.electra
  generator = model_lib.Generator(pretrained.gen_config)
  detect = _detector(checkpoint)

  @jax.jit
  def forward(gen_params, disc_params, batch, keys):
    gen_logits = generator.apply({'params': gen_params}, batch['masked_input_ids'],
                                 batch['token_type_ids'], batch['attention_mask'],
                                 batch['masked_lm_positions'])  # [n, K, vocab]
    _, corrupted = objective.sample_and_corrupt(gen_logits, batch, keys, electra)
    return corrupted, detect(disc_params, corrupted, batch['token_type_ids'],
                             batch['attention_mask'])

  corrupted, p_replaced = forward(pretrained.gen_params, pretrained.disc_params, batch,
                                  sample_keys(seed, batch['input_ids'].shape[0]))
  return np.asarray(corrupted), np.asarray(p_replaced, np.float64)


def _detector(checkpoint: Checkpoint):
  """(main params, ids, token types, attention mask) -> P(replaced) `[n, length]`, read from the
  main network as its objective says (`Objective.replaced_logits`)."""
  trained_by = checkpoint.pretrained.trained_by
  main = trained_by.main_network(checkpoint.pretrained.disc_config)

  def detect(params, input_ids, token_type_ids, attention_mask):
    outputs = main.apply({'params': params}, input_ids, token_type_ids, attention_mask)
    return jax.nn.sigmoid(trained_by.replaced_logits(outputs))
  return detect


def _score(checkpoint: Checkpoint, input_ids, token_type_ids, attention_mask):
  """P(replaced) `[n, length]` of the main network's detector on the ids as they are."""
  p_replaced = jax.jit(_detector(checkpoint))(checkpoint.pretrained.disc_params, input_ids,
                                              token_type_ids, attention_mask)
  return np.asarray(p_replaced, np.float64)


def inspect_examples(checkpoint: Checkpoint, input_ids, token_type_ids, *, seed: int = 0,
                     titles: Sequence[str] | None = None,
                     as_typed: bool = False) -> list[Inspection]:
  """Masks, samples and scores `[n, length]` examples (padding allowed) as pre-training does.

  With `as_typed`, nothing is masked or sampled: the discriminator scores the ids as given.
  """
  tokenizer = checkpoint.tokenizer
  input_ids = np.asarray(input_ids, np.int32)
  token_type_ids = np.asarray(token_type_ids, np.int32)
  count = input_ids.shape[0]
  titles = list(titles or [f'example {i + 1}' for i in range(count)])
  if as_typed:
    attention_mask = (input_ids != tokenizer.pad_id).astype(np.int32)
    masked = np.zeros(input_ids.shape, bool)
    generator_input, corrupted = input_ids, input_ids
    p_replaced = _score(checkpoint, input_ids, token_type_ids, attention_mask)
  else:
    if checkpoint.pretrained.gen_params is None:
      raise UserError(
                      f'{checkpoint.name} has a discriminator but no generator, which masking and sampling '
                      'need: point --workdir at the pre-training run or at an export holding generator/ '
                      '(or give --generator=DIR), or add --score_as_typed to score the text as typed.')
    batch = mask_examples(checkpoint, input_ids, token_type_ids, seed)
    attention_mask = batch['attention_mask']
    masked = np.zeros(input_ids.shape, bool)  # every used slot, also one that kept its token
    for row in range(count):
      used = batch['masked_lm_weights'][row] > 0
      masked[row, batch['masked_lm_positions'][row][used]] = True
    generator_input = batch['masked_input_ids']
    corrupted, p_replaced = _replaced_token_detection(checkpoint, batch, seed)

  piece = tokenizer.id_to_piece
  inspections = []
  for row in range(count):
    real = attention_mask[row].astype(bool)
    ids, gen_ids, cor_ids = input_ids[row][real], generator_input[row][real], corrupted[row][real]
    inspections.append(Inspection(
        title=titles[row], input_ids=ids, masked=masked[row][real], generator_input_ids=gen_ids,
        corrupted_ids=cor_ids, p_replaced=p_replaced[row][real],
        pieces=[piece(i) for i in ids], generator_input_pieces=[piece(i) for i in gen_ids],
        corrupted_pieces=[piece(i) for i in cor_ids]))
  return inspections


# ---- Terminal output -----------------------------------------------------------------------------

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


def summary(inspection: Inspection) -> str:
  replaced, p = inspection.replaced, inspection.p_replaced
  flagged = p > 0.5
  parts = [f'{len(p)} tokens', f'{int(inspection.masked.sum())} masked',
           f'{int(replaced.sum())} replaced',
           f'{int(flagged.sum())} flagged (P > 0.5), {int((flagged & replaced).sum())} of them '
           'replaced']
  for name, where in (('replaced', replaced), ('original', ~replaced)):
    if where.any():
      parts.append(f'mean P {name} {float(np.mean(p[where])):.3f}')
  return ', '.join(parts)


def render_terminal(inspections: Sequence[Inspection], *, color: bool, source: str = '') -> str:
  """One table per example: position, original, generator input, sample, P(replaced) and a bar."""
  lines = []
  if source:
    lines.append(_ansi(source, '1', color))
  for inspection in inspections:
    lines += ['', _ansi(inspection.title, '1', color), summary(inspection)]
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


# ---- HTML ----------------------------------------------------------------------------------------

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
  through, other masked positions the class `masked` (dashed).
  """
  esc = html.escape
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
    body += ['<section class="example">', f'<h2>{esc(inspection.title)}</h2>',
             f'<p class="summary">{esc(summary(inspection))}</p>',
             f'<p class="text">{"".join(spans)}</p>', '</section>']
  return ('<!DOCTYPE html>\n<html lang="en">\n<head>\n<meta charset="utf-8">\n'
          f'<title>RTD inspector: {esc(source)}</title>\n<style>{_CSS}</style>\n</head>\n<body>\n'
          + '\n'.join(body) + '\n</body>\n</html>\n')


def check_output_file(path: str, overwrite: bool) -> None:
  """Raises a UserError unless `path` can be written (before any model is loaded)."""
  directory = os.path.dirname(os.path.abspath(path))
  if '://' in path:
    raise UserError(f'--html={path}: write to a local file (then copy it).')
  if os.path.isdir(path):
    raise UserError(f'--html={path} is a directory: give a file name, e.g. {path}/rtd.html.')
  if os.path.exists(path) and not overwrite:
    raise UserError(f'--html={path} already exists: pass --overwrite to replace it, or choose '
                    'another file.')
  if not os.path.isdir(directory):
    raise UserError(f'--html={path}: the folder {directory} does not exist.')
  probe = f'{path}.tmp-{os.getpid()}'
  try:  # a real write: permissions alone miss read-only file systems (and root ignores them)
    with open(probe, 'w', encoding='utf-8'):
      pass
    os.remove(probe)
  except OSError as error:
    raise UserError(f'cannot write --html={path}: {error.strerror or error}.') from error


# ---- CLI -----------------------------------------------------------------------------------------

def define_flags(flag_values: flags.FlagValues = flags.FLAGS) -> None:
  """The CLI's flags, defined only when it runs (importing this module adds no global flags)."""
  define = dict(flag_values=flag_values)
  flags.DEFINE_string('workdir', None, 'A pre-training run directory, or a Hugging Face directory '
                      '(DST of `electra_jax.convert --to=hf`, or a discriminator directory alone '
                      'with --score_as_typed).', **define)
  flags.DEFINE_integer('step', None, 'Workdir: the checkpoint step (default: the latest).',
                       **define)
  flags.DEFINE_string('generator', None, 'Hugging Face: a generator directory, if not '
                      'WORKDIR/generator.', **define)
  flags.DEFINE_string('text', None, 'The text to inspect (one segment: [CLS] text [SEP]).',
                      **define)
  flags.DEFINE_integer('from_eval', None, 'Inspect the first K examples of the run\'s eval data '
                       'instead of --text.', **define)
  flags.DEFINE_integer('seed', 0, 'Seed of the masking and of the generator\'s sampling.',
                       **define)
  flags.DEFINE_bool('score_as_typed', False, 'No masking or sampling: the discriminator scores '
                    'the text as typed (needs no generator). Type a sentence with a wrong word.',
                    **define)
  flags.DEFINE_string('html', None, 'Also write a self-contained HTML page to this file (an '
                      'existing file is replaced only with --overwrite).', **define)
  flags.DEFINE_bool('overwrite', False, 'Replace an existing --html file.', **define)
  flags.DEFINE_enum('color', 'auto', _COLOR_MODES, 'ANSI colour in the terminal output: auto '
                    '(when stdout is a terminal and NO_COLOR is unset), always or never.',
                    **define)


def _check_flags(values: flags.FlagValues) -> None:
  """Every mistake that needs no loading, first."""
  if not values.workdir:
    raise UserError('--workdir is required: a pre-training run directory or a Hugging Face '
                    'directory.')
  if (values.text is None) == (values.from_eval is None):
    raise UserError('give exactly one of --text="..." and --from_eval=K.')
  if values.text is not None and not values.text.strip():
    raise UserError('--text is empty: give a sentence, e.g. --text="The cat sat on the mat."')
  if values.from_eval is not None and not 1 <= values.from_eval <= 256:
    raise UserError(f'--from_eval={values.from_eval}: give a number of examples from 1 to '
                    '256.')
  if values.step is not None and values.step < 0:
    raise UserError(f'--step={values.step} must be a checkpoint step (0 or more).')
  if values.html:
    check_output_file(values.html, values.overwrite)


def _inspect_from_flags(values: flags.FlagValues) -> None:
  _check_flags(values)
  logging.set_verbosity(logging.ERROR)  # orbax narrates at INFO and warns on read-only opens
  checkpoint = load(values.workdir, step=values.step, generator_path=values.generator)
  if values.text is not None:
    input_ids, token_type_ids = encode_text(checkpoint, values.text)
    titles = ['--text']
  else:
    input_ids, token_type_ids = eval_examples(checkpoint, values.from_eval)
    titles = [f'eval example {i + 1} of {values.from_eval}' for i in range(values.from_eval)]
  titles = [f'{t}, scored as typed' if values.score_as_typed else f'{t}, seed {values.seed}'
            for t in titles]
  inspections = inspect_examples(checkpoint, input_ids, token_type_ids, seed=values.seed,
                                 titles=titles, as_typed=values.score_as_typed)
  sys.stdout.write(render_terminal(inspections, color=use_color(sys.stdout, values.color),
                                   source=checkpoint.name))
  if values.html:
    tokenizer = checkpoint.tokenizer
    page = render_html(inspections, source=checkpoint.name, special_ids=tokenizer.special_ids(),
                       wordpiece_vocabulary=isinstance(tokenizer, tokenizers.WordPieceTokenizer))
    files.write_atomically(values.html, page, what=f'--html={values.html}')
    print(f'\nWrote {values.html}')
  sys.stdout.flush()


def main(argv: Sequence[str], flag_values: flags.FlagValues = flags.FLAGS) -> None:
  """Runs the CLI on parsed `flag_values` (`startup.run` turns a UserError into one line)."""
  if len(argv) > 1:
    raise UserError(f'unexpected arguments {list(argv[1:])}: every option is a --flag '
                    '(quote --text="several words").')
  _inspect_from_flags(flag_values)


def run():
  """Console-script entry point (`electra-jax-inspect`)."""
  define_flags()
  startup.run(main)


if __name__ == '__main__':
  run()

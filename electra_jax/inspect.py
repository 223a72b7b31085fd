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
it flagged. A masked-LM run ('mlm', 'replace_mlm') has no detector: it shows the masked LM's
top-1 prediction and P(original) at each masked position instead.

This module is the CLI; the engine lives in `electra_jax.inspection`, one module per job.
"""

from __future__ import annotations

import os
import sys
from typing import Sequence

from absl import flags
from absl import logging

from electra_jax import files
from electra_jax import startup
from electra_jax.data import tokenizers
from electra_jax.errors import UserError
from electra_jax.inspection import detection
from electra_jax.inspection import examples
from electra_jax.inspection import html_page
from electra_jax.inspection import loading
from electra_jax.inspection import terminal

_COLOR_MODES = ('auto', 'always', 'never')


# ---- Output file ---------------------------------------------------------------------------------

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
  checkpoint = loading.load(values.workdir, step=values.step, generator_path=values.generator)
  if values.text is not None:
    input_ids, token_type_ids = examples.encode_text(checkpoint, values.text)
    titles = ['--text']
  else:
    input_ids, token_type_ids = examples.eval_examples(checkpoint, values.from_eval)
    titles = [f'eval example {i + 1} of {values.from_eval}' for i in range(values.from_eval)]
  titles = [f'{t}, scored as typed' if values.score_as_typed else f'{t}, seed {values.seed}'
            for t in titles]
  inspections = detection.inspect_examples(checkpoint, input_ids, token_type_ids, seed=values.seed,
                                 titles=titles, as_typed=values.score_as_typed)
  color = terminal.use_color(sys.stdout, values.color)
  sys.stdout.write(terminal.render_terminal(inspections, color=color, source=checkpoint.name))
  if values.html:
    tokenizer = checkpoint.tokenizer
    page = html_page.render_html(
        inspections, source=checkpoint.name, special_ids=tokenizer.special_ids(),
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

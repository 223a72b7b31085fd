"""Learning curves: WORKDIR/metrics.jsonl -> one PNG (matplotlib, Agg).

  python -m electra_jax.plot --workdir=RUN                    # writes RUN/curves.png
  python -m electra_jax.plot --workdir=RUN_A,RUN_B --out=compare.png

One panel per quantity the runs recorded (a panel nobody recorded is left out): total loss,
generator loss, generator accuracy, discriminator loss, discriminator AUC (with the token-only
baseline where evaluation records it), the AUC's context gain, learning rate, tokens/s and the
share of time spent waiting for input. Training records are lines; evaluation records (`eval_`
keys) are marked points. Several workdirs are overlaid, one colour each, with the legend naming
them. A record repeated for the same step (a resumed run logs the steps after its last
checkpoint again) counts once, the latest.
"""

from __future__ import annotations

import dataclasses
import io
import json
import math
import os
import sys
from typing import Sequence

from absl import flags
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure
from matplotlib.ticker import MaxNLocator

from electra_jax import files
from electra_jax import startup
from electra_jax.errors import UserError

METRICS_FILE = 'metrics.jsonl'
DEFAULT_OUT = 'curves.png'
EVAL_PREFIX = 'eval_'  # the trainer's evaluation records (train.evaluate)


@dataclasses.dataclass(frozen=True)
class Curve:
  """One quantity: its key in training records, and in evaluation records with EVAL_PREFIX."""
  key: str
  label: str
  linestyle: str = '-'


@dataclasses.dataclass(frozen=True)
class Panel:
  title: str
  curves: tuple[Curve, ...]
  ylabel: str = ''
  zero_line: bool = False


# Keys as `reporting.MetricsWriter` writes them (`objective.summarize`, train.py, reporting.py).
PANELS = (
    Panel('total loss', (Curve('loss', 'loss'),), 'gen + disc_weight x disc'),
    Panel('generator masked-LM loss', (Curve('masked_lm_loss', 'masked-LM loss'),), 'nats'),
    Panel('generator masked-LM accuracy', (
        Curve('masked_lm_accuracy', 'top-1 accuracy'),
        Curve('sampled_masked_lm_accuracy', 'sampled = original', '--'))),
    Panel('discriminator loss', (Curve('disc_loss', 'disc loss'),), 'sigmoid CE per token'),
    Panel('discriminator AUC', (
        Curve('disc_auc', 'AUC'),
        Curve('disc_auc_token_only', 'token-only baseline', '--'),
        Curve('disc_auc_with_padding', 'AUC with padding', ':'))),
    Panel('AUC context gain (AUC - token-only AUC)', (
        Curve('disc_auc_context_gain', 'context gain'),), zero_line=True),
    Panel('learning rate', (Curve('learning_rate', 'learning rate'),)),
    Panel('throughput', (Curve('tokens_per_sec', 'tokens/s'),), 'tokens/s'),
    Panel('input wait share', (Curve('data_wait_fraction', 'waiting for data'),),
          'fraction of step time'),
)


# ---- Reading -------------------------------------------------------------------------------------

def _open(path: str, mode: str):
  """Local files with `open`; gs:// and other URLs through tf.io.gfile (imported only then)."""
  if '://' in path:
    import tensorflow as tf  # noqa: PLC0415 - seconds to import; only remote paths need it
    return tf.io.gfile.GFile(path, mode)
  return open(path, mode, encoding=None if 'b' in mode else 'utf-8')


def _exists(path: str) -> bool:
  if '://' in path:
    import tensorflow as tf  # noqa: PLC0415
    return tf.io.gfile.exists(path)
  return os.path.exists(path)


def read_metrics(workdir: str) -> dict[str, dict[int, float]]:
  """{key: {step: value}} from WORKDIR/metrics.jsonl; the latest record wins for a repeated step.

  Unreadable lines (a run killed mid-write) are skipped with a note on stderr.

  Raises:
    UserError: there is no metrics.jsonl, or it holds no record.
  """
  path = f'{workdir.rstrip("/")}/{METRICS_FILE}'
  if not _exists(path):
    what = 'does not exist' if not _exists(workdir) else f'has no {METRICS_FILE}'
    raise UserError(f'--workdir={workdir} {what}: give a pre-training run directory (training '
                    f'writes {METRICS_FILE} there at its first log step).')
  series: dict[str, dict[int, float]] = {}
  records = skipped = 0
  with _open(path, 'r') as f:
    for line in f:
      if not line.strip():
        continue
      try:
        record = json.loads(line)
        step = int(record['step'])
      except (ValueError, KeyError, TypeError):
        skipped += 1
        continue
      records += 1
      for key, value in record.items():
        if key != 'step' and isinstance(value, (int, float)) and not isinstance(value, bool):
          series.setdefault(key, {})[step] = float(value)
  if skipped:
    print(f'note: skipped {skipped} unreadable line(s) of {path}.', file=sys.stderr)
  if not records:
    raise UserError(f'{path} holds no metrics record yet: plot again once the run has logged '
                    'a step.')
  return series


# ---- Plotting ------------------------------------------------------------------------------------

def run_names(workdirs: Sequence[str]) -> list[str]:
  """Legend names: each workdir's last path component, or the whole path where those collide."""
  short = [os.path.basename(w.rstrip('/')) or w for w in workdirs]
  return [s if short.count(s) == 1 else w for s, w in zip(short, workdirs)]


def plot_curves(workdirs: Sequence[str], out: str, *, dpi: int = 100) -> dict[str, list[str]]:
  """Draws the learning curves of `workdirs` into the PNG `out` (replacing it).

  Returns:
    {panel title: [the labels of the lines drawn in it]}, for the panels drawn, in order.

  Raises:
    UserError: a workdir without metrics, or runs that recorded none of the panels' keys.
  """
  runs = [(name, read_metrics(w)) for name, w in zip(run_names(workdirs), workdirs)]
  several = len(runs) > 1

  def lines_of(panel):
    """(label, steps, values, is_eval, colour, linestyle) of each line the panel shows.

    One run: a colour per curve, its eval points in the same colour. Several runs: a colour per
    run, so that a run reads the same across panels, and a line style per curve.
    """
    found = []
    for run_index, (name, series) in enumerate(runs):
      for curve_index, curve in enumerate(panel.curves):
        for key, is_eval in ((curve.key, False), (EVAL_PREFIX + curve.key, True)):
          if key in series:
            points = sorted(series[key].items())
            label = f'{curve.label} ({"eval" if is_eval else "train"})'
            found.append((f'{name}: {label}' if several else label,
                          [s for s, _ in points], [v for _, v in points], is_eval,
                          f'C{run_index if several else curve_index}', curve.linestyle))
    return found

  drawn = [(panel, lines_of(panel)) for panel in PANELS]
  drawn = [(panel, lines) for panel, lines in drawn if lines]
  if not drawn:
    raise UserError(f'{", ".join(workdirs)}: {METRICS_FILE} has none of the keys these plots '
                    f'show ({", ".join(c.key for p in PANELS for c in p.curves)}).')

  columns = 2 if len(drawn) > 1 else 1
  rows = math.ceil(len(drawn) / columns)
  figure = Figure(figsize=(6 * columns, 3.2 * rows), dpi=dpi, layout='constrained')
  FigureCanvasAgg(figure)
  figure.suptitle('ELECTRA pre-training: ' + ', '.join(name for name, _ in runs))
  axes = figure.subplots(rows, columns, squeeze=False).ravel()
  for ax in axes[len(drawn):]:
    ax.set_visible(False)
  report = {}
  for ax, (panel, lines) in zip(axes, drawn):
    for label, steps, values, is_eval, color, linestyle in lines:
      if is_eval:  # few points: marked, joined by a thin line
        ax.plot(steps, values, linestyle=linestyle, linewidth=1, marker='o', markersize=4,
                color=color, label=label)
      else:
        ax.plot(steps, values, linestyle=linestyle, linewidth=1.2, color=color, label=label,
                alpha=0.85)
    if panel.zero_line:
      ax.axhline(0.0, color='0.5', linewidth=0.8)
    ax.set_title(panel.title, fontsize=10)
    ax.set_xlabel('step', fontsize=8)
    if panel.ylabel:
      ax.set_ylabel(panel.ylabel, fontsize=8)
    ax.tick_params(labelsize=8)
    ax.xaxis.set_major_locator(MaxNLocator(integer=True))
    ax.grid(True, alpha=0.3)
    if len(lines) > 1:
      ax.legend(fontsize=7)
    report[panel.title] = [line[0] for line in lines]

  buffer = io.BytesIO()
  figure.savefig(buffer, format='png', dpi=dpi)
  files.write_atomically(out, buffer.getvalue())
  return report


# ---- CLI -----------------------------------------------------------------------------------------

def define_flags(flag_values: flags.FlagValues = flags.FLAGS) -> None:
  """The CLI's flags, defined only when it runs (importing this module adds no global flags)."""
  flags.DEFINE_list('workdir', None, 'Pre-training run directories (local or gs://), comma '
                    'separated: several are overlaid, the legend naming each.',
                    flag_values=flag_values)
  flags.DEFINE_string('out', None, f'The PNG to write. Default: FIRST_WORKDIR/{DEFAULT_OUT}, '
                      'which is replaced on every call (it is this tool\'s own output). A file '
                      'named here that already exists is replaced only with --overwrite.',
                      flag_values=flag_values)
  flags.DEFINE_bool('overwrite', False, 'Replace an existing --out file.', flag_values=flag_values)
  flags.DEFINE_integer('dpi', 100, 'Resolution: 100 gives 1200 pixels across (two columns).',
                       flag_values=flag_values)


def _out_path(values: flags.FlagValues) -> str:
  """The output file, checked before anything is read or drawn."""
  if not values.out:
    return f'{values.workdir[0].rstrip("/")}/{DEFAULT_OUT}'
  out = values.out
  if not out.lower().endswith('.png'):
    raise UserError(f'--out={out}: the plot is a PNG; give a file name ending in .png.')
  if '://' not in out:
    if os.path.isdir(out):
      raise UserError(f'--out={out} is a directory: give a file, e.g. {out}/curves.png.')
    folder = os.path.dirname(os.path.abspath(out))
    if not os.path.isdir(folder):
      raise UserError(f'--out={out}: the folder {folder} does not exist.')
    if not os.access(folder, os.W_OK):
      raise UserError(f'--out={out}: the folder {folder} is not writable.')
  if _exists(out) and not values.overwrite:
    raise UserError(f'--out={out} already exists: pass --overwrite to replace it, or choose '
                    'another file.')
  return out


def main(argv: Sequence[str], flag_values: flags.FlagValues = flags.FLAGS) -> None:
  """Runs the CLI on parsed `flag_values` (`startup.run` turns a UserError into one line)."""
  if len(argv) > 1:
    raise UserError(f'unexpected arguments {list(argv[1:])}: give workdirs as '
                    '--workdir=A,B.')
  if not flag_values.workdir:
    raise UserError('--workdir is required: a pre-training run directory (or several, '
                    'comma separated).')
  if not 20 <= flag_values.dpi <= 600:
    raise UserError(f'--dpi={flag_values.dpi}: give a resolution from 20 to 600.')
  out = _out_path(flag_values)
  report = plot_curves(flag_values.workdir, out, dpi=flag_values.dpi)
  print(f'Wrote {out}: {", ".join(report)}.')


def run():
  """Console-script entry point (`electra-jax-plot`)."""
  define_flags()
  startup.run(main)


if __name__ == '__main__':
  run()

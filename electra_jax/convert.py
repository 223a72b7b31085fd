"""The conversion CLI: checkpoints between electra-jax workdirs, Hugging Face and the TF1 release.

  python -m electra_jax.convert --from=workdir --to=hf --src=/runs/small --dst=/export/small
  python -m electra_jax.convert --from=hf --to=workdir --src=/hf/electra-small --dst=/runs/init
  python -m electra_jax.convert --from=tf1 --to=hf --src=electra_small/model.ckpt-1000000 --dst=...

Sources (read by `electra_jax.interop.pretrained.load_checkpoint`, which detects the kind):
  workdir  a pre-training run (`WORKDIR/checkpoints/<step>`): the latest step, or `--step`.
  hf       a discriminator directory (`config.json` + weights, `ElectraForPreTraining`), or a parent
           holding `discriminator/` and `generator/` (what `--to=hf` writes); a generator elsewhere
           is given with `--src_generator`.
  tf1      an original google-research/electra checkpoint prefix (`electra_jax.interop.tf1`); its
           `vocab.txt` is taken from the same directory (uncased BERT WordPiece).
Destinations (written by `electra_jax.interop.export`):
  hf       `DST/discriminator` and `DST/generator`, each with config.json, model.safetensors and the
           tokenizer files (`electra_jax.interop.hf`, `electra_jax.data.tokenizers.hf`).
  workdir  an orbax checkpoint at step 0 with a fresh optimizer, the full config (`--config`, or
           the packaged default, the model section set from the source sizes) and the tokenizer:
           `main --workdir=DST` resumes it, `--config.init_from=DST` starts a fresh run from it.

Nothing is overwritten without `--overwrite`; a local destination is written next to it and
renamed into place, so a failed conversion leaves nothing half-written. A mistake the user can
fix (a bad path, a foreign or damaged file, an existing --dst) is one `error: ...` line, exit 2.
"""

from __future__ import annotations

from typing import Sequence

from absl import flags
from absl import logging
import ml_collections
from ml_collections import config_flags

from electra_jax import startup
from electra_jax.configs import default as default_config
from electra_jax.data import tokenizers
from electra_jax.interop import export
from electra_jax.interop import pretrained as pretrained_lib

FLAGS = flags.FLAGS


def _define_flags() -> None:
  """CLI flags, defined only when the CLI runs (importing this module must not add global flags)."""
  flags.DEFINE_enum('from', None, pretrained_lib.KINDS, 'Source kind: workdir, hf or tf1.')
  flags.DEFINE_enum('to', None, ['hf', 'workdir'], 'Destination kind.')
  flags.DEFINE_string('src', None, 'Source: workdir, HF directory or TF1 checkpoint prefix.')
  flags.DEFINE_string('dst', None, 'Destination directory (local).')
  flags.DEFINE_integer('step', None, '--from=workdir: the checkpoint step (default: the latest).')
  flags.DEFINE_bool('overwrite', False, 'Replace an existing --dst.')
  flags.DEFINE_string('src_generator', None, '--from=hf: a generator directory '
                      '(ElectraForMaskedLM), if not SRC/generator.')
  flags.DEFINE_integer('num_heads', None, '--from=tf1: discriminator heads (default H // 64).')
  flags.DEFINE_integer('generator_num_heads', None, '--from=tf1: generator heads (default '
                       'H_gen // 64).')
  flags.DEFINE_string('tokenizer_path', None, 'A vocab.txt or SentencePiece .model to carry '
                      'instead of the source\'s (e.g. when the source has none).')
  flags.DEFINE_bool('lower_case', True, 'With a --tokenizer_path vocab.txt: uncased WordPiece '
                    '(lower-casing and accent stripping).')
  config_flags.DEFINE_config_file('config', None, '--to=workdir: the run config to complete, a '
                                  'file or a packaged name (default: default); its model sizes '
                                  'come from the source.', lock_config=False)


def _tokenizer_from_flag(path: str, lower_case: bool) -> tokenizers.Tokenizer:
  kind = 'sentencepiece' if path.endswith('.model') else 'wordpiece'
  return tokenizers.load_tokenizer(ml_collections.ConfigDict(dict(
      type=kind, path=path, lower_case=lower_case, strip_accents=lower_case)))


def convert_from_flags(values: flags.FlagValues) -> None:
  """The CLI's work, from its parsed flag `values` (no global state)."""
  export.check_destination(values.dst, values.overwrite)  # before any loading
  pretrained = pretrained_lib.load_checkpoint(
      values.src, step=values.step, kind=values['from'].value, generator_path=values.src_generator,
      num_heads=values.num_heads, generator_num_heads=values.generator_num_heads)
  if values.tokenizer_path:
    pretrained.tokenizer = _tokenizer_from_flag(values.tokenizer_path, values.lower_case)
    pretrained.tokenizer_files = pretrained.tokenizer.files()
  if pretrained.tokenizer is None:
    print(f'Note: {values.src} carries no tokenizer (give one with --tokenizer_path).')
  if values.to == 'hf':
    for directory in export.write_hf(pretrained, values.dst, overwrite=values.overwrite):
      print(f'Wrote {directory}')
    return
  config = export.write_workdir(pretrained, values.dst,
                                values.config or default_config.get_config(),
                                overwrite=values.overwrite)
  print(f'Wrote {values.dst} (step 0; {config.model.num_layers} layers, hidden '
        f'{config.model.hidden_size}, vocab {config.model.vocab_size}).\n'
        f'Start a new run from its weights: --config.init_from={values.dst}\n'
        f'Or resume it as the run itself: --workdir={values.dst} with a config whose model and '
        f'electra sections equal {values.dst}/checkpoints/0/config')
  if pretrained.tokenizer is not None:
    print(f'  and --config.tokenizer.type={config.tokenizer.type} '
          f'--config.tokenizer.path={config.tokenizer.path}')


def main(argv: Sequence[str]) -> None:
  startup.no_arguments(argv)
  logging.set_verbosity(logging.WARNING)  # orbax narrates every file at INFO
  convert_from_flags(FLAGS)


def run():
  """Console-script entry point (`electra-jax-convert`)."""
  _define_flags()
  flags.mark_flags_as_required(['from', 'to', 'src', 'dst'])
  startup.run(main)


if __name__ == '__main__':
  run()

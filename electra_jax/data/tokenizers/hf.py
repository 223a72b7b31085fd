"""Our tokenizers <-> the tokenizer files of a Hugging Face model directory.

Export (`export_tokenizer`):
  WordPiece      `vocab.txt` + `tokenizer_config.json` (ElectraTokenizer, do_lower_case,
                 strip_accents): what the released ELECTRA checkpoints carry.
  SentencePiece  the `.model` file (as `spiece.model`) + a `tokenizer.json` for the `tokenizers`
                 library, built here from the model proto: the Unigram pieces and scores, the
                 model's own normaliser (its precompiled character map and whitespace rules, the
                 "▁" dummy prefix), and the `[CLS] A [SEP] B [SEP]` template; plus a
                 `tokenizer_config.json` naming PreTrainedTokenizerFast and the special tokens.
                 `transformers.AutoTokenizer.from_pretrained(DIR)` then gives our ids.

Import (`find_tokenizer`) reads `vocab.txt` (with `do_lower_case`/`strip_accents` from
`tokenizer_config.json`) or a SentencePiece `.model` back into our `Tokenizer` classes. Neither
direction imports `transformers` or `tokenizers`: the files are plain JSON.
"""

from __future__ import annotations

import base64
import json
import os

import tensorflow as tf
from absl import logging

from electra_jax import files
from electra_jax.data.tokenizers import base
from electra_jax.data.tokenizers import sentencepiece
from electra_jax.data.tokenizers import wordpiece
from electra_jax.errors import UserError

SENTENCEPIECE_FILE = 'spiece.model'
_SPECIAL_TOKEN_KEYS = dict(pad_token=base.PAD_PIECE, unk_token=base.UNK_PIECE,
                           cls_token=base.CLS_PIECE, sep_token=base.SEP_PIECE,
                           mask_token=base.MASK_PIECE)
# ELECTRA reads segment ids: ask transformers to return them (it omits them for generic tokenizers).
_MODEL_INPUT_NAMES = ['input_ids', 'token_type_ids', 'attention_mask']
_META = '\u2581'  # SentencePiece's "▁", which stands for a space


def _copy(source: str, destination: str) -> None:
  tf.io.gfile.copy(source, destination, overwrite=True)


def export_tokenizer(tokenizer: base.Tokenizer, directory: str, *,
                     model_max_length: int) -> list[str]:
  """Writes the Hugging Face tokenizer files for `tokenizer` into `directory`; returns them."""
  if isinstance(tokenizer, wordpiece.WordPieceTokenizer):
    vocab = os.path.join(directory, 'vocab.txt')
    _copy(tokenizer.files()[0], vocab)
    config = dict(tokenizer_class='ElectraTokenizer', do_lower_case=tokenizer.lower_case,
                  strip_accents=tokenizer.strip_accents, tokenize_chinese_chars=True,
                  model_max_length=model_max_length, **_SPECIAL_TOKEN_KEYS)
    written = [vocab]
  elif isinstance(tokenizer, sentencepiece.SentencePieceTokenizer):
    model = os.path.join(directory, SENTENCEPIECE_FILE)
    _copy(tokenizer.files()[0], model)
    fast = os.path.join(directory, 'tokenizer.json')
    files.write_json(fast, sentencepiece_tokenizer_json(tokenizer.model_proto))
    config = dict(tokenizer_class='PreTrainedTokenizerFast', vocab_file=SENTENCEPIECE_FILE,
                  model_max_length=model_max_length, **_SPECIAL_TOKEN_KEYS)
    written = [model, fast]
  else:
    raise UserError(f'Cannot export a {type(tokenizer).__name__} as a Hugging Face tokenizer; '
                    'only WordPiece and SentencePiece tokenizers are supported.')
  config['model_input_names'] = _MODEL_INPUT_NAMES
  config_path = os.path.join(directory, 'tokenizer_config.json')
  files.write_json(config_path, config)
  return written + [config_path]


def sentencepiece_tokenizer_json(model_proto: bytes) -> dict:
  """A `tokenizers` `tokenizer.json` that tokenises exactly as the Unigram SentencePiece model."""
  from sentencepiece import sentencepiece_model_pb2  # noqa: PLC0415
  proto = sentencepiece_model_pb2.ModelProto()
  proto.ParseFromString(model_proto)
  unigram = sentencepiece_model_pb2.TrainerSpec.UNIGRAM
  if proto.trainer_spec.model_type != unigram:
    kind = sentencepiece_model_pb2.TrainerSpec.ModelType.Name(proto.trainer_spec.model_type)
    raise UserError(f'Only Unigram SentencePiece models can be exported as a Hugging Face fast '
                    f'tokenizer; this one is {kind}. Train a unigram model (the default of '
                    '`python -m electra_jax.tokenizer`).')
  piece_types = sentencepiece_model_pb2.ModelProto.SentencePiece
  if any(p.type == piece_types.USER_DEFINED for p in proto.pieces):
    raise UserError('SentencePiece models with user-defined pieces cannot be exported as a '
                    'Hugging Face tokenizer (SentencePiece matches them before segmenting).')
  spec = proto.normalizer_spec
  steps = []
  if spec.precompiled_charsmap:  # e.g. nmt_nfkc: NFKC plus SentencePiece's own clean-ups
    steps.append({'type': 'Precompiled',
                  'precompiled_charsmap': base64.b64encode(spec.precompiled_charsmap).decode()})
  if spec.remove_extra_whitespaces:  # SentencePiece trims and squeezes spaces (only spaces)
    steps.append({'type': 'Replace', 'pattern': {'Regex': r'\A +| +\z'}, 'content': ''})
    steps.append({'type': 'Replace', 'pattern': {'Regex': ' {2,}'}, 'content': ' '})
  if spec.add_dummy_prefix:  # a leading "▁", so the first word looks like every other word
    steps.append({'type': 'Prepend', 'prepend': _META})
  if spec.escape_whitespaces:
    steps.append({'type': 'Replace', 'pattern': {'String': ' '}, 'content': _META})
  decoder = [{'type': 'Replace', 'pattern': {'String': _META}, 'content': ' '}]
  if proto.trainer_spec.byte_fallback:
    decoder.append({'type': 'ByteFallback'})
  decoder.append({'type': 'Fuse'})
  if spec.add_dummy_prefix:
    decoder.append({'type': 'Strip', 'content': ' ', 'start': 1, 'stop': 0})

  ids = {p.piece: i for i, p in enumerate(proto.pieces)}
  missing = [p for p in base.SPECIAL_PIECES if p not in ids]
  if missing:
    raise UserError(f'The SentencePiece model lacks the special pieces {missing}.')
  # The special pieces are matched in raw text before segmenting (SentencePiece never emits a
  # control piece for text, so this only differs on a literal "[MASK]" and the like).
  added = [dict(id=ids[p], content=p, single_word=False, lstrip=False, rstrip=False,
                normalized=False, special=True) for p in base.SPECIAL_PIECES]
  cls, sep = base.CLS_PIECE, base.SEP_PIECE

  def special(piece, type_id):
    return {'SpecialToken': {'id': piece, 'type_id': type_id}}

  def sequence(name, type_id):
    return {'Sequence': {'id': name, 'type_id': type_id}}

  return {
      'version': '1.0',
      'truncation': None,
      'padding': None,
      'added_tokens': sorted(added, key=lambda t: t['id']),
      'normalizer': {'type': 'Sequence', 'normalizers': steps},
      'pre_tokenizer': None,
      'post_processor': {
          'type': 'TemplateProcessing',
          'single': [special(cls, 0), sequence('A', 0), special(sep, 0)],
          'pair': [special(cls, 0), sequence('A', 0), special(sep, 0), sequence('B', 1),
                   special(sep, 1)],
          'special_tokens': {p: {'id': p, 'ids': [ids[p]], 'tokens': [p]} for p in (cls, sep)},
      },
      'decoder': {'type': 'Sequence', 'decoders': decoder},
      'model': {
          'type': 'Unigram',
          'unk_id': proto.trainer_spec.unk_id,
          'vocab': [[p.piece, float(p.score)] for p in proto.pieces],
          'byte_fallback': bool(proto.trainer_spec.byte_fallback),
      },
  }


def find_tokenizer(directory: str) -> tuple[base.Tokenizer | None, list[str]]:
  """The tokenizer in a Hugging Face model directory: (tokenizer, its files), or (None, [])."""
  config = {}
  config_path = os.path.join(directory, 'tokenizer_config.json')
  if tf.io.gfile.exists(config_path):
    with tf.io.gfile.GFile(config_path) as f:
      config = json.load(f)
  vocab = os.path.join(directory, 'vocab.txt')
  if tf.io.gfile.exists(vocab):
    lower_case = bool(config.get('do_lower_case', True))
    strip_accents = config.get('strip_accents')
    strip_accents = lower_case if strip_accents is None else bool(strip_accents)
    tokenizer = wordpiece.WordPieceTokenizer(vocab, lower_case=lower_case,
                                             strip_accents=strip_accents)
    return tokenizer, tokenizer.files()
  listed = str(config.get('vocab_file', ''))
  candidates = [listed] if listed.endswith('.model') else []
  candidates += sorted(n for n in tf.io.gfile.listdir(directory) if n.endswith('.model'))
  for name in candidates:
    path = os.path.join(directory, name)
    if tf.io.gfile.exists(path):
      tokenizer = sentencepiece.SentencePieceTokenizer(path)
      return tokenizer, tokenizer.files()
  logging.warning('%s has no vocab.txt or SentencePiece .model: no tokenizer loaded.', directory)
  return None, []


def tokenizer_config_fields(tokenizer: base.Tokenizer) -> dict:
  """The `config.tokenizer` fields that load `tokenizer` again (type, path, casing, size)."""
  if isinstance(tokenizer, wordpiece.WordPieceTokenizer):
    return dict(type='wordpiece', path=tokenizer.files()[0], lower_case=tokenizer.lower_case,
                strip_accents=tokenizer.strip_accents, vocab_size=tokenizer.vocab_size)
  return dict(type='sentencepiece', path=tokenizer.files()[0], vocab_size=tokenizer.vocab_size)

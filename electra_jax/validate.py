"""Up-front checks of a pre-training config: every error names the field and the fix.

Runs before the tokenizer, the data or any compilation, so a typo costs seconds, not a TPU hour.
Data-source checks (paths, globs, TFDS features) live with the pipeline in
`electra_jax.data.pretraining.validate_data_config`.
"""

from __future__ import annotations

import ml_collections

from electra_jax.errors import UserError
from electra_jax import mesh as mesh_lib

_DTYPES = ('float32', 'bfloat16', 'float16')
_SHARING = ('shared', 'gdes', 'none')
SAMPLERS = ('gumbel', 'inverse_cdf')  # config.electra.sampler; see configs/default.py
# config.electra.objective; see configs/default.py and objective_switch.py
OBJECTIVES = ('electra', 'mlm', 'electra_15', 'replace_mlm', 'all_tokens_mlm')
_REMAT = ('none', 'full', 'dots')
_SOURCES = ('builtin', 'files', 'tfds', 'prepared', 'synthetic')


def _require(condition: bool, message: str):
  if not condition:
    raise UserError(message)


def validate_model_config(m: ml_collections.ConfigDict, name: str = 'config.model'):
  for field in ('vocab_size', 'embedding_size', 'hidden_size', 'num_layers', 'num_heads',
                'intermediate_size', 'max_position_embeddings', 'type_vocab_size'):
    _require(int(m[field]) > 0, f'{name}.{field}={m[field]} must be a positive integer.')
  _require(m.hidden_size % m.num_heads == 0,
           f'{name}.num_heads={m.num_heads} does not divide {name}.hidden_size={m.hidden_size}. '
           f'Pick heads so that hidden_size/num_heads is an integer (the reference uses 64).')
  _require(m.dtype in _DTYPES and m.param_dtype in _DTYPES,
           f'{name}.dtype/param_dtype must be one of {_DTYPES}; got {m.dtype!r}/{m.param_dtype!r}.')
  _require(m.remat in _REMAT, f'{name}.remat={m.remat!r}: use one of {_REMAT}.')
  for field in ('hidden_dropout_prob', 'attention_dropout_prob'):
    _require(0.0 <= m[field] < 1.0, f'{name}.{field}={m[field]} must be in [0, 1).')


def validate_config(config: ml_collections.ConfigDict, *, num_devices: int,
                    process_count: int = 1) -> tuple[int, int, int]:
  """Raises ValueError on the first problem; returns the resolved (data, fsdp, tensor) sizes."""
  validate_model_config(config.model)
  e, t, d = config.electra, config.train, config.data
  _require(0.0 < e.generator_hidden_fraction <= 1.0,
           f'config.electra.generator_hidden_fraction={e.generator_hidden_fraction} must be in '
           '(0, 1]: the generator is a fraction of the discriminator (1/4 small, 1/3 base).')
  gen_hidden = int(round(config.model.hidden_size * e.generator_hidden_fraction))  # as the model
  _require(gen_hidden >= 1, 'config.electra.generator_hidden_fraction gives a 0-wide generator.')
  _require(e.embedding_sharing in _SHARING,
           f'config.electra.embedding_sharing={e.embedding_sharing!r}: use one of {_SHARING}.')
  _require(e.temperature > 0, f'config.electra.temperature={e.temperature} must be > 0.')
  _require(e.sampler in SAMPLERS,
           f'config.electra.sampler={e.sampler!r}: use one of {SAMPLERS}.')
  _require(e.get('objective', 'electra') in OBJECTIVES,
           f'config.electra.objective={e.get("objective")!r}: use one of {OBJECTIVES}.')
  _require(d.source in _SOURCES, f'config.data.source={d.source!r}: use one of {_SOURCES}.')
  _require(d.max_seq_length <= config.model.max_position_embeddings,
           f'config.data.max_seq_length={d.max_seq_length} exceeds '
           f'config.model.max_position_embeddings={config.model.max_position_embeddings}. '
           'Shorten the sequences or enlarge the position table.')
  _require(0.0 < d.mask_prob < 1.0, f'config.data.mask_prob={d.mask_prob} must be in (0, 1).')

  _require(t.num_steps > 0, f'config.train.num_steps={t.num_steps} must be positive.')
  # warmup_steps > num_steps is allowed (a short smoke run of a long config): the schedule
  # lr * (1 - t/T) * min(1, t/W) is then still defined, and never reaches its warm-up end.
  _require(t.warmup_steps >= 0, f'config.train.warmup_steps={t.warmup_steps} must be >= 0.')
  _require(t.learning_rate > 0, f'config.train.learning_rate={t.learning_rate} must be > 0.')
  for field in ('log_every', 'checkpoint_every', 'keep_checkpoints'):
    _require(t[field] >= 1, f'config.train.{field}={t[field]} must be >= 1.')
  _require(t.eval_every >= 0 and t.eval_steps >= 1,
           'config.train.eval_every must be >= 0 (0 = never) and eval_steps >= 1.')

  sizes = mesh_lib.resolve_axis_sizes(config.mesh, num_devices)
  data_parallel = sizes[0] * sizes[1]
  tensor = sizes[2]
  _require(t.batch_size % process_count == 0,
           f'config.train.batch_size={t.batch_size} is not divisible by the {process_count} hosts. '
           'Use a multiple of the host count.')
  _require(t.grad_accum_steps >= 1 and t.batch_size % t.grad_accum_steps == 0,
           f'config.train.grad_accum_steps={t.grad_accum_steps} must divide '
           f'config.train.batch_size={t.batch_size}.')
  micro = t.batch_size // t.grad_accum_steps
  _require(micro % data_parallel == 0,
           f'config.train.batch_size={t.batch_size} (micro-batch {micro} with '
           f'grad_accum_steps={t.grad_accum_steps}) is not divisible by the {data_parallel} '
           f'data-parallel devices (mesh.data*mesh.fsdp). Use a multiple of {data_parallel}.')
  # The generator is small: dimensions the mesh cannot divide are replicated (model.param_shardings).
  _require(config.model.num_heads % tensor == 0,
           f'config.mesh.tensor={tensor} does not divide config.model.num_heads='
           f'{config.model.num_heads}. Use a tensor size that divides the head count.')
  _require(config.model.intermediate_size % tensor == 0,
           f'config.mesh.tensor={tensor} does not divide config.model.intermediate_size='
           f'{config.model.intermediate_size}.')
  fsdp = sizes[1]
  for field in ('hidden_size', 'embedding_size'):
    _require(config.model[field] % fsdp == 0,
             f'config.mesh.fsdp={fsdp} does not divide config.model.{field}='
             f'{config.model[field]}, which FSDP shards. Use an fsdp size that divides it.')
  return sizes

"""The config rules, in one place: every choice, every derived value and every pure check.

Pre-training, fine-tuning, the model, the pipeline and the FLOP counter all read their rules from
here: the allowed values of each switch (`DTYPES`, `EMBEDDING_SHARING`, `SOURCES`, ...), the values
derived from a config (`generator_config`, `max_predictions`, `per_host_batch_size`,
`resolve_axis_sizes`, `logical_axis_rules`) and the checks that need no I/O. Every error names the
field and the fix.

Jax-free (only ml_collections), so it runs before the tokenizer, the data or any compilation: a
typo costs seconds, not a TPU hour. The checks that need I/O (globs, files, TFDS, tokenizer vs
vocabulary) live with the pipeline in `electra_jax.data.pretraining.validate_data_config`.
"""

from __future__ import annotations

import math
from typing import Any, Sequence

import ml_collections

from electra_jax.errors import UserError

# Compute dtypes (`config.model.dtype`); parameters and optimizer state stay float32. float16 is
# not offered: nothing here scales the loss, which float16's narrow range would need.
DTYPES = ('float32', 'bfloat16')
PARAM_DTYPES = ('float32',)
EMBEDDING_SHARING = ('shared', 'gdes', 'none')  # config.electra.embedding_sharing
SAMPLERS = ('gumbel', 'inverse_cdf')  # config.electra.sampler; see configs/default.py
REMAT = ('none', 'full', 'dots')  # config.model.remat
SOURCES = ('builtin', 'files', 'jsonl', 'parquet', 'hf', 'tfds', 'prepared',
           'synthetic')  # config.data.source
ON_BAD_RECORD = ('error', 'skip')  # config.data.on_bad_record
MESH_AXES = ('data', 'fsdp', 'tensor')
# config.train.prng_impl -> jax's PRNG implementation; 'auto' takes the platform's entry of
# AUTO_PRNG_IMPL, else threefry (the reference behaviour everywhere until measured otherwise).
PRNG_IMPLS = {'threefry': 'threefry2x32', 'rbg': 'rbg', 'unsafe_rbg': 'unsafe_rbg'}
AUTO_PRNG_IMPL: dict[str, str] = {}  # platform ('tpu', 'gpu', 'cpu') -> a key of PRNG_IMPLS
# [CLS] A [SEP] B [SEP] needs room for a few pieces of each segment.
MIN_SEQ_LENGTH = 8


def require(condition: bool, message: str) -> None:
  if not condition:
    raise UserError(message)


def check_choice(field: str, value: Any, choices: Sequence[Any]) -> None:
  """`field=value` must be one of `choices`."""
  require(value in choices, f'{field}={value!r}: use one of {tuple(choices)}.')


def _check_range(field: str, value: float, low: float, high: float) -> None:
  require(low <= value <= high, f'{field}={value} must lie in [{low}, {high}].')


# ---- Model ---------------------------------------------------------------------------------------

def validate_model_config(m: ml_collections.ConfigDict, name: str = 'config.model') -> None:
  """Raises UserError naming the field when a model config cannot build a network."""
  for field in ('vocab_size', 'embedding_size', 'hidden_size', 'num_layers', 'num_heads',
                'intermediate_size', 'max_position_embeddings', 'type_vocab_size'):
    require(int(m[field]) > 0, f'{name}.{field}={m[field]} must be a positive integer.')
  require(m.hidden_size % m.num_heads == 0,
          f'{name}.num_heads={m.num_heads} does not divide {name}.hidden_size={m.hidden_size}. '
          f'Pick heads so that hidden_size/num_heads is an integer (the reference uses 64).')
  check_choice(f'{name}.dtype', m.dtype, DTYPES)
  check_choice(f'{name}.param_dtype', m.param_dtype, PARAM_DTYPES)
  check_choice(f'{name}.remat', m.remat, REMAT)
  for field in ('hidden_dropout_prob', 'attention_dropout_prob'):
    require(0.0 <= m[field] < 1.0, f'{name}.{field}={m[field]} must be in [0, 1).')


def check_sequence_fits(length: int, model_config: ml_collections.ConfigDict,
                        field: str = 'config.data.max_seq_length') -> None:
  """A sequence of `length` tokens must fit the model's position table."""
  require(length <= model_config.max_position_embeddings,
          f'{field}={length} exceeds config.model.max_position_embeddings='
          f'{model_config.max_position_embeddings}. Shorten the sequences or use a model with '
          'a larger position table.')


def generator_config(disc_config: ml_collections.ConfigDict, hidden_fraction: float,
                     embedding_sharing: str = 'shared') -> ml_collections.ConfigDict:
  """The original's generator size (`get_generator_config` in `run_pretraining.py`).

  H_gen = int(round(H * fraction)), the same layer count, heads max(1, H_gen // 64), FFN
  4 H_gen. With `embedding_sharing='none'` (the original's `untied_generator_embeddings`) the
  generator has its own tables of its own width, E_gen = H_gen, and so no projection;
  otherwise it shares the discriminator's E-wide tables.
  """
  require(0.0 < hidden_fraction <= 1.0,
          f'config.electra.generator_hidden_fraction={hidden_fraction} must be in (0, 1]: the '
          'generator is a fraction of the discriminator (1/4 small, 1/3 base).')
  check_choice('config.electra.embedding_sharing', embedding_sharing, EMBEDDING_SHARING)
  gen = ml_collections.ConfigDict(disc_config.to_dict())
  gen.hidden_size = int(round(disc_config.hidden_size * hidden_fraction))
  require(gen.hidden_size >= 1,
          f'generator hidden size round({disc_config.hidden_size} * {hidden_fraction}) is 0; '
          'raise config.electra.generator_hidden_fraction.')
  gen.num_heads = max(1, gen.hidden_size // 64)
  gen.intermediate_size = 4 * gen.hidden_size
  if embedding_sharing == 'none':
    gen.embedding_size = gen.hidden_size
  validate_model_config(gen, name='the generator config')
  return gen


# ---- Data ----------------------------------------------------------------------------------------

def max_predictions_for(mask_prob: float, max_seq_length: int, configured: int = -1) -> int:
  """Mask slots per sequence: `configured`, or if -1 the original's `int((p + 0.005) * length)`.

  Any other value is taken as given (and `validate_data_options` requires it in [1, length]).
  """
  if configured != -1:
    return configured
  return int((mask_prob + 0.005) * max_seq_length)


def max_predictions(config: ml_collections.ConfigDict) -> int:
  """Mask slots per sequence of a full config (`config.data.max_predictions_per_seq`)."""
  return max_predictions_for(config.data.mask_prob, config.data.max_seq_length,
                             config.data.max_predictions_per_seq)


def per_host_batch_size(batch_size: int, process_count: int,
                        field: str = 'config.train.batch_size') -> int:
  """The rows each host feeds: a global batch is split evenly over the hosts."""
  require(batch_size >= 1 and batch_size % process_count == 0,
          f'{field}={batch_size} is not divisible by the {process_count} hosts. Use a positive '
          'multiple of the host count.')
  return batch_size // process_count


def validate_data_options(config: ml_collections.ConfigDict) -> None:
  """The data fields against each other and the model, without I/O."""
  data = config.data
  check_choice('config.data.source', data.source, SOURCES)
  check_choice('config.data.on_bad_record', data.on_bad_record, ON_BAD_RECORD)
  require(data.hf_shard_rows >= 1,
          f'config.data.hf_shard_rows={data.hf_shard_rows} must be at least 1.')
  check_sequence_fits(data.max_seq_length, config.model)
  require(data.max_seq_length >= MIN_SEQ_LENGTH,
          f'config.data.max_seq_length={data.max_seq_length} is too short for '
          f'[CLS] A [SEP] B [SEP]; use at least {MIN_SEQ_LENGTH}.')
  require(0.0 < data.mask_prob < 1.0, f'config.data.mask_prob={data.mask_prob} must be in (0, 1).')
  for name in ('mask_token_prob', 'random_token_prob', 'short_seq_prob', 'single_segment_prob'):
    _check_range(f'config.data.{name}', data[name], 0.0, 1.0)
  require(data.mask_token_prob + data.random_token_prob <= 1.0 + 1e-9,
          f'config.data.mask_token_prob + data.random_token_prob = '
          f'{data.mask_token_prob + data.random_token_prob} exceeds 1.')
  _check_range('config.data.eval_fraction', data.eval_fraction, 0.0, 0.5)
  num_predictions = max_predictions(config)
  require(1 <= num_predictions <= data.max_seq_length,
          f'config.data.max_predictions_per_seq={num_predictions} must lie in '
          f'[1, data.max_seq_length={data.max_seq_length}] (or be -1 for the default).')
  require(data.shuffle_buffer >= 1,
          f'config.data.shuffle_buffer={data.shuffle_buffer} must be at least 1.')
  require(config.train.batch_size >= 1,
          f'config.train.batch_size={config.train.batch_size} must be positive.')


# ---- Mesh and sharding rules ---------------------------------------------------------------------

def resolve_axis_sizes(mesh_config: ml_collections.ConfigDict, num_devices: int) -> tuple[int, ...]:
  """Returns (data, fsdp, tensor) sizes with `-1` ("the devices left over") filled in."""
  sizes = [int(mesh_config[name]) for name in MESH_AXES]
  for name, size in zip(MESH_AXES, sizes):
    require(size > 0 or size == -1,
            f'config.mesh.{name}={size}: use a positive size, or -1 for "the rest".')
  unknown = [name for name, size in zip(MESH_AXES, sizes) if size == -1]
  require(len(unknown) <= 1,
          f'config.mesh: only one axis may be -1, got {unknown}. Set all but one.')
  known = math.prod(s for s in sizes if s != -1)
  if unknown:
    require(num_devices % known == 0,
            f'config.mesh: the fixed axes multiply to {known}, which does not divide the '
            f'{num_devices} devices. Choose sizes whose product divides {num_devices}.')
    sizes[MESH_AXES.index(unknown[0])] = num_devices // known
  else:
    require(known == num_devices,
            f'config.mesh: data*fsdp*tensor = {known} but there are {num_devices} devices. '
            f'Make the product {num_devices}, or set one axis to -1.')
  return tuple(sizes)


def logical_axis_rules(mesh_config: ml_collections.ConfigDict) -> tuple[tuple[str, Any], ...]:
  """`config.mesh.logical_axis_rules` as flax wants them: tuples, never lists (as a JSON
  round trip or a command-line override leaves them)."""
  return tuple((name, tuple(axes) if isinstance(axes, list) else axes)
               for name, axes in mesh_config.logical_axis_rules)


def check_data_parallel_batch(field: str, batch_size: int, data_parallel: int) -> None:
  """A (micro-)batch must split evenly over the data-parallel devices (mesh.data*mesh.fsdp)."""
  require(batch_size % data_parallel == 0,
          f'{field}={batch_size} is not divisible by the {data_parallel} data-parallel devices '
          f'(mesh.data*mesh.fsdp). Use a multiple of {data_parallel}.')


def prng_impl(train_config: ml_collections.ConfigDict, platform: str) -> str:
  """jax's PRNG implementation for `train.prng_impl` on `platform`, e.g. 'threefry2x32'."""
  choice = train_config.get('prng_impl', 'auto')  # runs saved before the field: the default
  check_choice('config.train.prng_impl', choice, ('auto', *PRNG_IMPLS))
  if choice == 'auto':
    choice = AUTO_PRNG_IMPL.get(platform, 'threefry')
  return PRNG_IMPLS[choice]


# ---- The whole pre-training config ---------------------------------------------------------------

def validate_config(config: ml_collections.ConfigDict, *, num_devices: int,
                    process_count: int = 1) -> tuple[int, int, int]:
  """Raises UserError on the first problem; returns the resolved (data, fsdp, tensor) sizes."""
  validate_model_config(config.model)
  e, t = config.electra, config.train
  generator_config(config.model, e.generator_hidden_fraction, e.embedding_sharing)
  require(e.temperature > 0, f'config.electra.temperature={e.temperature} must be > 0.')
  check_choice('config.electra.sampler', e.sampler, SAMPLERS)
  validate_data_options(config)

  require(t.num_steps > 0, f'config.train.num_steps={t.num_steps} must be positive.')
  # warmup_steps > num_steps is allowed (a short smoke run of a long config): the schedule
  # lr * (1 - t/T) * min(1, t/W) is then still defined, and never reaches its warm-up end.
  require(t.warmup_steps >= 0, f'config.train.warmup_steps={t.warmup_steps} must be >= 0.')
  require(t.learning_rate > 0, f'config.train.learning_rate={t.learning_rate} must be > 0.')
  for field in ('log_every', 'checkpoint_every', 'keep_checkpoints'):
    require(t[field] >= 1, f'config.train.{field}={t[field]} must be >= 1.')
  require(t.eval_every >= 0 and t.eval_steps >= 1,
          'config.train.eval_every must be >= 0 (0 = never) and eval_steps >= 1.')
  for field in ('profile_steps', 'profile_warmup_steps'):
    require(t[field] >= 0, f'config.train.{field}={t[field]} must be >= 0.')
  prng_impl(t, 'cpu')  # checks the choice
  for field in ('train.max_consecutive_nonfinite', 'train.restart_from_step',
                'data.skip_batches'):
    section, name = field.split('.')
    value = config[section].get(name, 0)
    require(value >= 0, f'config.{field}={value} must be >= 0.')

  sizes = resolve_axis_sizes(config.mesh, num_devices)
  per_host_batch_size(t.batch_size, process_count)
  require(t.grad_accum_steps >= 1 and t.batch_size % t.grad_accum_steps == 0,
          f'config.train.grad_accum_steps={t.grad_accum_steps} must divide '
          f'config.train.batch_size={t.batch_size}.')
  micro = t.batch_size // t.grad_accum_steps
  check_data_parallel_batch(
      'config.train.batch_size' if t.grad_accum_steps == 1 else
      f'the micro-batch (config.train.batch_size={t.batch_size} / grad_accum_steps='
      f'{t.grad_accum_steps})', micro, sizes[0] * sizes[1])
  # The generator is small: dimensions the mesh cannot divide are replicated
  # (sharding.param_shardings); the discriminator's must divide.
  tensor, fsdp = sizes[2], sizes[1]
  require(config.model.num_heads % tensor == 0,
          f'config.mesh.tensor={tensor} does not divide config.model.num_heads='
          f'{config.model.num_heads}. Use a tensor size that divides the head count.')
  require(config.model.intermediate_size % tensor == 0,
          f'config.mesh.tensor={tensor} does not divide config.model.intermediate_size='
          f'{config.model.intermediate_size}.')
  for field in ('hidden_size', 'embedding_size'):
    require(config.model[field] % fsdp == 0,
            f'config.mesh.fsdp={fsdp} does not divide config.model.{field}='
            f'{config.model[field]}, which FSDP shards. Use an fsdp size that divides it.')
  return sizes

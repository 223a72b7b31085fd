"""The config rules, in one place: every choice, every derived value and every pure check.

The run spec (`spec.run.load`) runs these checks once, when a config is loaded, and takes its
derived values from here (`generator_config`, `max_predictions_for`, `per_host_batch_size`). The
model's choices are named in `core.choices`, the mesh's rules live with the mesh
(`parallel.mesh.MeshShape`); the rest are below. Every error names the field and the fix.

Jax-free and free of I/O, so a typo costs seconds, not a TPU hour. The checks that need I/O
(globs, files, TFDS, tokenizer vs vocabulary) live with the pipeline in
`electra_jax.data.pretraining.validate_data_config`.
"""

from __future__ import annotations

import ml_collections

from electra_jax.core import schema
from electra_jax.errors import check_choice, require

SOURCES = ('builtin', 'files', 'jsonl', 'parquet', 'hf', 'tfds', 'prepared',
           'synthetic')  # config.data.source
ON_BAD_RECORD = ('error', 'skip')  # config.data.on_bad_record
# config.train.prng_impl -> jax's PRNG implementation; 'auto' takes the platform's entry of
# AUTO_PRNG_IMPL, else threefry (the reference behaviour everywhere until measured otherwise).
PRNG_IMPLS = {'threefry': 'threefry2x32', 'rbg': 'rbg', 'unsafe_rbg': 'unsafe_rbg'}
AUTO_PRNG_IMPL: dict[str, str] = {}  # platform ('tpu', 'gpu', 'cpu') -> a key of PRNG_IMPLS
# [CLS] A [SEP] B [SEP] needs room for a few pieces of each segment.
MIN_SEQ_LENGTH = 8


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
  check_choice(f'{name}.dtype', m.dtype, schema.DTYPES)
  check_choice(f'{name}.param_dtype', m.param_dtype, schema.PARAM_DTYPES)
  check_choice(f'{name}.remat', m.remat, schema.REMAT)
  for field in ('hidden_dropout_prob', 'attention_dropout_prob'):
    require(0.0 <= m[field] < 1.0, f'{name}.{field}={m[field]} must be in [0, 1).')


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
  check_choice('config.electra.embedding_sharing', embedding_sharing,
               schema.EMBEDDING_SHARING)
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
  schema.check_sequence_fits(data.max_seq_length, config.model)
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
  num_predictions = max_predictions_for(data.mask_prob, data.max_seq_length,
                                        data.max_predictions_per_seq)
  require(1 <= num_predictions <= data.max_seq_length,
          f'config.data.max_predictions_per_seq={num_predictions} must lie in '
          f'[1, data.max_seq_length={data.max_seq_length}] (or be -1 for the default).')
  require(data.shuffle_buffer >= 1,
          f'config.data.shuffle_buffer={data.shuffle_buffer} must be at least 1.')
  require(config.train.batch_size >= 1,
          f'config.train.batch_size={config.train.batch_size} must be positive.')


# ---- Batches and random numbers -----------------------------------------------------------------

def check_data_parallel_batch(field: str, batch_size: int, data_parallel: int) -> None:
  """A (micro-)batch must split evenly over the data-parallel devices (mesh.data*mesh.fsdp)."""
  require(batch_size % data_parallel == 0,
          f'{field}={batch_size} is not divisible by the {data_parallel} data-parallel devices '
          f'(mesh.data*mesh.fsdp). Use a multiple of {data_parallel}.')


def prng_impl(choice: str, platform: str) -> str:
  """jax's PRNG implementation for `train.prng_impl=choice` on `platform`, e.g. 'threefry2x32'."""
  check_choice('config.train.prng_impl', choice, ('auto', *PRNG_IMPLS))
  if choice == 'auto':
    choice = AUTO_PRNG_IMPL.get(platform, 'threefry')
  return PRNG_IMPLS[choice]


# ---- The whole pre-training config ---------------------------------------------------------------

def check_config(config: ml_collections.ConfigDict) -> None:
  """Every rule of a full pre-training config that needs neither files nor devices."""
  validate_model_config(config.model)
  e, t = config.electra, config.train
  require(e.temperature > 0, f'config.electra.temperature={e.temperature} must be > 0.')
  check_choice('config.electra.sampler', e.sampler, schema.SAMPLERS)
  check_choice('config.electra.embedding_sharing', e.embedding_sharing,
               schema.EMBEDDING_SHARING)
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
  prng_impl(t.prng_impl, 'cpu')  # checks the choice
  for field in ('train.max_consecutive_nonfinite', 'train.restart_from_step',
                'data.skip_batches'):
    section, name = field.split('.')
    value = config[section][name]
    require(value >= 0, f'config.{field}={value} must be >= 0.')
  require(t.grad_accum_steps >= 1 and t.batch_size % t.grad_accum_steps == 0,
          f'config.train.grad_accum_steps={t.grad_accum_steps} must divide '
          f'config.train.batch_size={t.batch_size}.')


def check_placement(config: ml_collections.ConfigDict, mesh, process_count: int) -> None:
  """The batch and the networks against the hosts and the resolved mesh (a
  `parallel.mesh.MeshShape`, not imported: this module stays jax-free)."""
  t = config.train
  per_host_batch_size(t.batch_size, process_count)
  check_data_parallel_batch(
      'config.train.batch_size' if t.grad_accum_steps == 1 else
      f'the micro-batch (config.train.batch_size={t.batch_size} / grad_accum_steps='
      f'{t.grad_accum_steps})', t.batch_size // t.grad_accum_steps, mesh.data_parallel)
  # The generator is small: dimensions the mesh cannot divide are replicated
  # (sharding.param_shardings); the discriminator's must divide.
  require(config.model.num_heads % mesh.tensor == 0,
          f'config.mesh.tensor={mesh.tensor} does not divide config.model.num_heads='
          f'{config.model.num_heads}. Use a tensor size that divides the head count.')
  require(config.model.intermediate_size % mesh.tensor == 0,
          f'config.mesh.tensor={mesh.tensor} does not divide config.model.intermediate_size='
          f'{config.model.intermediate_size}.')
  for field in ('hidden_size', 'embedding_size'):
    require(config.model[field] % mesh.fsdp == 0,
            f'config.mesh.fsdp={mesh.fsdp} does not divide config.model.{field}='
            f'{config.model[field]}, which FSDP shards. Use an fsdp size that divides it.')

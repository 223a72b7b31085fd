"""What a config may choose for what `core` builds, by name, and the one rule the model's inputs
must meet.

Jax-free, so that `spec.validate` checks a config before jax (or anything heavy) is imported;
`core.model` and `core.objective` map each name to what it builds, and the model applies the
rule at trace time.
"""

from electra_jax.errors import UserError

# Compute dtypes (`model.dtype`); parameters and optimizer state stay float32. float16 is not
# offered: nothing here scales the loss, which float16's narrow range would need.
DTYPES = ('float32', 'bfloat16')
PARAM_DTYPES = ('float32',)
REMAT = ('none', 'full', 'dots')  # model.remat: nothing, whole layers, all but the matmul outputs
# How the generator and the discriminator share embedding tables (`electra.embedding_sharing`):
# one set of tables, shared tables plus a discriminator delta (GDES), or each its own.
EMBEDDING_SHARING = ('shared', 'gdes', 'none')
SAMPLERS = ('gumbel', 'inverse_cdf')  # electra.sampler; see configs/default.py


def check_sequence_fits(length: int, model_config,
                        field: str = 'config.data.max_seq_length') -> None:
  """A sequence of `length` tokens must fit the model's position table."""
  if length > model_config.max_position_embeddings:
    raise UserError(
        f'{field}={length} exceeds config.model.max_position_embeddings='
        f'{model_config.max_position_embeddings}. Shorten the sequences or use a model with a '
        'larger position table.')

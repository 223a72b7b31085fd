"""ELECTRA's generator and discriminator: BERT-style post-LayerNorm encoders in Flax Linen.

Parameter layout of one network (mirrors the Hugging Face port, so that converting is a renaming):

  embeddings/{word_embeddings [vocab, E], position_embeddings [positions, E],
              token_type_embeddings [types, E], LayerNorm/{scale, bias} [E]}
  embeddings_project/{kernel [E, H], bias}                 only when E != H
  encoder/layer_{i}/...       or, with `scan_layers`, encoder/layers/... stacked on a leading axis
    attention/{query, key, value}/{kernel [H, heads, head_dim], bias [heads, head_dim]}
    attention/output/{kernel [heads, head_dim, H], bias [H]}, attention_LayerNorm/{scale, bias}
    intermediate/{kernel [H, ffn], bias}, output/{kernel [ffn, H], bias}, output_LayerNorm/...
  discriminator_predictions/{dense [H, H], dense_prediction [H, 1]}               (Discriminator)
  generator_predictions/{dense [H, E], LayerNorm}, generator_lm_head/bias [vocab]  (Generator)

Every bias is a leaf named `bias` and every LayerNorm scale a leaf named `scale` (what weight decay
skips). Parameters are float32 and carry logical axis names ('vocab', 'embed', 'mlp', 'heads', 'kv';
'layers' for the scanned axis, which no rule shards); compute runs in `config.dtype`, while softmax
and the returned logits are float32.

The jointly trained `ElectraPretrainer` holds the embedding tables once (`shared_embeddings`) for
both networks, as the original does; `param_trees.split_params` / `merge_params` convert between
its tree and standalone `Discriminator` / `Generator` trees.
"""

from typing import Any

import flax.linen as nn
import jax
import jax.numpy as jnp
import ml_collections

from electra_jax.core import draws
from electra_jax.core import schema
from electra_jax.errors import UserError
from electra_jax.parallel import sharding

# The names a config may choose are in `core.choices` (checked, with the field named, by
# `spec.validate`); here, what each builds.
_REMAT_POLICIES = {
    'full': None,  # save nothing, recompute the whole layer
    'dots': jax.checkpoint_policies.dots_with_no_batch_dims_saveable,  # keep dense outputs
}
assert ('none', *_REMAT_POLICIES) == schema.REMAT


def compute_dtype(name: str) -> Any:
  """The jnp dtype of `config.model.dtype` (one of `schema.DTYPES`)."""
  return getattr(jnp, name)


# The original builds `embeddings_project`, the discriminator's final dense(1) and every
# fine-tuning head with `tf.layers.dense` and no `kernel_initializer`, i.e. TF's default
# Glorot-uniform (limit sqrt(6 / (fan_in + fan_out))); every other weight is truncated normal.
GLOROT_UNIFORM = nn.initializers.glorot_uniform()


class Dense(nn.Module):
  """Dense layer over the last `contract_dims` input dims, to `features` (int or tuple).

  The kernel is created in its final [*in_dims, *features] shape: Flax's `DenseGeneral` creates a
  flat kernel first, whose sharding constraint then has the wrong rank. `kernel_init` defaults to
  truncated normal with `config.initializer_range` (use `GLOROT_UNIFORM` where the original
  leaves TF's default); 2-D kernels only for Glorot, whose fans are the last two axes.
  """
  config: ml_collections.ConfigDict
  features: int | tuple[int, ...]
  kernel_axes: tuple[str | None, ...]
  contract_dims: int = 1
  kernel_init: Any = None

  @nn.compact
  def __call__(self, x):
    features = self.features if isinstance(self.features, tuple) else (self.features,)
    in_shape = x.shape[x.ndim - self.contract_dims:]
    kernel_init = (self.kernel_init if self.kernel_init is not None else
                   nn.initializers.truncated_normal(self.config.initializer_range))
    kernel = self.param('kernel', sharding.partitioned(kernel_init, self.kernel_axes),
                        in_shape + features, jnp.float32)
    bias = self.param('bias', sharding.partitioned(nn.initializers.zeros_init(),
                                           self.kernel_axes[self.contract_dims:]),
                      features, jnp.float32)
    dtype = compute_dtype(self.config.dtype)
    contract = (tuple(range(x.ndim - self.contract_dims, x.ndim)), tuple(range(self.contract_dims)))
    y = jax.lax.dot_general(x.astype(dtype), kernel.astype(dtype), (contract, ((), ())))
    return y + bias.astype(dtype)


def _dense(config, features, kernel_axes, name, contract_dims=1, kernel_init=None):
  return Dense(config, features, kernel_axes, contract_dims, kernel_init, name=name)


def _layer_norm(config, name):
  return nn.LayerNorm(
      epsilon=config.layer_norm_eps, dtype=compute_dtype(config.dtype), param_dtype=jnp.float32,
      scale_init=sharding.partitioned(nn.initializers.ones_init(), ('embed',)),
      bias_init=sharding.partitioned(nn.initializers.zeros_init(), ('embed',)), name=name)


def gelu(x):
  """BERT/ELECTRA's exact GELU, x * Phi(x), written with erf.

  `nn.gelu(approximate=False)` computes the same function through erfc, which XLA's CPU backend
  expands into a much slower exp-and-branches sequence (2.6x on a train step's FFN activations).
  """
  return 0.5 * x * (1.0 + jax.lax.erf(x * (2.0 ** -0.5)))


class _LayerNormParams(nn.Module):
  """Only the parameters of a LayerNorm ({scale, bias}), for `EmbeddingTables`."""
  size: int
  zeros: bool = False

  @nn.compact
  def __call__(self):
    scale_init = nn.initializers.zeros_init() if self.zeros else nn.initializers.ones_init()
    part = lambda init: sharding.partitioned(init, ('embed',))
    return {'scale': self.param('scale', part(scale_init), (self.size,), jnp.float32),
            'bias': self.param('bias', part(nn.initializers.zeros_init()), (self.size,),
                               jnp.float32)}


class EmbeddingTables(nn.Module):
  """Declares the word/position/token-type tables and the embedding LayerNorm; returns them.

  Returning the tables (rather than applying them) lets one set serve both networks, and lets
  GDES build the discriminator's `stop_gradient(shared) + delta`. `zeros=True` makes the GDES delta.
  """
  config: ml_collections.ConfigDict
  zeros: bool = False

  @nn.compact
  def __call__(self) -> dict[str, Any]:
    c = self.config
    base_init = (nn.initializers.zeros_init() if self.zeros else
                 nn.initializers.truncated_normal(c.initializer_range))
    table = lambda name, rows, axes: self.param(
        name, sharding.partitioned(base_init, axes), (rows, c.embedding_size), jnp.float32)
    return {
        'word_embeddings': table('word_embeddings', c.vocab_size, ('vocab', 'embed')),
        'position_embeddings': table('position_embeddings', c.max_position_embeddings,
                                     (None, 'embed')),
        'token_type_embeddings': table('token_type_embeddings', c.type_vocab_size,
                                       (None, 'embed')),
        'LayerNorm': _LayerNormParams(c.embedding_size, self.zeros, name='LayerNorm')(),
    }


def embed(config, tables, input_ids, token_type_ids):
  """Sum of the three lookups, then LayerNorm in float32: [batch, length] -> [batch, length, E]."""
  length = input_ids.shape[1]
  schema.check_sequence_fits(length, config, 'the input sequence length')
  # FSDP shards the tables' embedding axis. Gather them whole before the lookups, as FSDP does for
  # every weight; otherwise XLA looks up sharded rows and then replicates the activations to
  # re-split them by batch ("involuntary full rematerialization").
  whole = {name: sharding.constrain(tables[name], (None, None))
           for name in ('word_embeddings', 'token_type_embeddings', 'position_embeddings')}
  with jax.named_scope('embeddings'):  # scopes name the ops in benchmarks/bench_train_step.py
    x = (jnp.take(whole['word_embeddings'], input_ids, axis=0)
         + jnp.take(whole['token_type_embeddings'], token_type_ids, axis=0)
         + whole['position_embeddings'][None, :length])
  with jax.named_scope('embeddings_LayerNorm'):
    mean = jnp.mean(x, axis=-1, keepdims=True)
    var = jnp.mean(jnp.square(x - mean), axis=-1, keepdims=True)
    x = (x - mean) * jax.lax.rsqrt(var + config.layer_norm_eps)
    x = x * tables['LayerNorm']['scale'] + tables['LayerNorm']['bias']
  x = x.astype(compute_dtype(config.dtype))
  return sharding.constrain(x, ('batch', 'length', 'act_embed'))


_MASK_RESOLUTION = 1 << 16  # each 16 random bits decide one dropout mask


def dropout_keep_mask(rng: jax.Array, keep_prob: float, shape) -> tuple[jax.Array, float]:
  """(keep mask of `shape`, the keep probability it was drawn with), from 16 random bits each.

  `jax.random.bernoulli` hashes a whole threefry block (64 bits) per element and turns 23 of its
  bits into a float; here each 32-bit word of `draws.block_words` decides two neighbouring
  elements of the last axis (four per threefry block), compared as integers: a quarter of the
  hashing and no float conversion. The keep probability is quantised to 1/65536
  (0.9 -> 0.8999939), and returned so that the caller rescales by exactly it.
  """
  threshold = round(keep_prob * _MASK_RESOLUTION)
  lanes = 2 * draws.words_per_block(rng)
  groups = (*shape[:-1], -(-shape[-1] // lanes))
  halves = [half for word in draws.block_words(rng, groups) for half in (word & 0xFFFF, word >> 16)]
  keep = draws.interleave([half < jnp.uint32(threshold) for half in halves], shape[-1])
  return keep, threshold / _MASK_RESOLUTION


class Dropout(nn.Module):
  """Inverted dropout (`nn.Dropout`'s math: keep with probability 1 - rate, scale by 1/keep) with
  `dropout_keep_mask`'s cheaper draws."""
  rate: float

  @nn.compact
  def __call__(self, x, deterministic: bool):
    if deterministic or self.rate == 0.0:
      return x
    keep, keep_prob = dropout_keep_mask(self.make_rng('dropout'), 1.0 - self.rate, x.shape)
    return jnp.where(keep, x / keep_prob, jnp.zeros_like(x))


class SelfAttention(nn.Module):
  """Multi-head self-attention with a padding mask; softmax in float32."""
  config: ml_collections.ConfigDict

  @nn.compact
  def __call__(self, hidden, attention_mask, deterministic):
    c = self.config
    head_dim = c.hidden_size // c.num_heads
    qkv = [
        sharding.constrain(
            _dense(c, (c.num_heads, head_dim), ('embed', 'heads', 'kv'), name)(hidden),
            ('batch', 'length', 'act_heads', None)) for name in ('query', 'key', 'value')
    ]
    mask = attention_mask[:, None, None, :].astype(bool)  # [batch, 1, 1, key_length]
    if deterministic or c.attention_dropout_prob == 0.0:
      # XLA's fused attention (logits and softmax in float32, probabilities cast back).
      context = jax.nn.dot_product_attention(*qkv, mask=mask)
    else:
      # jax.nn.dot_product_attention has no dropout on the probabilities; same math spelled out.
      query, key, value = qkv
      logits = jnp.einsum('btnh,bsnh->bnts', query, key, preferred_element_type=jnp.float32)
      logits = jnp.where(mask, logits * head_dim**-0.5, jnp.finfo(jnp.float32).min)
      probs = Dropout(c.attention_dropout_prob)(jax.nn.softmax(logits, axis=-1),
                                                deterministic=False)
      context = jnp.einsum('bnts,bsnh->btnh', probs.astype(value.dtype), value)
    context = sharding.constrain(context, ('batch', 'length', 'act_heads', None))
    return _dense(c, c.hidden_size, ('heads', 'kv', 'embed'), 'output', contract_dims=2)(context)


class TransformerLayer(nn.Module):
  """Post-LayerNorm BERT block: attention + residual + LN, GELU FFN + residual + LN."""
  config: ml_collections.ConfigDict

  @nn.compact
  def __call__(self, hidden, attention_mask, deterministic):
    c = self.config
    dropout = lambda x: Dropout(c.hidden_dropout_prob)(x, deterministic=deterministic)
    attended = SelfAttention(c, name='attention')(hidden, attention_mask, deterministic)
    hidden = _layer_norm(c, 'attention_LayerNorm')(dropout(attended) + hidden)
    hidden = sharding.constrain(hidden, ('batch', 'length', 'act_embed'))
    inner = gelu(_dense(c, c.intermediate_size, ('embed', 'mlp'), 'intermediate')(hidden))
    inner = sharding.constrain(inner, ('batch', 'length', 'act_mlp'))
    out = _dense(c, c.hidden_size, ('mlp', 'embed'), 'output')(inner)
    hidden = _layer_norm(c, 'output_LayerNorm')(dropout(out) + hidden)
    return sharding.constrain(hidden, ('batch', 'length', 'act_embed'))


class _ScannedLayer(TransformerLayer):
  """`TransformerLayer` in `nn.scan`'s (carry, x) -> (carry, y) form."""

  def __call__(self, hidden, attention_mask, deterministic):
    return super().__call__(hidden, attention_mask, deterministic), None


class Encoder(nn.Module):
  """The stack of `num_layers` transformer blocks: [batch, length, H] -> [batch, length, H]."""
  config: ml_collections.ConfigDict

  @nn.compact
  def __call__(self, hidden, attention_mask, deterministic):
    c = self.config
    layer_cls = _ScannedLayer if c.scan_layers else TransformerLayer
    if c.remat != 'none':
      # Argument 0 is the module itself, so `deterministic` (a Python bool) is argument 3.
      layer_cls = nn.remat(layer_cls, policy=_REMAT_POLICIES[c.remat], static_argnums=(3,),
                    prevent_cse=not c.scan_layers)
    if c.scan_layers:
      scanned = nn.scan(
          layer_cls, variable_axes={'params': 0}, split_rngs={'params': True, 'dropout': True},
          in_axes=(nn.broadcast, nn.broadcast), length=c.num_layers,
          metadata_params={nn.PARTITION_NAME: 'layers'})
      hidden, _ = scanned(c, name='layers')(hidden, attention_mask, deterministic)
      return hidden
    for i in range(c.num_layers):
      hidden = layer_cls(c, name=f'layer_{i}')(hidden, attention_mask, deterministic)
    return hidden


def tables_or_own(config, tables):
  """`tables` when the pretrainer passes shared ones, else the calling network's own `embeddings`.

  Called from a compact `__call__`, so the own `EmbeddingTables` is a submodule of that network.
  """
  return EmbeddingTables(config, name='embeddings')() if tables is None else tables


def encode(module, config, tables, input_ids, token_type_ids, attention_mask, deterministic):
  """Embeddings (+ dropout, + E->H projection when E != H) and the encoder, inside `module`.

  Returns the final hidden states [batch, length, H]. Called from a compact `__call__`, it puts
  `embeddings_project` and `encoder` params directly in `module`, so any task model built as
  `tables = EmbeddingTables(c, name='embeddings')(); hidden = encode(self, c, tables, ...)` shares
  the discriminator's parameter layout (fine-tuning heads live next to it).
  """
  hidden = embed(config, tables, input_ids, token_type_ids)
  hidden = Dropout(config.hidden_dropout_prob)(hidden, deterministic=deterministic)
  if config.embedding_size != config.hidden_size:
    hidden = _dense(config, config.hidden_size, (None, 'embed'), 'embeddings_project',
                    kernel_init=GLOROT_UNIFORM)(hidden)
  hidden = sharding.constrain(hidden, ('batch', 'length', 'act_embed'))
  return Encoder(config, name='encoder')(hidden, attention_mask, deterministic)


class DiscriminatorHead(nn.Module):
  """dense(H->H) + GELU + dense(H->1): [batch, length, H] -> float32 logits [batch, length].

  As the original's `_get_discriminator_output`: the first dense is truncated normal, the
  final dense(1) Glorot-uniform (TF's default).
  """
  config: ml_collections.ConfigDict

  @nn.compact
  def __call__(self, hidden):
    c = self.config
    hidden = gelu(_dense(c, c.hidden_size, ('embed', 'mlp'), 'dense')(hidden))
    # [H, 1]: split over fsdp by its rows, since TPU pads its single column to 128 lanes whole.
    logits = _dense(c, 1, ('embed', None), 'dense_prediction', kernel_init=GLOROT_UNIFORM)(hidden)
    return logits[..., 0].astype(jnp.float32)


class GeneratorHead(nn.Module):
  """dense(H->E) + GELU + LayerNorm(E), applied to the gathered masked positions only."""
  config: ml_collections.ConfigDict

  @nn.compact
  def __call__(self, hidden):
    c = self.config
    hidden = gelu(_dense(c, c.embedding_size, ('embed', None), 'dense')(hidden))
    return _layer_norm(c, 'LayerNorm')(hidden)


@jax.custom_vjp
def _tied_projection(hidden, table, bias):
  return jnp.einsum('...e,ve->...v', hidden, table, preferred_element_type=jnp.float32) + bias


def _tied_projection_fwd(hidden, table, bias):
  return _tied_projection(hidden, table, bias), (hidden, table)


def _tied_projection_bwd(residuals, grad):
  """Autodiff's gradients, formulated for XLA:CPU: autodiff's table gradient contracts the
  [..., vocab] cotangent over its major axes, which XLA:CPU runs after a transposing copy of the
  whole cotangent, and its bias gradient is a column-sum reduction that ran ~10x slower than the
  same sum as a matrix-vector product (Small: 31.9 against 2.9 ms alone; `--profile_dir` of
  `benchmarks/bench_train_step.py` shows both in the step)."""
  hidden, table = residuals
  rows = grad.reshape(-1, grad.shape[-1])  # [positions, vocab]
  d_hidden = jnp.einsum('...v,ve->...e', grad, table, preferred_element_type=jnp.float32)
  # [E, vocab] keeps vocab on the minor axis, as the cotangent has it; its transpose is small.
  d_table = jnp.einsum('ne,nv->ev', hidden.reshape(-1, hidden.shape[-1]), rows,
                       preferred_element_type=jnp.float32).T
  d_bias = jnp.einsum('n,nv->v', jnp.ones(rows.shape[:1], rows.dtype), rows,
                      precision=jax.lax.Precision.HIGHEST)
  return d_hidden.astype(hidden.dtype), d_table.astype(table.dtype), d_bias


_tied_projection.defvjp(_tied_projection_fwd, _tied_projection_bwd)


def tied_output_logits(config, hidden, tables, bias):
  """float32 vocabulary logits [..., vocab] of `hidden` [..., E]: the projection tied to the word
  table (`tables['word_embeddings']`), in the compute dtype, plus the head's own float32 bias."""
  dtype = compute_dtype(config.dtype)
  return _tied_projection(hidden.astype(dtype), tables['word_embeddings'].astype(dtype), bias)


class OutputBias(nn.Module):
  """The generator's own output bias [vocab] (its projection is tied to the word table)."""
  vocab_size: int

  @nn.compact
  def __call__(self):
    return self.param('bias', sharding.partitioned(nn.initializers.zeros_init(),
                                                           ('vocab',)),
                      (self.vocab_size,), jnp.float32)


class Discriminator(nn.Module):
  """Replaced-token detector: one logit per position, [batch, length] float32.

  `embedding_tables` (from `EmbeddingTables`) replaces the network's own `embeddings` params;
  the pretrainer passes the shared tables this way.
  """
  config: ml_collections.ConfigDict
  reads_positions = False  # (a class attribute) its call takes no masked_lm_positions

  @nn.compact
  def __call__(self, input_ids, token_type_ids, attention_mask, deterministic: bool = True,
               embedding_tables=None):
    c = self.config
    embedding_tables = tables_or_own(c, embedding_tables)
    hidden = encode(self, c, embedding_tables, input_ids, token_type_ids, attention_mask,
                    deterministic)
    return DiscriminatorHead(c, name='discriminator_predictions')(hidden)


class Generator(nn.Module):
  """Masked LM evaluated only at `masked_lm_positions`: logits [batch, num_positions, vocab].

  Gathers the final hidden states at the positions first, then dense(H->E) + GELU + LayerNorm and
  the projection tied to the word-embedding table plus an own bias, so it never computes
  full-vocabulary logits at every position.
  """
  config: ml_collections.ConfigDict
  reads_positions = True  # (a class attribute) it predicts at masked_lm_positions

  @nn.compact
  def __call__(self, input_ids, token_type_ids, attention_mask, masked_lm_positions,
               deterministic: bool = True, embedding_tables=None):
    c = self.config
    embedding_tables = tables_or_own(c, embedding_tables)
    hidden = encode(self, c, embedding_tables, input_ids, token_type_ids, attention_mask,
                    deterministic)
    hidden = jnp.take_along_axis(hidden, masked_lm_positions[..., None], axis=1)
    hidden = GeneratorHead(c, name='generator_predictions')(hidden)  # [batch, positions, E]
    logits = tied_output_logits(c, hidden, embedding_tables,
                                OutputBias(c.vocab_size, name='generator_lm_head')())
    return sharding.constrain(logits, ('batch', None, 'act_vocab'))


def discriminator_tables(pretrainer: nn.Module, embedding_sharing: str):
  """The tables the discriminator reads from a pretrainer's `shared_embeddings` (and, for 'gdes',
  `embeddings_delta`): None for 'none' (its own), `stop_gradient(shared) + delta` for 'gdes'."""
  if embedding_sharing == 'none':
    return None
  if embedding_sharing == 'gdes':
    return jax.tree.map(lambda shared, delta: jax.lax.stop_gradient(shared) + delta,
                        pretrainer.shared_embeddings(), pretrainer.embeddings_delta())
  return pretrainer.shared_embeddings()


class ElectraPretrainer(nn.Module):
  """The jointly trained networks of every objective: a main network, the generator when the
  objective has one, and the original's embedding sharing between them.

  main_network: the class of the network that is kept and fine-tuned, built from `disc_config`
    as the `discriminator` subtree: `Discriminator` for ELECTRA, a masked LM for the paper's
    comparison objectives (`electra_jax.core.objectives` chooses).
  gen_config: the generator's config; None for an objective without one (its main network then
    holds its own `embeddings`).
  embedding_sharing:
    'shared': one set of word/position/token-type tables + embedding LayerNorm
      (`shared_embeddings`) used by both networks; the generator's output projection is tied to it.
    'gdes': DeBERTa-v3's gradient-disentangled sharing. The generator uses `shared_embeddings`; the
      discriminator uses `stop_gradient(shared) + delta` for every table and the LayerNorm, with
      `embeddings_delta` initialised to zero, so the RTD loss never pulls on the shared tables.
    'none': the original's `untied_generator_embeddings`: each network has its own `embeddings`,
      the generator's H_gen wide (no projection), its output projection tied to its own table.
  Joint tree: {'generator': ..., 'discriminator': ..., ['shared_embeddings'], ['embeddings_delta']},
  where the two network subtrees lack `embeddings` unless sharing is 'none'.
  """
  disc_config: ml_collections.ConfigDict
  gen_config: ml_collections.ConfigDict | None
  embedding_sharing: str = 'shared'
  main_network: type[nn.Module] = Discriminator

  def setup(self):
    if self.gen_config is not None and self.embedding_sharing != 'none':
      for field in ('vocab_size', 'embedding_size', 'max_position_embeddings', 'type_vocab_size'):
        if self.disc_config[field] != self.gen_config[field]:
          raise UserError(f'shared embeddings need equal {field} in both networks, got '
                          f'{self.disc_config[field]} and {self.gen_config[field]}.')
      self.shared_embeddings = EmbeddingTables(self.disc_config)
      if self.embedding_sharing == 'gdes':
        self.embeddings_delta = EmbeddingTables(self.disc_config, zeros=True)
    if self.gen_config is not None:
      self.generator = Generator(self.gen_config)
    self.discriminator = self.main_network(self.disc_config)

  def _generator_tables(self):
    return None if self.embedding_sharing == 'none' else self.shared_embeddings()

  def _discriminator_tables(self):
    if self.gen_config is None:  # nothing to share with: the main network's own tables
      return None
    return discriminator_tables(self, self.embedding_sharing)

  def generator_logits(self, input_ids, token_type_ids, attention_mask, masked_lm_positions,
                       deterministic: bool = True):
    """[batch, num_positions, vocab] float32 logits at `masked_lm_positions`."""
    return self.generator(input_ids, token_type_ids, attention_mask, masked_lm_positions,
                          deterministic, embedding_tables=self._generator_tables())

  def discriminator_logits(self, input_ids, token_type_ids, attention_mask,
                           deterministic: bool = True):
    """[batch, length] float32 replaced-token logits (a `Discriminator` main network)."""
    return self.discriminator(input_ids, token_type_ids, attention_mask, deterministic,
                              embedding_tables=self._discriminator_tables())

  def main_outputs(self, input_ids, token_type_ids, attention_mask, masked_lm_positions,
                   deterministic: bool = True):
    """The main network's outputs, whatever it is (a masked LM reads `masked_lm_positions`)."""
    if self.main_network.reads_positions:
      return self.discriminator(input_ids, token_type_ids, attention_mask, masked_lm_positions,
                                deterministic, embedding_tables=self._discriminator_tables())
    return self.discriminator(input_ids, token_type_ids, attention_mask, deterministic,
                              embedding_tables=self._discriminator_tables())

  def __call__(self, input_ids, token_type_ids, attention_mask, masked_lm_positions,
               deterministic: bool = True):
    """Every network on the same input (used to initialise every parameter)."""
    main = self.main_outputs(input_ids, token_type_ids, attention_mask, masked_lm_positions,
                             deterministic)
    if self.gen_config is None:
      return main
    return (self.generator_logits(input_ids, token_type_ids, attention_mask, masked_lm_positions,
                                  deterministic), main)


def init_pretrainer_params(model: ElectraPretrainer, rng: jax.Array, max_seq_length: int,
                    max_predictions: int):
  """Initial joint params, still boxed in `nn.Partitioned` with logical axis names.

  Traceable: use under `jax.eval_shape` to get the logical partition specs, then under `jax.jit`
  with `out_shardings` to create the params sharded.
  """
  ids = jnp.ones((1, max_seq_length), jnp.int32)
  positions = jnp.zeros((1, max_predictions), jnp.int32)
  return model.init({'params': rng}, ids, ids * 0, ids, positions, deterministic=True)['params']

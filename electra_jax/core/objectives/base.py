"""The interface every pre-training objective implements (`electra_jax.core.objectives`).

An objective is a stateless object, resolved once from `config.electra.objective` when the run
spec is loaded (`spec.run.load`: `RunSpec.objective`). Methods that need a run's derived values
take that spec. Everything that differs between objectives is said here, once:

  networks      `has_generator`, `main_network` (the model class of the network that is kept and
                fine-tuned) and `build_model` (one `model.ElectraPretrainer` for all of them).
  masking       `masking_probs`: what a masked position holds ([MASK], random, kept).
  loss          `loss` (the jitted step's) = the shared generator step
                (`objective.generator_step`) + `main_loss`, the main network's part.
  metrics       `summarize`: summed stats -> the logged metrics.
  FLOPs         `forward_flops_per_token`, for MFU and the equal-compute comparison.
  export        `main_export`: the main network as 'discriminator' (ElectraForPreTraining) or
                'masked_lm' (ElectraForMaskedLM); `hf_networks` lists what an export writes.
  inspection    `detector`: how the replaced-token inspector reads P(replaced) from the main
                network ('discriminator': sigmoid of its logit; 'copy_gate': 1 - the copy
                probability), or None when the main network detects nothing.
"""

from __future__ import annotations

from typing import Any, ClassVar

import flax.linen as nn
import jax
import jax.numpy as jnp
import ml_collections

from electra_jax.core import flops as flops_lib
from electra_jax.core import model as model_lib
from electra_jax.core import objective
from electra_jax.core import param_trees

EXPORTS = ('discriminator', 'masked_lm')
DETECTORS = ('discriminator', 'copy_gate', None)


def ratio(num, den):
  """num / den, 0 where den is 0 (an empty eval set or micro-batch)."""
  return jnp.where(den > 0, num / jnp.maximum(den, 1e-12), 0.0)


def lm_metrics(stats: dict[str, Any], prefix: str) -> dict[str, jax.Array]:
  """`{prefix}_accuracy` and `{prefix}_loss` of a masked LM's summed `objective.lm_stats`."""
  return {f'{prefix}_accuracy': ratio(stats[f'{prefix}_correct'], stats[f'{prefix}_count']),
          f'{prefix}_loss': ratio(stats[f'{prefix}_loss_sum'], stats[f'{prefix}_count'])}


def no_token_counts(vocab_size: int) -> dict[str, jax.Array]:
  """Empty per-token counts for a run with no detector: the loop's token reference stays uniform."""
  return {k: jnp.zeros((vocab_size,), jnp.float32) for k in objective.TOKEN_COUNT_KEYS}


class Objective:
  """One pre-training objective. Subclasses set the class attributes and `main_loss`."""
  name: ClassVar[str]
  has_generator: ClassVar[bool] = True
  main_network: ClassVar[type[nn.Module]] = model_lib.Discriminator
  main_export: ClassVar[str] = 'discriminator'
  detector: ClassVar[str | None] = 'discriminator'

  def __repr__(self):
    return f'<objective {self.name}>'

  # ---- Networks -----------------------------------------------------------------------------

  def build_model(self, spec) -> model_lib.ElectraPretrainer:
    """The joint model this objective trains, from a `RunSpec`'s networks (`discriminator` is
    the main network, `generator` None when the objective has none)."""
    return model_lib.ElectraPretrainer(spec.discriminator, spec.generator, spec.embedding_sharing,
                                       self.main_network)

  def split_params(self, joint_params, embedding_sharing: str) -> dict[str, Any]:
    """Joint params -> {'discriminator': the main network's standalone tree (its own
    `embeddings`), 'generator': the generator's, or None}."""
    if not self.has_generator:  # the main network already holds its own tables
      return {'discriminator': dict(nn.meta.unbox(joint_params)['discriminator']),
              'generator': None}
    return param_trees.split_params(joint_params, embedding_sharing)

  def merge_params(self, main, generator, embedding_sharing: str) -> dict[str, Any]:
    """The inverse of `split_params`: standalone trees -> the joint tree (unscanned layers)."""
    if not self.has_generator:
      return {'discriminator': main}
    return param_trees.merge_params(main, generator, embedding_sharing)

  def hf_networks(self, networks: dict[str, Any]) -> list[tuple[str, str, Any]]:
    """[(directory, hf.py architecture, params)] a Hugging Face export writes. A masked-LM main
    network goes to 'masked_lm' as `ElectraForMaskedLM`, without any head no HF class holds."""
    main = networks['discriminator']
    if self.main_export == 'discriminator':
      out = [('discriminator', 'discriminator', main)]
    else:
      out = [('masked_lm', 'generator',
              {k: v for k, v in main.items() if k != 'discriminator_predictions'})]
    if networks.get('generator') is not None:
      out.append(('generator', 'generator', networks['generator']))
    return out

  # ---- Masking, loss and metrics ------------------------------------------------------------

  def masking_probs(self, data_config: ml_collections.ConfigDict) -> tuple[float, float]:
    """(mask_token_prob, random_token_prob) the batches are masked with (`config.data`'s own,
    unless the objective prescribes its own)."""
    return data_config.mask_token_prob, data_config.random_token_prob

  def loss(self, model, params, batch: dict[str, jax.Array], *, sample_rng: jax.Array,
           dropout_rng: jax.Array | None, deterministic: bool,
           electra_config: ml_collections.ConfigDict, normalizers: tuple[Any, Any] | None = None,
           compute_auc: bool = True) -> tuple[jax.Array, dict[str, jax.Array]]:
    """(total loss, summed stats), with `objective.pretraining_loss`'s interface: normalisers
    are (used mask slots, real tokens) of the full batch, so micro-batches add up."""
    objective.check_sample_keys(sample_rng, batch)
    if normalizers is None:
      normalizers = objective.loss_normalizers(batch)
    num_slots = jnp.maximum(jnp.asarray(normalizers[0], jnp.float32), 1.0)
    num_tokens = jnp.maximum(jnp.asarray(normalizers[1], jnp.float32), 1.0)
    gen_rngs, main_rngs = objective.dropout_rngs(dropout_rng, deterministic)
    variables = {'params': params}
    generated = (objective.generator_step(model, variables, batch, sample_rng, electra_config,
                                          gen_rngs, deterministic)
                 if self.has_generator else None)
    total, stats = self.main_loss(
        model, variables, batch, generated, rngs=main_rngs, deterministic=deterministic,
        electra_config=electra_config, num_slots=num_slots, num_tokens=num_tokens,
        compute_auc=compute_auc)
    return total, jax.lax.stop_gradient(stats)

  def main_loss(self, model, variables, batch, generated: objective.GeneratorStep | None, *,
                rngs, deterministic, electra_config, num_slots, num_tokens, compute_auc
                ) -> tuple[jax.Array, dict[str, jax.Array]]:
    """The whole loss and stats, given the generator's step (None without a generator)."""
    raise NotImplementedError

  def summarize(self, stats: dict[str, Any],
                token_reference: dict[str, Any] | None = None) -> dict[str, jax.Array]:
    """Summed stats -> metrics (`token_reference`: recent stats for the token-only AUC)."""
    return objective.summarize(stats, token_reference)

  # ---- Inspection ---------------------------------------------------------------------------

  def replaced_logits(self, main_outputs) -> jax.Array:
    """[batch, length] logits of P(replaced) from the main network's outputs, for the
    inspector (`detector` says what they are; only called when it is not None)."""
    return main_outputs

  # ---- FLOPs --------------------------------------------------------------------------------

  def forward_flops_per_token(self, spec) -> dict[str, float]:
    """Forward FLOPs per input token of a `RunSpec`: {'discriminator': the main network's,
    ['generator']}."""
    out = {'discriminator': flops_lib.encoder_forward_flops_per_token(spec.discriminator,
                                                                      spec.seq_length)
                            + self.main_head_flops_per_token(spec)}
    if self.has_generator:
      out['generator'] = flops_lib.generator_forward_flops_per_token(
          spec.generator, spec.seq_length, spec.masked_fraction)
    return out

  def main_head_flops_per_token(self, spec) -> float:
    return flops_lib.discriminator_head_flops_per_token(spec.discriminator)

  def train_flops_per_token(self, spec) -> float:
    """Training FLOPs per input token (every network, forward + backward: 3x forward)."""
    return 3.0 * sum(self.forward_flops_per_token(spec).values())

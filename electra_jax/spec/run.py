"""The run spec: a pre-training config resolved and checked once, when it is loaded.

  load(config[, num_devices, process_count]) -> RunSpec
      upgrades the config (`upgrade`), runs every check that needs no file (`validate`), and
      derives, once, what the rest of the code needs: the discriminator's and the generator's
      model configs, the objective, the masking, the mesh and its logical rules, the per-host
      and micro batches and the mask slots per sequence.
  upgrade(config) -> ConfigDict
      a config saved by an older version, with every field added since at its default: the one
      place where old runs are brought up to date.

Modules receive the frozen spec instead of re-deriving from the raw ConfigDict. The raw config
stays what users edit, override and save: `RunSpec.config` is that very object (the loop records
the resolved tokenizer in it and saves it with every checkpoint).

A spec loaded without `num_devices` (a tool reading a saved run) has no mesh.
"""

from __future__ import annotations

import dataclasses
from typing import Any

import ml_collections

from electra_jax.configs import default as default_config
from electra_jax.core import objectives
from electra_jax.core.objectives.base import Objective
from electra_jax.parallel.mesh import MeshShape
from electra_jax.spec import validate


@dataclasses.dataclass(frozen=True)
class Masking:
  """How the pipeline masks: `mask_prob` of the tokens, at most `max_predictions` per sequence;
  a chosen position holds [MASK] with `mask_token_prob`, a random token with
  `random_token_prob`, else itself (the objective's probabilities: BERT's 80/10/10 for 'mlm')."""
  mask_prob: float
  mask_token_prob: float
  random_token_prob: float
  max_predictions: int


@dataclasses.dataclass(frozen=True)
class RunSpec:
  """What a pre-training config means, derived once (`load`).

  Attributes:
    config: the raw config, upgraded: what users edit and what checkpoints save.
    objective: what is trained (`core.objectives`).
    discriminator: the main network's model config (`config.model`).
    generator: the generator's (`validate.generator_config`), or None when the objective has
      no generator.
    embedding_sharing: how the two share embedding tables.
    masking: the pipeline's masking.
    seq_length, batch_size: the global batch, [batch_size, seq_length] tokens.
    grad_accum_steps: micro-batches per step.
    process_count, host_batch_size: hosts, and the rows each one feeds.
    prng_choice: `train.prng_impl` as given ('auto' is resolved per platform: `prng_impl`).
    mesh: the resolved mesh and logical rules; None when loaded without a device count.
  """
  config: ml_collections.ConfigDict
  objective: Objective
  discriminator: ml_collections.FrozenConfigDict
  generator: ml_collections.FrozenConfigDict | None
  embedding_sharing: str
  masking: Masking
  seq_length: int
  batch_size: int
  grad_accum_steps: int
  process_count: int
  host_batch_size: int
  prng_choice: str
  mesh: MeshShape | None = None

  @property
  def electra(self) -> ml_collections.ConfigDict:
    """The objective's options (weights, temperature, sampler), as the loss reads them."""
    return self.config.electra

  @property
  def max_predictions(self) -> int:
    return self.masking.max_predictions

  @property
  def masked_fraction(self) -> float:
    """Mask slots per token: where a masked-LM head runs."""
    return self.masking.max_predictions / self.seq_length

  @property
  def micro_batch_size(self) -> int:
    return self.batch_size // self.grad_accum_steps

  def prng_impl(self, platform: str) -> str:
    """jax's PRNG implementation on `platform` (a TPU's in the compile check)."""
    return validate.prng_impl(self.prng_choice, platform)

  def train_flops_per_token(self) -> float:
    """Analytic training FLOPs per input token (the objective's networks and heads)."""
    return self.objective.train_flops_per_token(self)


def _merged(defaults: ml_collections.ConfigDict, given: Any) -> ml_collections.ConfigDict:
  """`defaults` with every field `given` sets; fields `given` lacks keep their default."""
  merged = ml_collections.ConfigDict(defaults.to_dict())
  for key, value in dict(given).items():
    if key in merged and isinstance(merged[key], ml_collections.ConfigDict) and isinstance(
        value, (dict, ml_collections.ConfigDict)):
      value = _merged(merged[key], value)
    with merged.ignore_type():
      merged[key] = value
  return merged


def upgrade(config: Any) -> ml_collections.ConfigDict:
  """A config (a ConfigDict, or the dict a checkpoint saved) with every field the schema
  (configs/default.py) has gained since it was written, at its default.

  A current config comes back unchanged in content, as the same object, so that the loop can
  still record the tokenizer in it. A run saved before a switch existed trained with that
  switch's default (e.g. `electra.objective='electra'`), so that is what it gains.
  """
  defaults = default_config.get_config()
  if isinstance(config, ml_collections.ConfigDict) and _has_every_field(config, defaults):
    return config
  return _merged(defaults, config.to_dict() if isinstance(config, ml_collections.ConfigDict)
                 else config)


def _has_every_field(config, defaults) -> bool:
  for key, value in defaults.items():
    if key not in config:
      return False
    if isinstance(value, ml_collections.ConfigDict) and not (
        isinstance(config[key], ml_collections.ConfigDict)
        and _has_every_field(config[key], value)):
      return False
  return True


def load(config: Any, *, num_devices: int | None = None, process_count: int = 1) -> RunSpec:
  """The run spec of a pre-training config (or a saved run's config dict), after every check
  that needs no file; with `num_devices`, also the mesh and the batch's fit on it.

  Raises:
    UserError: the first problem, naming the field and the fix.
  """
  config = upgrade(config)
  validate.check_config(config)
  objective = objectives.named(config.electra.objective)
  e, t, data = config.electra, config.train, config.data
  generator = (validate.generator_config(config.model, e.generator_hidden_fraction,
                                         e.embedding_sharing)
               if objective.has_generator else None)
  mesh = None
  if num_devices is not None:
    mesh = MeshShape.of(config.mesh, num_devices)
    validate.check_placement(config, mesh, process_count)
  mask_token_prob, random_token_prob = objective.masking_probs(data)
  return RunSpec(
      config=config, objective=objective,
      discriminator=ml_collections.FrozenConfigDict(config.model),
      generator=None if generator is None else ml_collections.FrozenConfigDict(generator),
      embedding_sharing=e.embedding_sharing,
      masking=Masking(data.mask_prob, mask_token_prob, random_token_prob,
                      validate.max_predictions_for(data.mask_prob, data.max_seq_length,
                                                   data.max_predictions_per_seq)),
      seq_length=data.max_seq_length, batch_size=t.batch_size,
      grad_accum_steps=t.grad_accum_steps, process_count=process_count,
      host_batch_size=validate.per_host_batch_size(t.batch_size, process_count),
      prng_choice=t.prng_impl, mesh=mesh)

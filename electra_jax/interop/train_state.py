"""The train state: what a checkpoint's `state/` item holds, for pre-training and fine-tuning.

It lives here, beside the checkpoints, so that conversion (`export.write_workdir`) can write a
resumable step-0 state without importing the trainer.
"""

from __future__ import annotations

from typing import Any

import flax
import jax
import jax.numpy as jnp
import optax


@flax.struct.dataclass
class TrainState:
  step: jax.Array  # int32 scalar: optimizer steps taken
  params: Any  # the joint generator + discriminator parameters (float32)
  opt_state: Any


def fresh(params: Any, tx: optax.GradientTransformation) -> TrainState:
  """Step 0 of `params`, with `tx`'s initial optimizer state."""
  return TrainState(step=jnp.zeros((), jnp.int32), params=params, opt_state=tx.init(params))

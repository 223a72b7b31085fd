"""The step's random draws in isolation: dropout masks and Gumbel-max sampling, old way and new.

  python benchmarks/bench_random.py [--rounds=15]

Interleaved rounds on the shapes of an ELECTRA-Small step at batch 32 x 128 (one layer's attention
probabilities [32, 4, 128, 128]; the generator's [32, 19, 30522] logits at the mask slots):
- dropout: `jax.random.bernoulli` + select (what `nn.Dropout` does) against `model.Dropout`'s
  `dropout_keep_mask` (four masks per threefry block);
- Gumbel-max: the noise plus `jnp.argmax` against the same noise plus `objective.first_argmax`,
  and the noise plus a plain sum (the floor: no argmax at all). The two argmaxes must agree.
- the noise's uniforms: `jax.random.uniform` (one threefry block each) against `draws.uniform`
  (both words of each block), summed.
Prints median and minimum milliseconds per call; asserts nothing but the agreement (timings on a
shared machine are noisy: compare the rows of one run).
"""

import time

from absl import app
from absl import flags
import jax
import jax.numpy as jnp
import numpy as np

from electra_jax.core import draws
from electra_jax.core import model
from electra_jax.core import objective

_ROUNDS = flags.DEFINE_integer('rounds', 15, 'Interleaved rounds.')


def main(argv):
  del argv
  jax.config.update('jax_threefry_partitionable', True)  # as training runs
  key = jax.random.key(0)
  probs = jax.random.uniform(jax.random.key(1), (32, 4, 128, 128))
  logits = jax.random.normal(jax.random.key(2), (32, 19, 30522))
  keys = jax.random.split(jax.random.key(3), 32)

  def bernoulli_dropout(k, x):
    return jnp.where(jax.random.bernoulli(k, 0.9, x.shape), x / 0.9, 0)

  def packed_dropout(k, x):
    keep, keep_prob = model.dropout_keep_mask(k, 0.9, x.shape)
    return jnp.where(keep, x / keep_prob, 0)

  perturbed = objective.gumbel_perturbed  # the sampler's logits + Gumbel noise
  cases = {
      'dropout [32,4,128,128]: random.bernoulli': (bernoulli_dropout, (key, probs)),
      'dropout [32,4,128,128]: dropout_keep_mask': (packed_dropout, (key, probs)),
      'gumbel-max [32,19,30522]: jnp.argmax': (
          lambda l, k: jnp.argmax(perturbed(l, k), -1).astype(jnp.int32), (logits, keys)),
      'gumbel-max [32,19,30522]: first_argmax': (
          lambda l, k: objective.first_argmax(perturbed(l, k)), (logits, keys)),
      'gumbel noise + sum (no argmax)': (lambda l, k: jnp.sum(perturbed(l, k), -1), (logits, keys)),
      'uniforms [32,19,30522]: random.uniform (a block each)': (
          lambda l, k: jnp.sum(jax.vmap(lambda key: jax.random.uniform(key, l.shape[1:]))(k)),
          (logits, keys)),
      'uniforms [32,19,30522]: draws.uniform (both words)': (
          lambda l, k: jnp.sum(jax.vmap(lambda key: draws.uniform(key, l.shape[1:]))(k)),
          (logits, keys)),
  }
  jitted = {name: (jax.jit(f), args) for name, (f, args) in cases.items()}
  outputs = {name: jax.block_until_ready(f(*args)) for name, (f, args) in jitted.items()}
  assert (outputs['gumbel-max [32,19,30522]: jnp.argmax'] ==
          outputs['gumbel-max [32,19,30522]: first_argmax']).all()
  times = {name: [] for name in jitted}
  for _ in range(_ROUNDS.value):
    for name, (f, args) in jitted.items():
      start = time.perf_counter()
      jax.block_until_ready(f(*args))
      times[name].append((time.perf_counter() - start) * 1e3)
  print(f'{_ROUNDS.value} interleaved rounds on {jax.devices()[0].device_kind}; the two argmaxes '
        'agree on every slot')
  print('| draw | median ms | min ms |\n|---|---|---|')
  for name, values in times.items():
    print(f'| {name} | {np.median(values):.1f} | {min(values):.1f} |')


if __name__ == '__main__':
  app.run(main)

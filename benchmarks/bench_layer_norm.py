"""LayerNorm forward + backward on this machine: the model's, a closed-form VJP, and PyTorch's.

  python benchmarks/bench_layer_norm.py [--rounds=9] [--layers=12]

A chain of `--layers` LayerNorms over ELECTRA-Small's activations [32, 128, 256] (an affine op
between them so nothing folds away), gradient of a sum of squares: flax's `nn.LayerNorm` (what
the model uses), the same function with a closed-form backward (`jax.custom_vjp`), and
`torch.nn.LayerNorm` (the peer's: one vectorised kernel each way). Issue 24's profiles put
LayerNorm among the few places where the PyTorch step is faster than ours; this isolates it.
Prints medians of interleaved rounds; asserts that the three agree, nothing about speed.
"""

import time

from absl import app
from absl import flags
import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np

_ROUNDS = flags.DEFINE_integer('rounds', 9, 'Interleaved rounds.')
_LAYERS = flags.DEFINE_integer('layers', 12, 'LayerNorms in the chain.')
_EPS = 1e-12  # ELECTRA's layer_norm_eps


@jax.custom_vjp
def closed_form_layer_norm(x, scale, bias):
  return _fwd(x, scale, bias)[0]


def _fwd(x, scale, bias):
  centred = x - jnp.mean(x, -1, keepdims=True)
  inverse = jax.lax.rsqrt(jnp.mean(centred * centred, -1, keepdims=True) + _EPS)
  normed = centred * inverse
  return normed * scale + bias, (normed, inverse, scale)


def _bwd(residuals, grad):
  normed, inverse, scale = residuals
  g = grad * scale
  d_x = inverse * (g - jnp.mean(g, -1, keepdims=True)
                   - normed * jnp.mean(g * normed, -1, keepdims=True))
  return d_x, jnp.sum(grad * normed, axis=(0, 1)), jnp.sum(grad, axis=(0, 1))


closed_form_layer_norm.defvjp(_fwd, _bwd)


def main(argv):
  del argv
  import torch  # noqa: PLC0415

  layers, shape = _LAYERS.value, (32, 128, 256)
  rng = np.random.default_rng(0)
  x = rng.normal(size=shape).astype(np.float32)
  scales = [1 + 0.1 * rng.normal(size=shape[-1]).astype(np.float32) for _ in range(layers)]
  flax_norm = nn.LayerNorm(epsilon=_EPS)

  def chain(norm):
    def loss(x, scales):
      for scale in scales:
        x = norm(x * 1.01 + 0.1, scale, jnp.zeros_like(scale))
      return jnp.sum(x * x)
    return jax.jit(jax.grad(loss, argnums=(0, 1)))

  flax_fn = lambda x, scale, bias: flax_norm.apply({'params': {'scale': scale, 'bias': bias}}, x)
  cases = {'flax nn.LayerNorm (the model\'s)': chain(flax_fn),
           'closed-form custom VJP': chain(closed_form_layer_norm)}
  args = (jnp.asarray(x), [jnp.asarray(s) for s in scales])
  outputs = {name: jax.block_until_ready(f(*args)) for name, f in cases.items()}

  x_torch = torch.tensor(x, requires_grad=True)
  norms = [torch.nn.LayerNorm(shape[-1], eps=_EPS) for _ in scales]
  for norm, scale in zip(norms, scales):
    norm.weight.data = torch.tensor(scale)

  def torch_step():
    x_torch.grad = None
    y = x_torch
    for norm in norms:
      y = norm(y * 1.01 + 0.1)
    (y * y).sum().backward()
    return x_torch.grad.numpy()

  want = outputs['flax nn.LayerNorm (the model\'s)'][0]
  for got in (outputs['closed-form custom VJP'][0], torch_step()):
    np.testing.assert_allclose(got, want, rtol=1e-3, atol=1e-3 * np.abs(want).max())

  times = {name: [] for name in (*cases, 'torch.nn.LayerNorm (the peer\'s)')}
  for _ in range(_ROUNDS.value):
    for name, f in cases.items():
      start = time.perf_counter()
      jax.block_until_ready(f(*args))
      times[name].append(time.perf_counter() - start)
    start = time.perf_counter()
    torch_step()
    times['torch.nn.LayerNorm (the peer\'s)'].append(time.perf_counter() - start)
  print(f'{layers} LayerNorms over {list(shape)}, forward + backward, {_ROUNDS.value} interleaved '
        f'rounds on {jax.devices()[0].device_kind} (torch {torch.__version__}, '
        f'{torch.get_num_threads()} threads); the three gradients agree')
  print('| LayerNorm | median ms | min ms |\n|---|---|---|')
  for name, values in times.items():
    print(f'| {name} | {np.median(values) * 1e3:.1f} | {min(values) * 1e3:.1f} |')


if __name__ == '__main__':
  app.run(main)

"""Train-step throughput: tokens/s, TFLOP/s and the fraction of this machine's matmul FLOP/s.

  python benchmarks/bench_train_step.py --config=configs/small.py --batch_size=32 --seq_len=128

Runs the real jitted train step (synthetic batches, so the input pipeline is not measured; see
bench_data.py for that) on all local devices, after measuring the dense-matmul FLOP/s that the
same devices reach on square float32/bfloat16 matmuls, in the same process. Prints figures;
asserts nothing, because this machine is shared and timings are noisy: compare ratios.
"""

import functools
import time

from absl import app
from absl import flags
import flax.linen as nn
import jax
import jax.numpy as jnp

_CONFIG = flags.DEFINE_string('config', 'small', 'Config file, or a packaged config name.')
_BATCH = flags.DEFINE_integer('batch_size', 32, 'Global batch size.')
_SEQ = flags.DEFINE_integer('seq_len', 128, 'Sequence length.')
_STEPS = flags.DEFINE_integer('steps', 10, 'Timed steps (after 2 warm-up steps).')
_DTYPE = flags.DEFINE_string('dtype', '', 'Override model.dtype (float32 / bfloat16).')
_MATMUL = flags.DEFINE_integer('matmul_size', 2048, 'Side of the square matmul for the peak.')


def measured_matmul_tflops(size: int, dtype, repeats: int = 10) -> float:
  """Dense-matmul TFLOP/s of one device: the realistic ceiling for the train step here."""
  a = jnp.ones((size, size), dtype)
  b = jnp.ones((size, size), dtype)
  matmul = jax.jit(lambda x, y: x @ y)
  matmul(a, b).block_until_ready()
  start = time.perf_counter()
  for _ in range(repeats):
    out = matmul(a, b)
  out.block_until_ready()
  return 2 * size ** 3 * repeats / (time.perf_counter() - start) / 1e12


def main(argv):
  del argv
  from electra_jax import cli
  from electra_jax import flops as flops_lib
  from electra_jax import mesh as mesh_lib
  from electra_jax import optimizer as optimizer_lib
  from electra_jax import steps
  from electra_jax.data import synthetic

  jax.config.update('jax_threefry_partitionable', True)
  config = cli.load_config_file(_CONFIG.value)
  config.train.batch_size = _BATCH.value
  config.data.max_seq_length = _SEQ.value
  config.data.source = 'synthetic'
  if _DTYPE.value:
    config.model.dtype = _DTYPE.value
  config.model.hidden_dropout_prob = config.model.attention_dropout_prob = 0.1

  mesh = mesh_lib.make_mesh(config.mesh)
  rules = tuple((n, tuple(a) if isinstance(a, list) else a) for n, a in config.mesh.logical_axis_rules)
  model = steps.build_model(config)
  tx = optimizer_lib.make_optimizer(config.train)
  max_predictions = flops_lib.max_predictions_per_seq(config)
  init_fn = steps.make_init_fn(model, tx, _SEQ.value, max_predictions)
  rng = jax.random.key(0)
  with jax.set_mesh(mesh), nn.logical_axis_rules(rules):
    _, shardings = steps.state_shardings(init_fn, rng, mesh, rules)
    state = jax.jit(lambda r: nn.unbox(init_fn(r)), out_shardings=shardings)(rng)
    batch_sharding = steps.batch_sharding(mesh)
    batches = synthetic.SyntheticIterator(config, max_predictions=max_predictions)
    make_batch = lambda: {k: jax.make_array_from_process_local_data(batch_sharding, v)
                          for k, v in next(batches).items()}
    step_fn = jax.jit(functools.partial(steps.train_step, model=model, tx=tx, config=config,
                                        base_rng=rng),
                      in_shardings=(shardings, batch_sharding), out_shardings=(shardings, None),
                      donate_argnums=(0,))
    fixed = [make_batch() for _ in range(2)]
    for i in range(2):
      state, stats = step_fn(state, fixed[i % 2])
    jax.block_until_ready(stats)
    start = time.perf_counter()
    for i in range(_STEPS.value):
      state, stats = step_fn(state, fixed[i % 2])
    jax.block_until_ready(stats)
    step_time = (time.perf_counter() - start) / _STEPS.value

  tokens = _BATCH.value * _SEQ.value
  flops_per_token = flops_lib.train_flops_per_token(config)
  achieved = flops_per_token * tokens / step_time / 1e12
  dtype = jnp.bfloat16 if config.model.dtype == 'bfloat16' else jnp.float32
  devices = jax.device_count()
  peak = sum(measured_matmul_tflops(_MATMUL.value, dtype) for _ in range(1)) * devices
  counts = flops_lib.param_counts(config)
  print(f'config {_CONFIG.value} dtype {config.model.dtype} batch {_BATCH.value} x {_SEQ.value} '
        f'on {devices} x {jax.devices()[0].device_kind}')
  print(f'parameters: {counts}')
  print(f'train FLOPs per token (analytic): {flops_per_token / 1e6:.1f} MFLOP')
  print(f'step time {step_time * 1e3:.1f} ms | {tokens / step_time:,.0f} tokens/s | '
        f'{achieved:.3f} TFLOP/s')
  print(f'measured dense matmul ({_MATMUL.value}^2, {jnp.dtype(dtype).name}): {peak:.3f} TFLOP/s '
        f'-> train step reaches {achieved / peak:.1%} of it')


if __name__ == '__main__':
  app.run(main)

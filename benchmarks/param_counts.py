"""Prints parameter counts and training FLOPs per token of the small, base and large configs.

  python benchmarks/param_counts.py

Counts are analytic (electra_jax.core.flops, checked against the Flax model in
tests/core/test_flops.py);
the reference discriminator sizes are the paper's 14M / 110M / 335M, and the reference training
compute is the paper's (Table 1/8) 1.4e18 FLOPs for ELECTRA-Small (1M steps), 6.4e19 for Base and
7.1e20 for Large (400k steps). The paper's own counter also tallies non-matmul ops, and its Large
figure is below 3 x forward matmul FLOPs of the published shapes, so expect agreement to ~+-30%.
"""

from electra_jax import startup
from electra_jax.core import flops
from electra_jax.spec import run as run_spec

REFERENCE_DISC_PARAMS = {'small': 14e6, 'base': 110e6, 'large': 335e6}
REFERENCE_TRAIN_FLOPS = {'small': 1.4e18, 'base': 6.4e19, 'large': 7.1e20}


def load_config(name):
  return startup.load_config_file(name)  # the packaged config of that name


def main():
  header = (f"{'config':<7}{'disc':>9}{'ref':>7}{'gen':>9}{'shared':>9}{'total':>9}"
            f"{'seq':>6}{'GFLOP/tok':>11}{'run FLOPs':>11}{'ref':>9}")
  print(header)
  print('-' * len(header))
  for name in ('small', 'base', 'large'):
    config = load_config(name)
    spec = run_spec.load(config)
    counts = flops.param_counts(spec.discriminator, spec.generator, spec.embedding_sharing)
    per_token = spec.train_flops_per_token()
    tokens = config.train.num_steps * config.train.batch_size * config.data.max_seq_length
    reference = REFERENCE_TRAIN_FLOPS.get(name)
    print(f"{name:<7}{counts['discriminator'] / 1e6:>8.1f}M"
          f"{REFERENCE_DISC_PARAMS[name] / 1e6:>6.0f}M"
          f"{counts['generator'] / 1e6:>8.1f}M{counts['shared'] / 1e6:>8.1f}M"
          f"{counts['total'] / 1e6:>8.1f}M{config.data.max_seq_length:>6}"
          f"{per_token / 1e9:>11.3f}{per_token * tokens:>11.2e}"
          f"{'' if reference is None else f'{reference:.1e}':>9}")
  print('\ndisc/gen: standalone networks with their embeddings; shared: the tables both use; '
        'total: jointly trained params.\nGFLOP/tok: training FLOPs per token (fwd+bwd, matmuls '
        'only, generator vocab projection at masked positions);\nrun FLOPs: x batch x seq x '
        'num_steps of the config; ref: the paper\'s figure.')


if __name__ == '__main__':
  main()

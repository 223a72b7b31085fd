"""ELECTRA-Base (110M-parameter discriminator): batch 256 x 512, LR 2e-4, 766k steps."""

from electra_jax.configs import default


def get_config():
  config = default.get_config()
  m = config.model
  m.embedding_size = 768
  m.hidden_size = 768
  m.num_heads = 12
  m.intermediate_size = 3072
  # On a 16 GiB TPU v3 core: remat 'none' with at most 8 x 512 examples per core (use
  # train.grad_accum_steps, e.g. 4 for 256 on a v3-8). XLA's compiled peak for 8 x 512 per device
  # (64 x 512 under fsdp=8, benchmarks/memory_options.py, CPU backend) is 12.5 GiB with 'none',
  # 12.4 with 'dots' or 'full': remat barely lowers it there, so it would only cost recompute.
  # The train log prints the compiled memory per device on the real chip: check it there.
  m.remat = 'none'
  config.electra.generator_hidden_fraction = 1 / 3  # H_gen = 256
  config.data.max_seq_length = 512
  config.train.batch_size = 256
  config.train.learning_rate = 2e-4
  config.train.num_steps = 766_000
  return config

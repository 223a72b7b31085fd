"""ELECTRA-Base (110M-parameter discriminator): batch 256 x 512, LR 2e-4, 766k steps."""

from electra_jax.configs import default


def get_config():
  config = default.get_config()
  m = config.model
  m.embedding_size = 768
  m.hidden_size = 768
  m.num_heads = 12
  m.intermediate_size = 3072
  config.electra.generator_hidden_fraction = 1 / 3  # H_gen = 256
  config.data.max_seq_length = 512
  config.train.batch_size = 256
  config.train.learning_rate = 2e-4
  config.train.num_steps = 766_000
  return config

"""ELECTRA-Large (335M-parameter discriminator): batch 2048 x 512, LR 2e-4, 400k steps, mask 25%.

Meant for a pod; shard parameters with FSDP, e.g. --config.mesh.fsdp=-1 --config.mesh.data=1.
"""

from electra_jax.configs import default


def get_config():
  config = default.get_config()
  m = config.model
  m.embedding_size = 1024
  m.hidden_size = 1024
  m.num_layers = 24
  m.num_heads = 16
  m.intermediate_size = 4096
  m.dtype = 'bfloat16'
  m.scan_layers = True  # 24 layers: keep compile time flat
  config.electra.generator_hidden_fraction = 0.25  # H_gen = 256
  config.data.max_seq_length = 512
  config.data.mask_prob = 0.25
  config.train.batch_size = 2048
  config.train.learning_rate = 2e-4
  config.train.num_steps = 400_000
  return config

"""Tiny ELECTRA for the CPU quick start: the built-in corpus, a few minutes on a laptop.

  python -m electra_jax.main --config=configs/tiny.py --workdir=/tmp/electra-tiny
"""

from electra_jax.configs import default  # the shared default, next to this file


def get_config():
  config = default.get_config()
  m = config.model
  m.vocab_size = 4096
  m.embedding_size = 64
  m.hidden_size = 128
  m.num_layers = 2
  m.num_heads = 2
  m.intermediate_size = 512
  m.max_position_embeddings = 128
  m.hidden_dropout_prob = 0.0  # too few steps for dropout to help
  m.attention_dropout_prob = 0.0
  config.electra.generator_hidden_fraction = 0.25  # H_gen = 32, one head: a weak generator
  config.tokenizer.vocab_size = 4096  # SentencePiece model trained on the built-in corpus
  config.data.max_seq_length = 128
  config.data.shuffle_buffer = 1000
  config.train.batch_size = 32
  config.train.num_steps = 1000
  # 2e-3 collapses the discriminator to the base rate within ~150 steps; 1e-3 keeps it learning.
  config.train.learning_rate = 1e-3
  config.train.warmup_steps = 100
  config.train.log_every = 50
  config.train.eval_every = 500
  config.train.eval_steps = 10
  config.train.checkpoint_every = 250
  config.train.keep_checkpoints = 2
  config.train.keep_period = 0
  return config

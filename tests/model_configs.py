"""The tiny encoder config that the model-level tests build on: the field list, stated once."""

import ml_collections


def tiny_model_config(**overrides) -> ml_collections.ConfigDict:
  """Every `config.model` field: a 2-layer, 64-wide encoder, 32-wide embeddings, 100 ids."""
  return ml_collections.ConfigDict(dict(
      vocab_size=100, embedding_size=32, hidden_size=64, num_layers=2, num_heads=2,
      intermediate_size=128, max_position_embeddings=32, type_vocab_size=2,
      hidden_dropout_prob=0.1, attention_dropout_prob=0.1, initializer_range=0.02,
      layer_norm_eps=1e-12, dtype='float32', param_dtype='float32', scan_layers=False,
      remat='none') | overrides)

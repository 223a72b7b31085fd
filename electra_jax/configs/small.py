"""ELECTRA-Small (14M-parameter discriminator), as in the paper: batch 128 x 128, LR 5e-4, 1M steps.

Set data/tokenizer fields for your corpus, e.g. on a v3-8:
  python -m electra_jax.main --config=configs/small.py --workdir=gs://BUCKET/electra-small \
    --config.data.source=prepared --config.data.prepared_dir=gs://BUCKET/data/owt-128
"""

from electra_jax.configs import default


def get_config():
  # On a 16 GiB TPU v3 core keep model.remat='none' (the default): the paper's 128 x 128 on a v3-8
  # is 16 x 128 per core, whose activations are about a tenth of Base's 8 x 512 per device
  # (12.5 GiB compiled, see base.py), by the per-token activation count of the two sizes.
  return default.get_config()  # the default *is* ELECTRA-Small

"""ELECTRA-Small (14M-parameter discriminator), as in the paper: batch 128 x 128, LR 5e-4, 1M steps.

Set data/tokenizer fields for your corpus, e.g. on a v3-8:
  python -m electra_jax.main --config=configs/small.py --workdir=gs://BUCKET/electra-small \
    --config.data.source=prepared --config.data.prepared_dir=gs://BUCKET/data/owt-128
"""

from electra_jax.configs import default


def get_config():
  return default.get_config()  # the default *is* ELECTRA-Small

"""The packaged configs, so that an installed wheel has them (no checkout needed).

`default` is the schema every config shares; `tiny`, `small`, `base` and `large` are the sizes;
`finetune/` holds the fine-tuning configs (`finetune_default`, `glue`, `squad`). The top-level
`configs/` of a checkout is a link to this directory.

On the command line name them by path (`--config=configs/tiny.py`) or, installed, by name:
`--config=tiny`, `--config=glue:rte` (see `electra_jax.startup.resolve_config`). In Python, import
them as modules (`from electra_jax.configs import tiny`) or use `startup.load_config_file`.
"""
